/**
 * RIA — Relative Importance and Activations (Zhang et al., "Plug-and-Play", ICLR 2024):
 *
 *   RIA_ij = ( |W_ij| / Σ_k |W_ik|  +  |W_ij| / Σ_k |W_kj| ) · ‖X_j‖₂^a        (a = 0.5 in the paper)
 *
 * The relative terms keep a whole row or column from being wiped out just because its weights are small
 * overall; the activation norm brings in the calibration data. No gradients needed.
 */
import { TopiaryError, type Saliency, type SaliencyStats } from '@topiary/kernel';

export interface RiaOptions {
  /** Exponent on the activation norm. */
  power: number;
}

export function riaScores(stats: SaliencyStats, options: RiaOptions = { power: 0.5 }): Float32Array {
  const { weight, rows, cols, activationSquares } = stats;
  if (!activationSquares) {
    throw new TopiaryError('E_USAGE', 'the ria saliency needs activation statistics (calibration data)', {
      where: stats.param,
      hint: 'use it with a pruner that collects activations, e.g. --method wanda --saliency ria',
    });
  }
  const rowSums = new Float64Array(rows);
  const colSums = new Float64Array(cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const a = Math.abs(weight[i * cols + j]!);
      rowSums[i]! += a;
      colSums[j]! += a;
    }
  }
  const scores = new Float32Array(rows * cols);
  for (let j = 0; j < cols; j++) {
    const act = Math.sqrt(activationSquares[j]!) ** options.power;
    for (let i = 0; i < rows; i++) {
      const a = Math.abs(weight[i * cols + j]!);
      const relative = (rowSums[i]! > 0 ? a / rowSums[i]! : 0) + (colSums[j]! > 0 ? a / colSums[j]! : 0);
      scores[i * cols + j] = relative * act;
    }
  }
  return scores;
}

export function createRiaSaliency(options: RiaOptions = { power: 0.5 }): Saliency {
  return {
    name: 'ria',
    description: 'Relative importance × activation norm^a (RIA, Zhang et al. 2024); gradient-free',
    needs: ['weights', 'activations'],
    score: (stats) => riaScores(stats, options),
  };
}
