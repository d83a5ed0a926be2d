#!/usr/bin/env node
// bench/generate — greedy generation tokens/s and peak RSS with a KV cache: Topiary's `generate` (default wasm
// backend, and native when built) vs Meta's LLaMA reference loop in PyTorch (bench/generate/torch_generate.py), same
// shapes, same threads, batch 1 and batch B, each measurement a fresh process. A script, not a test.
// Usage (repo root, after `pnpm build`):
//   node bench/generate/run.mjs [--shapes 64,288,512,stories260K] [--batches 1,8] [--prompt 8] [--new 200]
//     [--threads 2] [--backends wasm,native] [--kernels a,b] [--no-torch1] [--repeat 3]
// tokens/s = batch × new tokens / seconds of the whole generate call (prompt fed once, then one token per step),
// after a warm-up call of 8 tokens in the same process. PyTorch runs under every OpenBLAS kernel the CPU supports and
// the fastest counts (bench/lib/openblas.mjs); unless --no-torch1, it also runs on 1 thread under that kernel (a
// reference point: OpenBLAS's 2 threads lose badly on a loaded 2-core machine). On a shared machine one run can be
// several times slower than the next, so each Topiary backend (and PyTorch on 1 thread) runs --repeat times, fresh
// processes, and the fastest counts — as PyTorch's fastest of its kernel runs does. On stories260K both sides start from
// the same prompt ids and must produce the same greedy tokens (checked and printed: an agreement check).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { beforeMeasurement, describeCandidates, fastestKernel, kernelCandidates, kernelJson, kernelSummary, runPython, topiaryEnv } from '../lib/openblas.mjs';
import { SHAPES, root } from '../train/driver.mjs';

const log = (s) => process.stderr.write(`${s}\n`);
const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : dflt);
const o = {
  shapes: opt('shapes', '64,288,512,stories260K').split(','),
  batches: opt('batches', '1,8').split(',').map(Number),
  prompt: Number(opt('prompt', 8)),
  newTokens: Number(opt('new', 200)),
  threads: Number(opt('threads', 2)),
  backends: opt('backends', 'wasm,native').split(','),
  torch1: !argv.includes('--no-torch1'),
  repeat: Number(opt('repeat', 3)),
};
const STORIES = 'assets/models/stories260K/stories260K.bin';
// BOS and the first 7 greedy ids after it (assets/models/stories260K/stories260K.golden.json)
const STORIES_IDS = '1,403,407,261,378,432,383,286';

function shapeArgs(shape, batch) {
  const common = ['--batch', batch, '--prompt', o.prompt, '--new', o.newTokens, '--threads', o.threads];
  if (shape === 'stories260K') return [...common, '--bin', STORIES, '--ids', STORIES_IDS].map(String);
  const s = SHAPES[shape];
  if (!s) throw new Error(`unknown shape ${shape} (known: ${Object.keys(SHAPES).join(', ')}, stories260K)`);
  return [...common, '--dim', s.dim, '--layers', s.layers, '--heads', s.heads, '--kv', s.kv, '--hidden', s.hidden, '--vocab', s.vocab].map(String);
}

/** The fastest of `o.repeat` runs (each a fresh process), with every run's tokens/s kept in `runs`. */
function fastestOf(run) {
  const all = Array.from({ length: o.repeat }, run);
  const ok = all.filter((x) => x.ok);
  if (ok.length === 0) return all[0];
  const best = ok.reduce((a, b) => (b.tokensPerSecond > a.tokensPerSecond ? b : a));
  return { ...best, runs: all.map((x) => (x.ok ? x.tokensPerSecond : null)) };
}

function runTopiary(backend, args) {
  // native: OpenBLAS's own pick from the CPU flags, not this environment's OPENBLAS_CORETYPE (bench/lib/openblas.mjs)
  const r = spawnSync(process.execPath, [join(root, 'bench', 'generate', 'worker.mjs'), '--backend', backend, ...args], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 26, env: topiaryEnv(backend) });
  try {
    return JSON.parse((r.stdout ?? '').trim().split('\n').pop());
  } catch {
    return { ok: false, reason: `exit ${r.status}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}` };
  }
}

const fmt = (x, d = 1) => (x === undefined || x === null || !Number.isFinite(x) ? '—' : x.toFixed(d));
const mb = (b) => (b ? `${(b / 2 ** 20).toFixed(0)}` : '—');
const label = (shape) => (shape === 'stories260K' ? 'stories260K (real)' : `dim ${shape} / ${SHAPES[shape].layers} layers`);

const kernels = kernelCandidates(o.threads);
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
log(`generate: ${machine}; load average at start ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
for (const l of describeCandidates(kernels, o.threads)) log(l);
const script = join(root, 'bench', 'generate', 'torch_generate.py');
const rows = [];
for (const shape of o.shapes) {
  for (const batch of o.batches) {
    const args = shapeArgs(shape, batch);
    const row = { shape, batch, kernels: null, torch: null, torch1: null, topiary: {}, load: [] };
    // Topiary first, then PyTorch, alternating per row so that a change of load hits both sides alike.
    for (const b of o.backends) {
      row.load.push(beforeMeasurement(`generate ${label(shape)} batch ${batch}: topiary ${b}`));
      row.topiary[b] = fastestOf(() => runTopiary(b, args));
      if (!row.topiary[b].ok) log(`    ${b}: unavailable — ${row.topiary[b].reason}${row.topiary[b].fix ? ` (fix: ${row.topiary[b].fix})` : ''}`);
      else log(`    ${b}: ${row.topiary[b].runs.map((x) => fmt(x)).join(' / ')} tokens/s`);
    }
    row.kernels = fastestKernel({ label: `generate ${label(shape)} batch ${batch}`, script, args, threads: o.threads, candidates: kernels,
      value: (j) => j.tokensPerSecond, better: 'higher', unit: 'tok/s', cwd: root });
    row.torch = row.kernels.best?.json ?? { ok: false, reason: row.kernels.runs.map((r) => `${r.label}: ${r.reason}`).join('; ') };
    if (o.torch1 && row.kernels.best) {
      row.load.push(beforeMeasurement(`generate ${label(shape)} batch ${batch}: PyTorch 1 thread, ${row.kernels.chosen}`));
      row.torch1 = fastestOf(() => {
        const r = runPython(script, args.map((a, i) => (args[i - 1] === '--threads' ? '1' : a)), { threads: 1, kernel: row.kernels.best.kernel, cwd: root });
        return r.ok ? r.json : { ok: false, reason: r.reason };
      });
      log(`    PyTorch 1 thread: ${row.torch1.ok ? row.torch1.runs.map((x) => fmt(x)).join(' / ') : row.torch1.reason}`);
    }
    rows.push(row);
  }
}

// Agreement: stories260K, greedy, same weights and prompt: the same tokens on both sides (and every batch row).
const agreement = [];
for (const r of rows.filter((x) => x.shape === 'stories260K')) {
  for (const b of o.backends) {
    const x = r.topiary[b];
    if (!x.ok || !r.torch.ok) continue;
    const n = Math.min(x.ids.length, r.torch.ids.length);
    let first = -1;
    for (let i = 0; i < n && first < 0; i++) if (x.ids[i] !== r.torch.ids[i]) first = i;
    agreement.push(`stories260K batch ${r.batch}, ${b} vs PyTorch: ${first < 0 ? `the same ${n} greedy tokens` : `first difference at token ${first} of ${n}`}; every batch row the same: ${x.rowsAgree ? 'yes' : 'NO'}`);
  }
}

const head = ['model', 'batch', 'PyTorch tok/s (kernel)', ...(o.torch1 ? ['PyTorch 1 thr.'] : []), ...o.backends.flatMap((b) => [`${b} tok/s`, `${b}/PyTorch`]), 'RSS MB PyTorch', ...o.backends.map((b) => `RSS ${b}`), 'load (1 min)'];
const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`];
const verdicts = [];
for (const r of rows) {
  const t = r.torch;
  const cells = [label(r.shape), String(r.batch), t.ok ? `${fmt(t.tokensPerSecond)} (${r.kernels.core})` : `failed: ${t.reason}`];
  if (o.torch1) cells.push(r.torch1?.ok ? fmt(r.torch1.tokensPerSecond) : '—');
  for (const b of o.backends) {
    const x = r.topiary[b];
    cells.push(x.ok ? fmt(x.tokensPerSecond) : 'n/a', x.ok && t.ok ? `${fmt(x.tokensPerSecond / t.tokensPerSecond, 2)}×` : '—');
  }
  cells.push(t.ok ? mb(t.peakRssBytes) : '—', ...o.backends.map((b) => (r.topiary[b].ok ? mb(r.topiary[b].peakRssBytes) : 'n/a')));
  cells.push(r.load.map((l) => l[0].toFixed(1)).join('–'));
  lines.push(`| ${cells.join(' | ')} |`);
  const w = r.topiary.wasm;
  if (w?.ok && t.ok) {
    const ratio = w.tokensPerSecond / t.tokensPerSecond;
    const best1 = r.torch1?.ok ? Math.max(t.tokensPerSecond, r.torch1.tokensPerSecond) : null;
    verdicts.push(`${label(r.shape)} batch ${r.batch}: default (wasm) ${fmt(ratio, 2)}× PyTorch (2 threads) [target ≥ 1.0× ${ratio >= 1 ? 'MET' : 'NOT MET'}]` +
      (best1 ? `; ${fmt(w.tokensPerSecond / best1, 2)}× PyTorch's faster of 1 and 2 threads` : ''));
  }
}
const header = [
  `generate: greedy, KV cache on both sides, prompt ${o.prompt} tokens (stories260K: ${STORIES_IDS.split(',').length}), ${o.newTokens} new tokens per sequence, ${o.threads} threads; tokens/s = batch × new / seconds; Topiary and PyTorch 1 thread: fastest of ${o.repeat} runs, PyTorch 2 threads: fastest kernel`,
  `machine: ${machine}; load average now ${loadavg().map((x) => x.toFixed(1)).join(' ')} (a shared machine makes every number noisy)`,
  ...describeCandidates(kernels, o.threads),
  ...o.backends.map((b) => {
    const x = rows.map((r) => r.topiary[b]).find((y) => y.ok);
    return x ? `topiary ${b}: ${x.capabilities.notes[0]}` : `topiary ${b}: unavailable`;
  }),
];
console.log([...header, '', ...lines, '', 'PyTorch tokens/s under each OpenBLAS kernel (* = fastest, the baseline above):',
  ...rows.map((r) => `  ${label(r.shape)} batch ${r.batch}: ${kernelSummary(r.kernels)}`), '', 'agreement (greedy tokens, same weights and prompt):',
  ...agreement.map((a) => `  ${a}`), '', 'targets:', ...verdicts.map((v) => `  ${v}`)].join('\n'));
const outDir = join(root, 'bench', 'out');
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `generate-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
const strip = (j) => (j && j.ids ? { ...j, ids: j.ids.slice(0, 32) } : j);
writeFileSync(file, JSON.stringify({ name: 'generate', options: o, machine, loadavg: loadavg(), openblas: kernelJson(kernels, rows.map((r) => r.kernels)),
  rows: rows.map((r) => ({ shape: r.shape, batch: r.batch, kernel: r.kernels.core, torch: strip(r.torch), torch1: strip(r.torch1), topiary: Object.fromEntries(Object.entries(r.topiary).map(([k, v]) => [k, strip(v)])), load: r.load })),
  agreement, verdicts }, null, 2));
log(`wrote ${file}`);
