#!/usr/bin/env node
/**
 * The EfficientLLM experiment (issue 9): four arms at equal training tokens, then a results table and a
 * loss-vs-tokens SVG plot.
 *
 *   (a) pruning-aware pretraining from a ~3.7x larger source to the target size   recipes/efficientllm-a-*.yaml
 *   (b) direct pretraining of the architecture (a) ended with                      recipes/efficientllm-b-*.yaml
 *   (c) direct pretraining of a uniform hand-designed architecture, same size      recipes/efficientllm-c-*.yaml
 *   (d) prune once (at 10 % of the steps) then train                               recipes/efficientllm-d-*.yaml
 *
 * Usage (from the repository root, after `pnpm build`):
 *   node bench/experiment/run.mjs                         # the full run (recipes as written)
 *   node bench/experiment/run.mjs --steps 40 --out runs/efficientllm-small   # a small end-to-end check
 *   node bench/experiment/run.mjs --report-only --out runs/efficientllm      # redo table + plot
 * Options: --steps N (override every arm's steps; schedules given in % scale with it), --out DIR (default
 * runs/efficientllm), --arms a,b,c,d, --backend NAME (default wasm), --report-only, --tasks piqa,hellaswag,...
 * and --task-limit N for the zero-shot evaluation of each arm's final model (default 500 items per task),
 * --seed N to replace every recipe's seed (initialisation and data order).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const out = resolve(flag('out', 'runs/efficientllm'));
const steps = flag('steps', undefined);
const seed = flag('seed', undefined);
const backend = flag('backend', 'wasm');
const arms = flag('arms', 'a,b,c,d').split(',');
const reportOnly = args.includes('--report-only');
const cli = resolve('apps/cli/dist/bin.js');
const recipes = {
  a: 'recipes/efficientllm-a-pruning-aware.yaml',
  b: 'recipes/efficientllm-b-direct-auto-arch.yaml',
  c: 'recipes/efficientllm-c-uniform.yaml',
  d: 'recipes/efficientllm-d-prune-once.yaml',
};
const labels = {
  a: '(a) pruning-aware pretraining',
  b: '(b) direct, auto-designed arch of (a)',
  c: '(c) direct, uniform hand-designed',
  d: '(d) prune once, then train',
};

mkdirSync(join(out, 'recipes'), { recursive: true });
if (!reportOnly) {
  for (const arm of arms) {
    // (b) trains the architecture that (a) produced in this output folder
    // and the copy lives elsewhere, so its recipe-relative paths are made absolute
    const text = readFileSync(recipes[arm], 'utf8')
      .replaceAll('../runs/efficientllm/a/model', join(out, 'a', 'model'))
      .replaceAll('../../shared/', `${resolve('..', 'shared')}/`)
      .replaceAll('../assets/', `${resolve('assets')}/`)
      .replace(/^seed: \d+$/m, (line) => (seed === undefined ? line : `seed: ${seed}`));
    const recipe = join(out, 'recipes', `${arm}.yaml`);
    writeFileSync(recipe, text);
    const argv = [cli, '--backend', backend, '--json', '--out', join(out, arm), 'train', recipe, '--no-resume', ...(steps ? ['--steps', steps] : [])];
    const t0 = Date.now();
    process.stderr.write(`arm ${arm}: node ${argv.join(' ')}\n`);
    const r = spawnSync(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
    if (r.status !== 0) {
      process.stderr.write(`arm ${arm} failed (exit ${r.status})\n${r.stdout}\n`);
      process.exit(1);
    }
    process.stderr.write(`arm ${arm}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${r.stdout.trim()}\n`);
  }
}

// ---------------------------------------------------------------- zero-shot accuracy of every arm's final model
// (cached in <arm>/zeroshot.json; models this small are expected near chance — the check is that nothing beats it
// by accident of architecture)
const zeroShotTasks = flag('tasks', 'piqa,hellaswag,arc-easy,winogrande').split(',');
const zeroShotLimit = flag('task-limit', '500');
const tokenizer = resolve('assets/models/stories260K/tok512.bin');
for (const arm of ['a', 'b', 'c', 'd']) {
  const model = join(out, arm, 'model');
  const cache = join(out, arm, 'zeroshot.json');
  if (!existsSync(join(model, 'config.json')) || existsSync(cache)) continue;
  const argv = [cli, '--backend', backend, '--json', 'eval', '--model', model, '--tokenizer', tokenizer, '--tasks', ...zeroShotTasks, '--limit', zeroShotLimit];
  process.stderr.write(`zero-shot ${arm}: node ${argv.join(' ')}\n`);
  const r = spawnSync(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write(`zero-shot eval of arm ${arm} failed (exit ${r.status})\n`);
    continue;
  }
  writeFileSync(cache, r.stdout);
}

// ---------------------------------------------------------------- results
const rows = [];
const curves = {};
for (const arm of ['a', 'b', 'c', 'd']) {
  const dir = join(out, arm);
  if (!existsSync(join(dir, 'summary.json'))) continue;
  const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
  const metrics = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const train = metrics.filter((m) => m.type === 'train');
  const evals = metrics.filter((m) => m.type === 'eval');
  curves[arm] = { train: train.map((m) => [m.tokens, m.loss]), eval: evals.map((m) => [m.tokens, m.validLoss]) };
  const arch = summary.architecture;
  rows.push({
    arm,
    label: labels[arm],
    params: summary.params,
    sourceParams: summary.sourceParams,
    tokens: summary.tokens,
    steps: summary.steps,
    validLoss: summary.validLoss,
    validPerplexity: summary.validPerplexity,
    seconds: summary.seconds,
    shape: `d=${arch.hidden}; heads ${arch.layers.map((l) => l.heads).join('/')}; ffn ${arch.layers.map((l) => l.ffn).join('/')}`,
    tasks: existsSync(join(dir, 'zeroshot.json')) ? JSON.parse(readFileSync(join(dir, 'zeroshot.json'), 'utf8')).tasks : {},
  });
}

const taskNames = [...new Set(rows.flatMap((r) => Object.keys(r.tasks)))];
const pct = (x) => (x === undefined ? '–' : `${(100 * x.acc).toFixed(1)}${x.acc_stderr ? ` ± ${(100 * x.acc_stderr).toFixed(1)}` : ''}`);
const meanAcc = (r) => (taskNames.length && taskNames.every((t) => r.tasks[t]) ? (100 * taskNames.reduce((s, t) => s + r.tasks[t].acc, 0)) / taskNames.length : undefined);
const table = [
  `| arm | params (source → final) | train tokens | held-out loss | held-out ppl | ${taskNames.map((t) => `${t} acc %`).join(' | ')}${taskNames.length ? ' | mean acc % |' : ''} wall time | final shape |`,
  `|---|---|---:|---:|---:|${taskNames.map(() => '---:|').join('')}${taskNames.length ? '---:|' : ''}---:|---|`,
  ...rows.map(
    (r) =>
      `| ${r.label} | ${r.sourceParams.toLocaleString('en')} → ${r.params.toLocaleString('en')} | ${r.tokens.toLocaleString('en')} | ${r.validLoss.toFixed(4)} | ${r.validPerplexity.toFixed(3)} | ${taskNames.map((t) => `${pct(r.tasks[t])} | `).join('')}${taskNames.length ? `${meanAcc(r)?.toFixed(1) ?? '–'} | ` : ''}${r.seconds.toFixed(0)} s | ${r.shape} |`,
  ),
].join('\n');

// ---------------------------------------------------------------- SVG: training loss (moving average) and held-out loss vs tokens
const W = 720;
const H = 420;
const pad = { l: 60, r: 20, t: 30, b: 50 };
const colors = { a: '#1f77b4', b: '#ff7f0e', c: '#2ca02c', d: '#d62728' };
const smooth = (pts, k) => pts.map((p, i) => [p[0], pts.slice(Math.max(0, i - k + 1), i + 1).reduce((s, q) => s + q[1], 0) / Math.min(k, i + 1)]);
const all = Object.values(curves).flatMap((c) => [...c.train, ...c.eval]);
const maxX = Math.max(1, ...all.map((p) => p[0]));
const ys = all.map((p) => p[1]).filter(Number.isFinite);
const minY = Math.floor(Math.min(...ys) * 10) / 10;
const maxY = Math.min(Math.ceil(Math.max(...ys) * 10) / 10, minY + 4);
const X = (x) => pad.l + (x / maxX) * (W - pad.l - pad.r);
const Y = (y) => pad.t + (1 - (Math.min(y, maxY) - minY) / (maxY - minY || 1)) * (H - pad.t - pad.b);
const path = (pts) => pts.map((p, i) => `${i ? 'L' : 'M'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join('');
let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">\n`;
svg += `<rect width="${W}" height="${H}" fill="white"/>\n<text x="${W / 2}" y="18" text-anchor="middle">loss vs training tokens (lines: train, moving avg; dots: held-out)</text>\n`;
for (let i = 0; i <= 5; i++) {
  const y = minY + ((maxY - minY) * i) / 5;
  const x = (maxX * i) / 5;
  svg += `<line x1="${pad.l}" x2="${W - pad.r}" y1="${Y(y)}" y2="${Y(y)}" stroke="#eee"/><text x="${pad.l - 6}" y="${Y(y) + 4}" text-anchor="end">${y.toFixed(2)}</text>\n`;
  svg += `<text x="${X(x)}" y="${H - pad.b + 16}" text-anchor="middle">${Math.round(x).toLocaleString('en')}</text>\n`;
}
svg += `<text x="${W / 2}" y="${H - 10}" text-anchor="middle">tokens</text>\n`;
Object.entries(curves).forEach(([arm, c], i) => {
  const k = Math.max(1, Math.round(c.train.length / 50));
  svg += `<path d="${path(smooth(c.train, k))}" fill="none" stroke="${colors[arm]}" stroke-width="1.5"/>\n`;
  for (const p of c.eval) svg += `<circle cx="${X(p[0]).toFixed(1)}" cy="${Y(p[1]).toFixed(1)}" r="3" fill="${colors[arm]}"/>\n`;
  svg += `<rect x="${W - 250}" y="${pad.t + 8 + i * 16}" width="10" height="10" fill="${colors[arm]}"/><text x="${W - 235}" y="${pad.t + 17 + i * 16}">${labels[arm]}</text>\n`;
});
svg += '</svg>\n';
writeFileSync(join(out, 'loss-vs-tokens.svg'), svg);
writeFileSync(join(out, 'results.md'), `${table}\n\nPlot: loss-vs-tokens.svg. Seed ${seed ?? 'from the recipes (0)'} for every arm (init and data order).\n`);
writeFileSync(join(out, 'results.json'), `${JSON.stringify(rows, null, 2)}\n`);
process.stdout.write(`${table}\n\nwritten: ${join(out, 'results.md')}, ${join(out, 'loss-vs-tokens.svg')}\n`);
