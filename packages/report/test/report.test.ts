import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { barChart, groupScoresOf, histogram, linePlot, niceTicks, readMetrics, recipeNameFromText, renderReport, stageChart, stageTick, writeReport, type RunResults } from '../src/index.js';

const results: RunResults = {
  name: 'wanda-2of4',
  model: 'assets/models/stories260K',
  backend: 'wasm',
  started: '2026-11-25T10:00:00Z',
  finished: '2026-11-25T10:00:30Z',
  status: 'completed',
  baseline: { perplexity: { 'data/a.txt': { ppl: 10.5, tokens: 1000 } }, tasks: {} },
  stages: [
    {
      index: 0,
      kind: 'prune',
      name: 'wanda',
      seconds: 1.5,
      parametersBefore: 100,
      parametersAfter: 100,
      sparsity: 0.5,
      layers: [
        { param: 'model.layers.0.self_attn.q_proj.weight', layer: 0, sparsity: 0.5 },
        { param: 'model.layers.1.self_attn.q_proj.weight', layer: 1, sparsity: 0.5 },
      ],
      saliency: { 'ffn-channel': [0.1, 0.2, 0.3, 5, 10] },
      eval: { perplexity: { 'data/a.txt': { ppl: 14.25, tokens: 1000 } }, tasks: { piqa: { acc: 0.55, acc_norm: 0.56, n: 100, acc_stderr: 0.05 } } },
    },
    {
      index: 1,
      kind: 'prune',
      name: 'llm-pruner',
      seconds: 2,
      architectureBefore: { dim: 64, parameters: 100, layers: [{ nHeads: 8, nKvHeads: 4, hiddenDim: 172 }, { nHeads: 8, nKvHeads: 4, hiddenDim: 172 }] },
      architectureAfter: { dim: 64, parameters: 80, layers: [{ nHeads: 6, nKvHeads: 3, hiddenDim: 120 }, { nHeads: 8, nKvHeads: 4, hiddenDim: 150 }] },
    },
  ],
};

describe('svg charts', () => {
  it('nice ticks cover the range with round steps', () => {
    expect(niceTicks(0, 10)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0, 172)).toEqual([0, 50, 100, 150, 200]);
    const t = niceTicks(2.31, 2.97);
    expect(t[0]).toBeLessThanOrEqual(2.31);
    expect(t[t.length - 1]).toBeGreaterThanOrEqual(2.97);
  });

  it('a line plot has one path per series, a title and escaped labels', () => {
    const svg = linePlot('Loss <train>', [
      { name: 'train/loss', points: [[0, 3], [1, 2.5], [2, 2.1]] },
      { name: 'valid/loss', points: [[0, 3.1], [2, 2.4]] },
    ]);
    expect(svg.match(/<path class="series"/g)).toHaveLength(2);
    expect(svg).toContain('<title>Loss &lt;train&gt;</title>');
  });

  it('bar charts draw one bar per finite value; histograms count every value', () => {
    const bars = barChart('w', [{ label: 'L0', values: [4, 2] }, { label: 'L1', values: [4, 3] }], ['before', 'after']);
    expect(bars.match(/<rect class="bar"/g)).toHaveLength(4);
    const hist = histogram('h', [1, 1, 2, 3], 3);
    expect(hist.match(/<rect class="bar"/g)).toHaveLength(3);
  });
});

describe('report.html', () => {
  it('contains the stage table, the eval table (before/after) and all plot kinds, and no scripts or remote URLs', () => {
    const html = renderReport(results, [
      { type: 'metric', name: 'train/loss', value: 3, step: 1 },
      { type: 'metric', name: 'train/loss', value: 2.5, step: 2 },
      { type: 'metric', name: 'eval/ppl', value: 20, step: 1 },
      { type: 'metric', name: 'eval/ppl', value: 15, step: 2 },
    ]);
    expect(html).toContain('<td>input model</td><td>10.5</td>');
    expect(html).toContain('<td>after 1. prune (wanda)</td><td>14.25</td><td>55 ± 5</td>');
    expect(html).toContain('Per-layer sparsity after 1. prune (wanda)');
    expect(html).toContain('FFN width per layer — 2. prune (llm-pruner)');
    expect(html).toContain('Saliency of ffn-channel groups');
    expect(html).toContain('<title>Loss</title>');
    expect(html).toContain('<title>Perplexity per stage</title>');
    expect(html).toContain('<title>Accuracy per stage</title>');
    expect(html).not.toContain('<title>Perplexity</title>'); // eval/* metrics are per stage, not a curve over "steps"
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
  });

  it('is written from a run folder; a torn last metrics line (killed run) is tolerated', () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-report-'));
    writeFileSync(join(dir, 'results.json'), JSON.stringify(results));
    writeFileSync(join(dir, 'metrics.jsonl'), '{"type":"metric","name":"train/loss","value":3,"step":1}\n{"type":"metric","name":"tr');
    expect(readMetrics(join(dir, 'metrics.jsonl'))).toHaveLength(1);
    const path = writeReport(dir);
    expect(readFileSync(path, 'utf8')).toContain('wanda-2of4');
  });

  it('is titled by the recipe name: recipe.resolved.yaml, else the recipe file results.json names, else the folder name', () => {
    const base = mkdtempSync(join(tmpdir(), 'topiary-report-title-'));
    const dir = join(base, 'run-2026-11-25');
    mkdirSync(dir);
    const { name: _folder, ...rest } = results;
    const recipeFile = join(base, 'recipe.yaml');
    writeFileSync(join(dir, 'results.json'), JSON.stringify({ ...rest, name: 'run-2026-11-25', recipe: recipeFile }));
    const titleOf = () => /<h1>([^<]*)<\/h1>/.exec(readFileSync(writeReport(dir), 'utf8'))![1];
    // no recipe anywhere: the folder's name
    expect(titleOf()).toBe('run-2026-11-25');
    // the recipe file the run started from (recipe.resolved.yaml drops `name` today)
    writeFileSync(recipeFile, 'name: wanda 2:4 then recovery   # shown in the report\nmodel: { from: m }\nstages:\n  - eval: { perplexity: a.txt }\n');
    writeFileSync(join(dir, 'recipe.resolved.yaml'), 'model:\n  from: m\nstages:\n  - eval:\n      perplexity: a.txt\n');
    expect(titleOf()).toBe('wanda 2:4 then recovery');
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html).toContain('<title>wanda 2:4 then recovery — Topiary report</title>');
    expect(html).toContain('run folder run-2026-11-25');
    // recipe.resolved.yaml's own name wins
    writeFileSync(join(dir, 'recipe.resolved.yaml'), 'name: "resolved <name>"\nmodel:\n  from: m\n');
    expect(titleOf()).toBe('resolved &lt;name&gt;');
    // results.json without a folder name: the folder's own name
    writeFileSync(join(dir, 'recipe.resolved.yaml'), 'seed: 0\n');
    writeFileSync(recipeFile, 'stages: []\n');
    writeFileSync(join(dir, 'results.json'), JSON.stringify(rest));
    expect(titleOf()).toBe('run-2026-11-25');
  });

  it('reads only the top-level name of a YAML or JSON recipe', () => {
    expect(recipeNameFromText('name: plain words # comment\nseed: 1')).toBe('plain words');
    expect(recipeNameFromText("seed: 1\nname: 'it''s: quoted'\n")).toBe("it's: quoted");
    expect(recipeNameFromText('name: "a \\"b\\" # c"\n')).toBe('a "b" # c');
    expect(recipeNameFromText('name: >\n  folded\n  title\nseed: 1\n')).toBe('folded title');
    expect(recipeNameFromText('{"name": "json recipe", "stages": []}')).toBe('json recipe');
    expect(recipeNameFromText('model:\n  name: nested\nstages: []\n')).toBeUndefined();
    expect(recipeNameFromText('name:\nseed: 1\n')).toBeUndefined();
    expect(recipeNameFromText('name: ~\n')).toBeUndefined();
    expect(recipeNameFromText('---\nseed: 1\n---\nname: second document\n')).toBeUndefined();
  });

  it('draws perplexity and accuracy per stage on a categorical axis of stage labels, not as lines over "step"', () => {
    const run: RunResults = {
      started: 's',
      status: 'completed',
      stages: [
        { index: 0, kind: 'eval', name: 'eval', seconds: 1, eval: { perplexity: { '/d/a.txt': { ppl: 10, tokens: 9 } }, tasks: { piqa: { acc: 0.6, acc_norm: 0.62, n: 10, acc_stderr: 0.05 } } } },
        { index: 1, kind: 'prune', name: 'wanda', seconds: 1 },
        { index: 2, kind: 'eval', name: 'eval', seconds: 1, eval: { perplexity: { '/d/a.txt': { ppl: 30, tokens: 9 } }, tasks: { piqa: { acc: 0.55, acc_norm: 0.5, n: 10 } } } },
        { index: 3, kind: 'finetune', name: 'finetune (distilled)', seconds: 1 },
        { index: 4, kind: 'eval', name: 'eval', seconds: 1, eval: { perplexity: { '/d/a.txt': { ppl: 20, tokens: 9 } }, tasks: {} } },
      ],
    };
    expect(stageTick(run.stages[1]!)).toBe('2 prune wanda');
    expect(stageTick(run.stages[3]!)).toBe('4 finetune (distilled)');
    const html = renderReport(run, [
      { type: 'metric', name: 'eval/ppl', value: 10, step: 0, tags: { stage: 0, file: '/d/a.txt' } },
      { type: 'metric', name: 'eval/ppl', value: 30, step: 2, tags: { stage: 2, file: '/d/a.txt' } },
    ]);
    const section = html.slice(html.indexOf('<section id="per-stage">'), html.indexOf('<section id="curves">'));
    const charts = section.match(/<svg class="plot stage-chart"/g);
    expect(charts).toHaveLength(2);
    const labels = [...section.matchAll(/<text class="stage-label"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    expect(labels).toEqual(['1 eval', '3 eval', '5 eval', '1 eval', '3 eval']); // accuracy: the last eval measured no task
    const notes = [...section.matchAll(/<text class="stage-note"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    expect(notes.slice(0, 3)).toEqual(['input model', 'after 2 prune wanda', 'after 4 finetune (distilled)']);
    expect(section).toContain('>30<'); // values are written on the bars
    expect(section).toContain('class="whisker"'); // ± standard error
    expect(section).not.toMatch(/>step</);
    expect(html).not.toContain('<path class="series"'); // eval/ppl is not drawn as a line
  });

  it('draws every metric name as its own series, and one name recorded in two stages as two series, sorted by step', () => {
    const m = (name: string, step: number, value: number, stage: number) => ({ type: 'metric' as const, name, value, step, tags: { stage } });
    const html = renderReport({ ...results, stages: [...results.stages, { index: 2, kind: 'finetune', name: 'finetune', seconds: 1 }, { index: 3, kind: 'finetune', name: 'finetune', seconds: 1 }] }, [
      m('finetune/loss', 2, 3.0, 2),
      m('finetune/loss', 1, 3.5, 2),
      m('finetune/loss', 3, 2.8, 2),
      m('finetune/loss', 1, 2.9, 3),
      m('finetune/loss', 2, 2.7, 3),
      m('train/loss', 1, 4, 1),
      m('train/loss', 2, 3.9, 1),
    ]);
    const loss = /<svg class="plot line-plot"[^>]*aria-label="Loss"[\s\S]*?<\/svg>/.exec(html)![0];
    const paths = [...loss.matchAll(/<path class="series" d="([^"]+)"/g)].map((x) => x[1]!);
    expect(paths).toHaveLength(3);
    for (const d of paths) {
      const xs = [...d.matchAll(/[ML]([\d.]+),/g)].map((x) => Number(x[1]));
      for (let i = 1; i < xs.length; i++) expect(xs[i]!).toBeGreaterThan(xs[i - 1]!);
    }
    expect(loss).toContain('finetune/loss · 3 finetune');
    expect(loss).toContain('finetune/loss · 4 finetune');
    expect(loss).toContain('>train/loss<');
    expect(loss).toContain('>optimiser step<');
  });

  it('draws group-score histograms per kind from result.saliency or details.groupScores, and says when a structured prune reported none', () => {
    const llmp = results.stages[1]!;
    // details.saliency holding the criterion's name is not a score record
    expect(groupScoresOf({ ...llmp, details: { saliency: 'taylor-element' } })).toBeUndefined();
    // a Float64Array that went through JSON is an index-keyed object
    const scores = groupScoresOf({ ...llmp, details: { groupScores: { head: { 0: 0.5, 1: 0.25 }, 'ffn-channel': [1, 2, 3] } } });
    expect(scores).toEqual({ head: [0.5, 0.25], 'ffn-channel': [1, 2, 3] });
    const missing = renderReport({ ...results, stages: [{ ...llmp, details: { saliency: 'taylor-element', removedGroups: ['l0.head.1'] } }] }, []);
    expect(missing).toContain('2. prune (llm-pruner) (criterion taylor-element) removed groups but reported no group scores');
    const section = missing.slice(missing.indexOf('<section id="saliency">'), missing.indexOf('</section>', missing.indexOf('<section id="saliency">')));
    expect(section).toContain('saliency-missing');
    expect(section).not.toContain('Nothing to show');
    const drawn = renderReport({ ...results, stages: [{ ...llmp, details: { groupScores: { 'kv-group': [0.1, 0.2, 0.4], 'ffn-channel': [1, 2, 3, 4] } } }] }, []);
    expect(drawn.match(/<svg class="plot histogram"/g)).toHaveLength(2);
    expect(drawn).toContain('Saliency of kv-group groups — 2. prune (llm-pruner)');
    expect(drawn).not.toContain('saliency-missing');
  });

  it('a stage chart widens so long stage labels stay readable', () => {
    const svg = stageChart('t', Array.from({ length: 9 }, (_, i) => ({ label: `${i + 1} prune llm-pruner`, note: `after ${i} finetune (distilled)`, values: [i + 1] })), ['ppl']);
    const width = Number(/viewBox="0 0 (\d+(?:\.\d+)?) /.exec(svg)![1]);
    expect(width).toBeGreaterThan(9 * 150);
    expect(svg.match(/<text class="stage-label"/g)).toHaveLength(9);
  });

  const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
  if (!chromium) console.log('skipped: rendering report.html in headless Chromium needs Debian chromium (apt-get install chromium), which is absent');
  it.skipIf(!chromium)('renders in headless Chromium with every plot present', () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-report-chromium-'));
    writeFileSync(join(dir, 'results.json'), JSON.stringify(results));
    writeFileSync(join(dir, 'metrics.jsonl'), [1, 2, 3].map((s) => JSON.stringify({ type: 'metric', name: 'train/loss', value: 4 - s / 2, step: s })).join('\n'));
    const path = writeReport(dir);
    const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${join(dir, 'profile')}`];
    const dom = execFileSync(chromium!, [...flags, '--dump-dom', `file://${path}`], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'] });
    expect(dom.match(/<svg class="plot/g)?.length).toBeGreaterThanOrEqual(5);
    expect(dom).toContain('class="series"');
    const png = join(dir, 'shot.png');
    execFileSync(chromium!, [...flags, `--screenshot=${png}`, '--window-size=1340,1400', `file://${path}`], { timeout: 60_000, stdio: 'ignore' });
    const bytes = readFileSync(png);
    expect(bytes.subarray(1, 4).toString()).toBe('PNG');
    expect(bytes.length).toBeGreaterThan(20_000); // a blank page compresses to a few KB
  });
});
