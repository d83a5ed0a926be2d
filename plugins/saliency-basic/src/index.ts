/**
 * The basic saliency criteria post-training pruners use: `magnitude` |W_ij| and `wanda` |W_ij|·‖X_j‖₂. Each is a
 * plain object implementing the kernel's `Saliency`; pruners resolve them by name, so a user can swap in their own.
 */
import { definePlugin, Tokens, TopiaryError, type Saliency, type SaliencyStats } from '@topiary/kernel';

/** The caller's reusable buffer when it is large enough, else a new array: one score per weight element. */
function scoresBuffer(stats: SaliencyStats): Float32Array {
  const n = stats.weight.length;
  return stats.into && stats.into.length >= n ? stats.into.subarray(0, n) : new Float32Array(n);
}

/** |W_ij|: the weakest baseline, needs nothing but the weights. */
export const magnitudeSaliency: Saliency = Object.freeze({
  name: 'magnitude',
  description: '|W_ij| — weight magnitude',
  needs: ['weights'] as const,
  rowwise: true,
  score(stats: SaliencyStats): Float32Array {
    const out = scoresBuffer(stats);
    for (let i = 0; i < out.length; i++) out[i] = Math.abs(stats.weight[i]!);
    return out;
  },
});

/**
 * |W_ij| · ‖X_j‖₂ (Sun et al., 2023), with ‖X_j‖² = Σ over calibration tokens of the squared input feature j.
 * Computed in float32 as |W| times float32(√Σx²), so rankings match a float32 PyTorch reference exactly.
 */
export const wandaSaliency: Saliency = Object.freeze({
  name: 'wanda',
  description: '|W_ij|·‖X_j‖₂ — weight magnitude times the input feature norm over calibration tokens',
  needs: ['weights', 'activations'] as const,
  rowwise: true,
  score(stats: SaliencyStats): Float32Array {
    const sq = stats.activationSquares;
    if (!sq || sq.length !== stats.cols) {
      throw new TopiaryError('E_USAGE', `wanda saliency needs the input-feature squares of ${stats.param} (${stats.cols} values)`, {
        where: 'saliency.wanda',
        hint: 'run it through a pruner that collects calibration activations (wanda, sparsegpt) and pass --calibration',
      });
    }
    const norms = new Float32Array(stats.cols);
    for (let j = 0; j < stats.cols; j++) norms[j] = Math.sqrt(sq[j]!);
    const out = scoresBuffer(stats);
    for (let r = 0; r < stats.rows; r++) {
      const base = r * stats.cols;
      for (let j = 0; j < stats.cols; j++) out[base + j] = Math.fround(Math.abs(stats.weight[base + j]!) * norms[j]!);
    }
    return out;
  },
});

export const basicSaliencies: readonly Saliency[] = [magnitudeSaliency, wandaSaliency];

export default definePlugin({
  name: 'saliency-basic',
  description: 'magnitude and Wanda saliency criteria',
  register(container) {
    for (const s of basicSaliencies) container.register(Tokens.Saliency, { useValue: s });
  },
});
