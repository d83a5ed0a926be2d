// Shared by bench/prune/bench.mjs and bench/prune/sizes.mjs: one `topiary prune` run on a backend, and the PyTorch
// reference on the calibration windows that run dumped, under each OpenBLAS kernel (the fastest is the baseline).
// Each in its own process (peak RSS is its own).
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { beforeMeasurement, fastestKernel, topiaryEnv } from '../lib/openblas.mjs';

const root = resolve(new URL('.', import.meta.url).pathname, '..', '..');

/** Time ratio to PyTorch each method must stay within (issue 23: both ≤ 1.0×; issue 12 had allowed SparseGPT 1.5×). */
export const PRUNE_TARGETS = { wanda: 1.0, sparsegpt: 1.0 };

/**
 * `topiary --backend B prune … --in-memory` with the calibration windows written to `calib`; the CLI's JSON result
 * ({ seconds, peakRssBytes, … }), or { unavailable: reason } when the backend does not load or the run fails.
 *
 * `--in-memory` so both sides time the same work: the reference loads the whole model before its timer and writes
 * nothing; the CLI's `seconds` covers the pruning only (calibration embedding, per-block statistics, masks and
 * updates, the re-forward), and with the model loaded up front and written after, neither the block loads nor the
 * block writes of a streamed prune (0.4–0.5 s of a 12.8M prune, fsyncs included) fall inside it. Peak RSS then
 * counts the whole model too, as the reference's does.
 */
export function topiaryPrune({ backend, out, model, method, calibration, samples, seqlen, calib }) {
  beforeMeasurement(`topiary prune ${method} on ${backend}`);
  try {
    return JSON.parse(
      execFileSync(process.execPath, [join(root, 'apps', 'cli', 'dist', 'bin.js'), '--json', '--backend', backend, '--out', out, 'prune', '--model', model,
        '--method', method, '--sparsity', '0.5', '--calibration', calibration, '--samples', samples, '--seqlen', seqlen, '--dump-calibration', calib, '--in-memory'],
      // native: OpenBLAS's own pick from the CPU flags, not this environment's OPENBLAS_CORETYPE (bench/lib/openblas.mjs)
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28, env: topiaryEnv(backend) }),
    );
  } catch (err) {
    return { unavailable: String(err.stderr ?? err.message).trim().split('\n').slice(-2).join(' | ') };
  }
}

/**
 * bench/reference/prune_reference.py on the same model and windows, under every OpenBLAS kernel of `candidates`
 * (bench/lib/openblas.mjs: fresh process each, kernel checked); the fastest run's { seconds, peakRssBytes, threads,
 * blas } plus `kernels` (the choice with every kernel's time). The script is run as it is: the kernel is chosen
 * from this side, through the environment.
 */
export function torchPrune({ method, calib, model, threads, candidates, label }) {
  const kernels = fastestKernel({
    label: label ?? `${method} reference`, script: join(root, 'bench', 'reference', 'prune_reference.py'), args: ['bench', '--method', method, '--fixture', calib, '--model', model],
    threads, candidates, value: (j) => j.seconds, better: 'lower', unit: 's', cwd: root,
  });
  if (!kernels.best) throw new Error(`prune_reference.py failed under every OpenBLAS kernel: ${kernels.runs.map((r) => `${r.label}: ${r.reason}`).join('; ')}`);
  return { ...kernels.best.json, kernel: kernels.core, kernels };
}
