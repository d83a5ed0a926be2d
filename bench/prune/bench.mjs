#!/usr/bin/env node
// Wall time and peak memory of Wanda and SparseGPT: `topiary prune` (tfjs-wasm + host float64 math) vs the PyTorch
// reference (bench/reference/prune_reference.py), same model, same calibration windows, same machine, one run each.
// Usage (from the repo root, after `pnpm build`): node bench/prune/bench.mjs [--samples 128] [--seqlen 256] [--backends wasm,native]
// (the native column needs `pnpm --filter @topiary/backend-native build:native`; it is skipped with the reason otherwise)
// A script, not a test: numbers are noisy on a shared machine. Cost growth with model size: bench/prune/sizes.mjs.
import { mkdtempSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pythonEnv } from '../train/driver.mjs';
import { topiaryPrune, torchPrune } from './runners.mjs';

const root = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');
const arg = (flag, dflt) => (process.argv.includes(flag) ? process.argv[process.argv.indexOf(flag) + 1] : dflt);
const samples = arg('--samples', '128');
const seqlen = arg('--seqlen', '256');
const model = arg('--model', join(root, 'assets', 'models', 'stories260K-hf'));
const text = arg('--calibration', join(root, 'assets', 'data', 'tinystories_val_head.txt'));
const python = process.env.TOPIARY_PYTHON ?? '/usr/bin/python3';
const work = mkdtempSync(join(tmpdir(), 'topiary-bench-prune-'));
const calib = join(work, 'calibration.json');

// Python's environment as in bench/train: the same thread count as Topiary's native backend (OpenBLAS threads),
// and the OpenBLAS kernel the CPU supports when OpenBLAS 0.3.21 does not recognise it (else torch runs ~3× slower).
const threads = Number(arg('--threads', String(availableParallelism())));
const { env: pyEnv, detected, chosen } = pythonEnv(threads);
console.error(`PyTorch: ${python}, ${threads} OpenBLAS thread(s), core detected ${detected}${chosen !== detected ? `, using ${chosen}` : ''}`);
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
    py ??= torchPrune({ method, calib, model, env: pyEnv });
    rows.push({ method, backend, tsSeconds: ts.seconds, pySeconds: py.seconds, tsPeak: ts.peakRssBytes, pyPeak: py.peakRssBytes, blas: py.blas, threads: py.threads });
  }
}
const mb = (b) => `${(b / 2 ** 20).toFixed(0)} MB`;
console.log(`model ${model}; calibration ${samples} × ${seqlen} tokens; one run each (shared machine: noisy)`);
const targets = { wanda: 1.0, sparsegpt: 1.5 };
console.log('method     | backend | topiary s | torch s | time ratio | topiary peak RSS | torch peak RSS | memory ratio | target');
for (const r of rows) {
  const ratio = r.tsSeconds / r.pySeconds;
  console.log(
    `${r.method.padEnd(10)} | ${r.backend.padEnd(7)} | ${r.tsSeconds.toFixed(2).padStart(9)} | ${r.pySeconds.toFixed(2).padStart(7)} | ${(r.tsSeconds / r.pySeconds).toFixed(2).padStart(9)}× |` +
      ` ${mb(r.tsPeak).padStart(16)} | ${mb(r.pyPeak).padStart(14)} | ${(r.tsPeak / r.pyPeak).toFixed(2).padStart(11)}× | ≤ ${targets[r.method]}× ${ratio <= targets[r.method] ? 'MET' : 'NOT MET'}`,
  );
}
console.log(`torch: ${threads} OpenBLAS thread(s) (torch intra-op threads ${rows[0]?.threads}); topiary wasm: products and Gram on its WebAssembly GEMM (worker threads; TOPIARY_WASM_THREADS), other ops tfjs-wasm on 1 thread, float64 host math; native: OpenBLAS products/Gram and fused kernels. Peak RSS is the whole process.`);
