import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { barChart, histogram, linePlot, niceTicks, readMetrics, renderReport, writeReport, type RunResults } from '../src/index.js';

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
    expect(html).toContain('<title>Perplexity</title>');
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
