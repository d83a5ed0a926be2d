#!/usr/bin/env node
// Wall time and peak memory of Wanda and SparseGPT: `topiary prune` (tfjs-wasm + host float64 math) vs the PyTorch
// reference (bench/reference/prune_reference.py), same model, same calibration windows, same machine, one run each.
// Usage (from the repo root, after `pnpm build`): node bench/prune/bench.mjs [--samples 128] [--seqlen 256] [--backends wasm,native]
// (the native column needs `pnpm --filter @topiary/backend-native build:native`; it is skipped with the reason otherwise)
// A script, not a test: numbers are noisy on a shared machine. Cost growth with model size: bench/prune/sizes.mjs.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describeCandidates, kernelCandidates, kernelJson, kernelSummary, PYTHON } from '../lib/openblas.mjs';
import { PRUNE_TARGETS as targets, topiaryPrune, torchPrune } from './runners.mjs';

const root = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');
const arg = (flag, dflt) => (process.argv.includes(flag) ? process.argv[process.argv.indexOf(flag) + 1] : dflt);
const samples = arg('--samples', '128');
const seqlen = arg('--seqlen', '256');
const model = arg('--model', join(root, 'assets', 'models', 'stories260K-hf'));
const text = arg('--calibration', join(root, 'assets', 'data', 'tinystories_val_head.txt'));
const work = mkdtempSync(join(tmpdir(), 'topiary-bench-prune-'));
const calib = join(work, 'calibration.json');

// PyTorch on the same thread count as Topiary's native backend (OpenBLAS threads), timed under every OpenBLAS kernel
// the CPU supports (bench/lib/openblas.mjs); the fastest kernel's time is the baseline.
const threads = Number(arg('--threads', String(availableParallelism())));
const kernels = kernelCandidates(threads);
console.error(`PyTorch: ${PYTHON}, ${threads} OpenBLAS thread(s)`);
for (const l of describeCandidates(kernels, threads)) console.error(l);
const backends = arg('--backends', 'wasm,native').split(',');
const rows = [];
for (const method of ['wanda', 'sparsegpt']) {
  let py; // the reference runs once per method, after Topiary's first backend, on the same calibration windows
  for (const backend of backends) {
    const ts = topiaryPrune({ backend, out: join(work, `${method}-${backend}`), model, method, calibration: text, samples, seqlen, calib });
    if (ts.unavailable) {
      console.error(`${method} on ${backend}: unavailable — ${ts.unavailable}`);
      continue;
    }
    py ??= torchPrune({ method, calib, model, threads, candidates: kernels, label: `${method} reference (stories260K)` });
    rows.push({ method, backend, tsSeconds: ts.seconds, pySeconds: py.seconds, tsPeak: ts.peakRssBytes, pyPeak: py.peakRssBytes, blas: py.blas, threads: py.threads, torchKernel: py.kernel, kernels: py.kernels });
  }
}
const mb = (b) => `${(b / 2 ** 20).toFixed(0)} MB`;
console.log(`model ${model}; calibration ${samples} × ${seqlen} tokens; one run each (shared machine: noisy)`);
for (const l of describeCandidates(kernels, threads)) console.log(l);
console.log(`Topiary processes keep this environment (the native backend's OPENBLAS_CORETYPE excepted: OpenBLAS's own pick, bench/lib/openblas.mjs nativeEnv): OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? '(unset)'}, OPENBLAS_L2_SIZE=${process.env.OPENBLAS_L2_SIZE ?? '(unset)'}`);
console.log('method     | backend | topiary s | torch s | torch kernel | time ratio | topiary peak RSS | torch peak RSS | memory ratio | target');
for (const r of rows) {
  const ratio = r.tsSeconds / r.pySeconds;
  console.log(
    `${r.method.padEnd(10)} | ${r.backend.padEnd(7)} | ${r.tsSeconds.toFixed(2).padStart(9)} | ${r.pySeconds.toFixed(2).padStart(7)} | ${String(r.torchKernel).padEnd(12)} | ${(r.tsSeconds / r.pySeconds).toFixed(2).padStart(9)}× |` +
      ` ${mb(r.tsPeak).padStart(16)} | ${mb(r.pyPeak).padStart(14)} | ${(r.tsPeak / r.pyPeak).toFixed(2).padStart(11)}× | ≤ ${targets[r.method]}× ${ratio <= targets[r.method] ? 'MET' : 'NOT MET'}`,
  );
}
console.log(`torch: ${threads} OpenBLAS thread(s) (torch intra-op threads ${rows[0]?.threads}); topiary wasm: products and Gram on its WebAssembly GEMM (worker threads; TOPIARY_WASM_THREADS), other ops tfjs-wasm on 1 thread, float64 host math; native: OpenBLAS products/Gram and fused kernels. Peak RSS is the whole process.`);
const choices = [...new Map(rows.map((r) => [r.method, r.kernels])).values()];
for (const c of choices) console.log(`PyTorch seconds under each OpenBLAS kernel, ${c.label} (* = fastest, the baseline): ${kernelSummary(c)}`);
mkdirSync(join(root, 'bench', 'out'), { recursive: true });
const file = join(root, 'bench', 'out', `prune-bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ model, samples, seqlen, threads, cpu: cpus()[0]?.model, loadavg: loadavg(), openblas: kernelJson(kernels, choices),
  rows: rows.map(({ kernels: _, ...r }) => r) }, null, 2));
console.error(`wrote ${file}`);
