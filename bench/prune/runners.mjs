// Shared by bench/prune/bench.mjs and bench/prune/sizes.mjs: one `topiary prune` run on a backend, and one run of
// the PyTorch reference on the calibration windows that run dumped. Each in its own process (peak RSS is its own).
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';

const root = resolve(new URL('.', import.meta.url).pathname, '..', '..');
const python = process.env.TOPIARY_PYTHON ?? '/usr/bin/python3';

/**
 * `topiary --backend B prune …` with the calibration windows written to `calib`; the CLI's JSON result
 * ({ seconds, peakRssBytes, … }), or { unavailable: reason } when the backend does not load or the run fails.
 */
export function topiaryPrune({ backend, out, model, method, calibration, samples, seqlen, calib }) {
  try {
    return JSON.parse(
      execFileSync(process.execPath, [join(root, 'apps', 'cli', 'dist', 'bin.js'), '--json', '--backend', backend, '--out', out, 'prune', '--model', model,
        '--method', method, '--sparsity', '0.5', '--calibration', calibration, '--samples', samples, '--seqlen', seqlen, '--dump-calibration', calib],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 }),
    );
  } catch (err) {
    return { unavailable: String(err.stderr ?? err.message).trim().split('\n').slice(-2).join(' | ') };
  }
}

/** bench/reference/prune_reference.py on the same model and windows: { seconds, peakRssBytes, threads, blas }. */
export function torchPrune({ method, calib, model, env }) {
  const argv = [join(root, 'bench', 'reference', 'prune_reference.py'), 'bench', '--method', method, '--fixture', calib, '--model', model];
  return JSON.parse(execFileSync(python, argv, { encoding: 'utf8', env }).trim().split('\n').pop());
}
