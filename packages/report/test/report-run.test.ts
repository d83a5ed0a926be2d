/**
 * The report of a real run: eval + prune (wanda) + prune (llm-pruner) + finetune, with an eval after every stage,
 * run in-process by the pipeline on the shipped stories260K with tiny settings, then rendered in headless Chromium
 * (a screenshot to a temp PNG) and checked in the DOM: the title is the recipe's name, perplexity and accuracy are
 * categorical per-stage charts, the fine-tuning loss is one series over optimiser steps 1..N, and the saliency
 * section either draws group-score histograms per kind or says precisely why it cannot.
 *
 * The pipeline depends on this package, so it is loaded here from its sources by path (test only), like the CLI's
 * tests load it; the run's plugins are the ones installed at the repository root (built dist/, as `topiary run`
 * uses them).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadRecipe, type EventBus, type MetricEvent, type Recipe } from '@topiary/kernel';
import { readMetrics, writeReport, type RunResults } from '../src/index.js';

const repo = resolve(__dirname, '../../..');
const model = join(repo, 'assets/models/stories260K-hf');
const RECIPE_NAME = 'Report e2e: wanda, LLM-Pruner & recovery';

/** The part of @topiary/pipeline this test drives (typed here: the pipeline is not a dependency of the report). */
interface PipelineApi {
  openRun(options: { backend: string; seed: number; plugin: string[]; allowPluginPath: boolean }, searchRoots: string[]): Promise<{ events: EventBus; close(): void }>;
  installedStages(run: unknown): unknown[];
  resolveRecipePaths(recipe: Recipe, baseDir: string, stages: unknown[]): Recipe;
  RunFolder: new (dir: string) => { dir: string };
  executeRecipe(run: unknown, recipe: Recipe, folder: unknown, resume: boolean): Promise<{ code: number; report: string; results: RunResults }>;
}

const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
if (!chromium) console.log('skipped: rendering the run report in headless Chromium needs Debian chromium (apt-get install chromium), which is absent');
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** The DOM after Chromium loaded the page, and a screenshot of it (checked to be a real, non-blank PNG). */
function renderInChromium(html: string, dir: string, name: string): { dom: string; png: string } {
  const flags = [...FLAGS, `--user-data-dir=${join(dir, `profile-${name}`)}`];
  const dom = execFileSync(chromium!, [...flags, '--dump-dom', `file://${html}`], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'] });
  const png = join(dir, `${name}.png`);
  execFileSync(chromium!, [...flags, `--screenshot=${png}`, '--window-size=1340,3200', `file://${html}`], { timeout: 60_000, stdio: 'ignore' });
  return { dom, png };
}

/** Every `<svg class="plot …">…</svg>` of a page, with its aria-label. */
function plots(dom: string): { cls: string; label: string; svg: string }[] {
  return [...dom.matchAll(/<svg class="(plot[^"]*)"[^>]*aria-label="([^"]*)"[\s\S]*?<\/svg>/g)].map((m) => ({ cls: m[1]!, label: m[2]!, svg: m[0] }));
}

const texts = (svg: string, cls: string) => [...svg.matchAll(new RegExp(`<text class="${cls}"[^>]*>([^<]*)</text>`, 'g'))].map((m) => m[1]!.replace(/&amp;/g, '&'));

describe('the report of a real run (eval, wanda, llm-pruner, finetune)', () => {
  let dir: string;
  let runDir: string;
  let results: RunResults;
  let metrics: MetricEvent[];
  let seconds = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'topiary-report-run-'));
    const text = join(dir, 'tinystories-40k.txt');
    writeFileSync(text, readFileSync(join(repo, 'assets/data/tinystories_val_head.txt'), 'utf8').slice(0, 40_000));
    const evalStage = `  - eval: { perplexity: [${text}], tasks: [arc-easy-dev-mini], seqlen: 64, limit: 8 }`;
    const file = join(dir, 'recipe.yaml');
    writeFileSync(
      file,
      [
        `name: "${RECIPE_NAME}"`,
        `model: { from: ${model} }`,
        'seed: 1',
        'data:',
        `  calibration: { path: ${text}, samples: 8, seqlen: 64 }`,
        'stages:',
        evalStage,
        '  - prune: { method: wanda, sparsity: 0.5 }',
        evalStage,
        `  - prune: { method: llm-pruner, ratio: 0.2, calibration: { path: ${text}, samples: 4, seqlen: 32 } }`,
        evalStage,
        `  - finetune: { data: ${text}, steps: 6, lr: 1.0e-3, batchSize: 2, seqlen: 32 }`,
        evalStage,
        'output: ./run-folder',
        '',
      ].join('\n'),
    );
    const started = performance.now();
    const pipelineEntry = join(repo, 'packages/pipeline/src/index.ts');
    const pipeline = (await import(pipelineEntry)) as PipelineApi;
    const run = await pipeline.openRun({ backend: 'wasm', seed: 1, plugin: [], allowPluginPath: false }, [repo]);
    try {
      const recipe = pipeline.resolveRecipePaths(loadRecipe(file), dir, pipeline.installedStages(run));
      const folder = new pipeline.RunFolder(join(dir, 'run-folder'));
      const outcome = await pipeline.executeRecipe(run, recipe, folder, false);
      expect(outcome.code).toBe(0);
      runDir = folder.dir;
      results = outcome.results;
    } finally {
      run.close();
    }
    metrics = readMetrics(join(runDir, 'metrics.jsonl'));
    seconds = (performance.now() - started) / 1000;
    console.log(`report e2e: the 7-stage run took ${seconds.toFixed(1)} s`);
  });

  it('ran every stage, and the fine-tuning loss is one series: one point per optimiser step, steps 1..6', () => {
    expect(results.stages.map((s) => `${s.kind}:${s.name}`)).toEqual(['eval:eval', 'prune:wanda', 'eval:eval', 'prune:llm-pruner', 'eval:eval', 'finetune:finetune', 'eval:eval']);
    const loss = metrics.filter((m) => m.name === 'finetune/loss');
    expect(loss.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(new Set(loss.map((m) => m.tags?.stage))).toEqual(new Set([5]));
    expect(loss.every((m) => typeof m.tags?.lr === 'number')).toBe(true);
    // llm-pruner reports every candidate group's importance by kind; the stage keeps them as its saliency
    const llmp = results.stages[3]!;
    expect(Object.keys(llmp.saliency ?? {}).sort()).toEqual(['ffn-channel', 'kv-group']);
    expect(llmp.saliency).toEqual(llmp.details?.groupScores);
    for (const scores of Object.values(llmp.saliency!)) expect(scores.length > 0 && scores.every((x) => Number.isFinite(x) && x >= 0)).toBe(true);
    expect(llmp.details?.saliency).toBe('taylor-element');
  });

  it.skipIf(!chromium)('renders in headless Chromium: the recipe name as title, per-stage charts with stage labels, one loss series, the saliency section', () => {
    const html = writeReport(runDir);
    const { dom, png } = renderInChromium(html, dir, 'run');
    const bytes = readFileSync(png);
    expect(bytes.subarray(1, 4).toString()).toBe('PNG');
    expect(bytes.length).toBeGreaterThan(20_000);

    // 1. the title is the recipe's name, not the run folder's
    const escaped = RECIPE_NAME.replace(/&/g, '&amp;');
    expect(dom).toContain(`<title>${escaped} — Topiary report</title>`);
    expect(dom).toContain(`<h1>${escaped}</h1>`);
    expect(dom).toContain('run folder run-folder');

    // 2. perplexity and accuracy per stage: categorical stage labels, no numeric 'step' axis
    const all = plots(dom);
    const ppl = all.find((p) => p.label === 'Perplexity per stage')!;
    const acc = all.find((p) => p.label === 'Accuracy per stage')!;
    for (const chart of [ppl, acc]) {
      expect(chart.cls).toBe('plot stage-chart');
      expect(texts(chart.svg, 'stage-label')).toEqual(['1 eval', '3 eval', '5 eval', '7 eval']);
      expect(texts(chart.svg, 'stage-note')).toEqual(['input model', 'after 2 prune wanda', 'after 4 prune llm-pruner', 'after 6 finetune']);
      expect(chart.svg).not.toMatch(/>step</);
    }
    expect(ppl.svg.match(/<rect class="bar"/g)).toHaveLength(4);
    expect(acc.svg.match(/<rect class="bar"/g)).toHaveLength(8); // acc and acc_norm of one task, 4 evaluations
    expect(all.some((p) => p.cls === 'plot line-plot' && /perplexity|ppl/i.test(p.label))).toBe(false);

    // 3. one loss series over optimiser steps, x strictly increasing (no zig-zag)
    const loss = all.filter((p) => p.label === 'Loss');
    expect(loss).toHaveLength(1);
    const paths = [...loss[0]!.svg.matchAll(/<path class="series" d="([^"]+)"/g)].map((m) => m[1]!);
    expect(paths).toHaveLength(1);
    const xs = [...paths[0]!.matchAll(/[ML]([\d.]+),/g)].map((m) => Number(m[1]));
    expect(xs).toHaveLength(6);
    for (let i = 1; i < xs.length; i++) expect(xs[i]!).toBeGreaterThan(xs[i - 1]!);
    expect(loss[0]!.svg).toContain('>optimiser step<');

    // 4. llm-pruner's group scores: one histogram per group kind
    const hist = all.filter((p) => p.cls === 'plot histogram');
    expect(hist.map((p) => p.label)).toEqual(['Saliency of kv-group groups — 4. prune (llm-pruner)', 'Saliency of ffn-channel groups — 4. prune (llm-pruner)']);
    for (const h of hist) expect(h.svg.match(/<rect class="bar"/g)!.length).toBeGreaterThan(3);
    expect(dom).not.toContain('saliency-missing');
    expect(dom).not.toContain('Nothing to show');
  });

  it.skipIf(!chromium)('says so for a structured prune that reported no group scores, instead of "Nothing to show"', () => {
    // a pruner that reports no scores (an older or third-party one): the section names the stage and says so
    const without: RunResults = JSON.parse(readFileSync(join(runDir, 'results.json'), 'utf8')) as RunResults;
    const llmp = without.stages[3]!;
    delete llmp.saliency;
    if (llmp.details) delete llmp.details.groupScores;
    writeFileSync(join(runDir, 'results.json'), JSON.stringify(without));
    const html = writeReport(runDir);
    const { dom, png } = renderInChromium(html, dir, 'no-scores');
    expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
    const saliency = dom.slice(dom.indexOf('<section id="saliency">'), dom.indexOf('</section>', dom.indexOf('<section id="saliency">')));
    expect(saliency).toContain('class="empty saliency-missing"');
    expect(saliency).toContain('4. prune (llm-pruner) (criterion taylor-element) removed groups but reported no group scores');
    expect(saliency).not.toContain('Nothing to show');
  });
});
