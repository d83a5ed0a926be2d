/**
 * OWL — outlier-weighted layer-wise sparsity (Yin et al., 2024). Each block's outlier ratio is the fraction of its
 * Wanda scores (all its linear layers together) above M × their mean; blocks with more outliers keep more weights.
 * The ratios are min-max scaled to [0, 2λ] and shifted so that the mean keep-ratio is 1 − target, as in the
 * authors' release (defaults M = 5, λ = 0.08: their LLaMA scripts).
 */
import { TopiaryError } from '@topiary/kernel';

export type OwlOptions = {
  /** Outlier threshold: a score is an outlier above M × the layer mean. */
  M: number;
  /** Half-width of the sparsity range around the target. */
  lambda: number;
};

export const OWL_DEFAULTS: Readonly<OwlOptions> = Object.freeze({ M: 5, lambda: 0.08 });

/** Fraction of scores above M × their mean, over several score arrays taken together (float64 sums). */
export function outlierRatio(scores: readonly Float32Array[], M: number): number {
  let sum = 0;
  let count = 0;
  for (const s of scores) {
    for (let i = 0; i < s.length; i++) sum += s[i]!;
    count += s.length;
  }
  if (count === 0) return 0;
  const threshold = M * (sum / count);
  let above = 0;
  for (const s of scores) for (let i = 0; i < s.length; i++) if (s[i]! > threshold) above++;
  return above / count;
}

/**
 * Per-block sparsities from per-block outlier ratios: mean equals `target`, spread 2λ, more outliers → lower
 * sparsity. Equal ratios give the uniform target. Throws when a block would leave [0, 1).
 */
export function owlSparsities(ratios: readonly number[], target: number, lambda: number): number[] {
  const lo = Math.min(...ratios);
  const hi = Math.max(...ratios);
  const span = hi - lo;
  const scaled = ratios.map((r) => (span === 0 ? 0 : ((r - lo) / span) * 2 * lambda));
  const mean = scaled.reduce((a, b) => a + b, 0) / scaled.length;
  const sparsities = scaled.map((s) => 1 - (s - mean + (1 - target)));
  const bad = sparsities.findIndex((s) => !(s >= 0 && s < 1));
  if (bad >= 0) {
    throw new TopiaryError('E_USAGE', `OWL gives block ${bad} a sparsity of ${sparsities[bad]!.toFixed(4)}, outside [0, 1)`, {
      where: '--owl',
      hint: 'lower the OWL lambda or move the target sparsity away from 0 and 1',
    });
  }
  return sparsities;
}
