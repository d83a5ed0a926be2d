#!/usr/bin/env node
// Cost growth of Wanda and SparseGPT with the parameter count: `topiary prune` vs the PyTorch reference
// (bench/reference/prune_reference.py bench --model DIR) on random LLaMAs of growing width (tok512 vocabulary, so
// the shipped tokenizer and calibration text work), same calibration windows on both sides. Fits cost ∝ params^k.
// Usage (repo root, after `pnpm build`): node bench/prune/sizes.mjs [--dims 64,128,256] [--layers 4] [--samples 32] [--seqlen 128] [--backends wasm,native] [--methods wanda,sparsegpt] [--repeat 3]
// Each side keeps its fastest run: PyTorch's of its 5 OpenBLAS kernels (5 fresh processes), Topiary's of --repeat fresh
// processes (a single run against a best of 5 would charge Topiary all the run-to-run noise).
// A script, not a test: numbers are noisy on a shared machine. Writes bench/out/prune-sizes-<time>.json.
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describeCandidates, kernelCandidates, kernelJson, kernelSummary } from '../lib/openblas.mjs';
import { fitExponent } from '../train/driver.mjs';
import { PRUNE_TARGETS, topiaryPrune, torchPrune } from './runners.mjs';

const root = resolve(new URL('.', import.meta.url).pathname, '..', '..');
const arg = (flag, dflt) => (process.argv.includes(flag) ? process.argv[process.argv.indexOf(flag) + 1] : dflt);
const dims = arg('--dims', '64,128,256').split(',').map(Number);
const layers = Number(arg('--layers', '4'));
const samples = arg('--samples', '32');
const repeat = Number(arg('--repeat', '3'));
const methods = arg('--methods', 'wanda,sparsegpt').split(',');
const seqlen = arg('--seqlen', '128');
const text = arg('--calibration', join(root, 'assets', 'data', 'tinystories_val_head.txt'));
const work = mkdtempSync(join(tmpdir(), 'topiary-bench-prune-sizes-'));
const base = join(root, 'assets', 'models', 'stories260K-hf');
const backends = arg('--backends', 'wasm,native').split(',');
// PyTorch on the same OpenBLAS threads as Topiary's native backend, timed under every OpenBLAS kernel the CPU
// supports (bench/lib/openblas.mjs); per size and method the fastest kernel's time is the baseline.
const threads = Number(arg('--threads', String(availableParallelism())));
const kernels = kernelCandidates(threads);
for (const l of describeCandidates(kernels, threads)) process.stderr.write(`${l}\n`);
const choices = [];

const { createLlama, saveModel } = await import(join(root, 'packages', 'model-llama', 'dist', 'index.js'));
// The random models are made on tfjs's cpu engine (the model package imports tfjs-core only and registers none).
const tf = createRequire(join(root, 'packages', 'model-llama', 'package.json'))('@tensorflow/tfjs');
await tf.setBackend('cpu');
const rows = [];
for (const dim of dims) {
  const dir = join(work, `dim${dim}`);
  mkdirSync(dir, { recursive: true });
  const heads = Math.max(1, dim / 32);
  const model = createLlama({ vocabSize: 512, dim, nLayers: layers, nHeads: heads, nKvHeads: heads, hiddenDim: Math.round((dim * 8) / 3 / 4) * 4, maxSeqLen: 512, tiedEmbeddings: true }, { seed: 7 });
  await saveModel(model, dir);
  const params = model.parameterCount();
  model.dispose();
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(base, f), join(dir, f));
  for (const method of methods) {
    const calib = join(work, `calib-${dim}-${method}.json`);
    let py;
    for (const backend of backends) {
      let ts;
      const times = [];
      for (let r = 0; r < repeat && !ts?.unavailable; r++) {
        const run = topiaryPrune({ backend, out: join(work, `out-${dim}-${method}-${backend}-${r}`), model: dir, method, calibration: text, samples, seqlen, calib });
        if (!run.unavailable) times.push(run.seconds.toFixed(2));
        if (!ts || run.unavailable || run.seconds < ts.seconds) ts = run;
      }
      if (times.length > 1) process.stderr.write(`dim ${dim} ${method} ${backend}: topiary runs ${times.join(' / ')} s (fastest kept)\n`);
      if (ts.unavailable) {
        process.stderr.write(`dim ${dim} ${method} on ${backend}: unavailable — ${ts.unavailable}\n`);
        continue;
      }
      if (!py) {
        py = torchPrune({ method, calib, model: dir, threads, candidates: kernels, label: `${method} reference, dim ${dim}` });
        choices.push(py.kernels);
      }
      rows.push({ dim, params, method, backend, tsSeconds: ts.seconds, pySeconds: py.seconds, tsPeak: ts.peakRssBytes, pyPeak: py.peakRssBytes, torchKernel: py.kernel });
      process.stderr.write(`dim ${dim} ${method} ${backend}: topiary ${ts.seconds.toFixed(2)} s, torch ${py.seconds.toFixed(2)} s\n`);
    }
  }
}
console.log(`prune cost growth: random LLaMAs (vocab 512, ${layers} layers), calibration ${samples} × ${seqlen}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
for (const l of describeCandidates(kernels, threads)) console.log(l);
console.log('| method | backend | dim | params | topiary s | torch s | torch kernel | time ratio | target |\n|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const ratio = r.tsSeconds / r.pySeconds;
  const target = PRUNE_TARGETS[r.method];
  console.log(`| ${r.method} | ${r.backend} | ${r.dim} | ${(r.params / 1e6).toFixed(2)}M | ${r.tsSeconds.toFixed(2)} | ${r.pySeconds.toFixed(2)} | ${r.torchKernel} | ${ratio.toFixed(2)}× | ≤ ${target}× ${ratio <= target ? 'MET' : 'NOT MET'} |`);
}
const exps = {};
for (const method of methods) {
  const rs = rows.filter((r) => r.method === method);
  const torchRows = rs.filter((r, i) => rs.findIndex((q) => q.dim === r.dim) === i); // one reference run per size
  exps[method] = { torch: fitExponent(torchRows.map((r) => [r.params, r.pySeconds])) };
  for (const b of backends) exps[method][b] = fitExponent(rs.filter((r) => r.backend === b).map((r) => [r.params, r.tsSeconds]));
  console.log(`${method}: seconds ∝ params^k — ${Object.entries(exps[method]).map(([k, v]) => `${k} k=${v?.toFixed(2)}`).join(', ')}`);
}
mkdirSync(join(root, 'bench', 'out'), { recursive: true });
const file = join(root, 'bench', 'out', `prune-sizes-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
for (const c of choices) console.log(`PyTorch seconds per OpenBLAS kernel, ${c.label} (* = fastest): ${kernelSummary(c)}`);
writeFileSync(file, JSON.stringify({ dims, layers, samples, seqlen, threads, rows, exponents: exps, loadavg: loadavg(), openblas: kernelJson(kernels, choices) }, null, 2));
process.stderr.write(`wrote ${file}\n`);
