#!/usr/bin/env node
// Wall time and peak memory of Wanda and SparseGPT: `topiary prune` (tfjs-wasm + host float64 math) vs the PyTorch
// reference (bench/reference/prune_reference.py), same model, same calibration windows, same machine, one run each.
// Usage (from the repo root, after `pnpm build`): node bench/prune/bench.mjs [--samples 128] [--seqlen 256]
// A script, not a test: numbers are noisy on a shared machine. Cost growth with model size: bench/prune/sizes.mjs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');
const arg = (flag, dflt) => (process.argv.includes(flag) ? process.argv[process.argv.indexOf(flag) + 1] : dflt);
const samples = arg('--samples', '128');
const seqlen = arg('--seqlen', '256');
const model = arg('--model', join(root, 'assets', 'models', 'stories260K-hf'));
const text = arg('--calibration', join(root, 'assets', 'data', 'tinystories_val_head.txt'));
const python = process.env.TOPIARY_PYTHON ?? '/usr/bin/python3';
const work = mkdtempSync(join(tmpdir(), 'topiary-bench-prune-'));
const calib = join(work, 'calibration.json');

// OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set on some machines for older OpenBLAS builds) are unset for Python only.
const pyEnv = { ...process.env };
delete pyEnv.OPENBLAS_CORETYPE;
delete pyEnv.OPENBLAS_L2_SIZE;
const rows = [];
for (const method of ['wanda', 'sparsegpt']) {
  const ts = JSON.parse(
    execFileSync(process.execPath, [join(root, 'apps', 'cli', 'dist', 'bin.js'), '--json', '--out', join(work, method), 'prune', '--model', model,
      '--method', method, '--sparsity', '0.5', '--calibration', text, '--samples', samples, '--seqlen', seqlen, '--dump-calibration', calib],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 28 }),
  );
  const py = JSON.parse(execFileSync(python, [join(root, 'bench', 'reference', 'prune_reference.py'), 'bench', '--method', method, '--fixture', calib], { encoding: 'utf8', env: pyEnv }).trim().split('\n').pop());
  rows.push({ method, tsSeconds: ts.seconds, pySeconds: py.seconds, tsPeak: ts.peakRssBytes, pyPeak: py.peakRssBytes, blas: py.blas, threads: py.threads });
}
const mb = (b) => `${(b / 2 ** 20).toFixed(0)} MB`;
console.log(`model ${model}; calibration ${samples} × ${seqlen} tokens; one run each (shared machine: noisy)`);
console.log('method     | topiary s | torch s | time ratio | topiary peak RSS | torch peak RSS | memory ratio');
for (const r of rows) {
  console.log(
    `${r.method.padEnd(10)} | ${r.tsSeconds.toFixed(2).padStart(9)} | ${r.pySeconds.toFixed(2).padStart(7)} | ${(r.tsSeconds / r.pySeconds).toFixed(2).padStart(9)}× |` +
      ` ${mb(r.tsPeak).padStart(16)} | ${mb(r.pyPeak).padStart(14)} | ${(r.tsPeak / r.pyPeak).toFixed(2).padStart(11)}×`,
  );
}
console.log(`torch: ${rows[0].threads} thread(s), BLAS ${rows[0].blas}; topiary: tfjs-wasm (1 thread) + float64 host math. Peak RSS is the whole process.`);
