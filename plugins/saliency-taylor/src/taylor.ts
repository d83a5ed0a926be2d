/**
 * Taylor saliency (LLM-Pruner, Ma et al. 2023). Zeroing a weight w changes the loss by
 *   ΔL ≈ −g·w + ½ w² H_ii        (second-order Taylor expansion around the trained weights, diagonal Hessian)
 * and LLM-Pruner approximates the diagonal Hessian by the empirical Fisher, H_ii ≈ g² (averaged over batches).
 *
 * - `taylor-element`:      |w·g|                  first order, per element.
 * - `taylor-element-2nd`:  |w·g − ½ w² H_ii|       first plus the Fisher second-order term, per element.
 * - `taylor-vector`:       w·g (signed) per element; a group member's importance is |Σ_slice w·g| — the first
 *                          order change when the whole slice is removed at once. The |Σ| is taken where groups are
 *                          scored (`@topiary/structured-core` groupImportance), because it needs the slice.
 */
import { TopiaryError, type Saliency, type SaliencyStats } from '@topiary/kernel';

function need(stats: SaliencyStats, name: string): Float32Array {
  if (!stats.grad) {
    throw new TopiaryError('E_INTERNAL', `saliency ${name} needs gradients for ${stats.param}, but none were collected`, { where: stats.param });
  }
  if (stats.grad.length !== stats.weight.length) {
    throw new TopiaryError('E_INTERNAL', `gradient of ${stats.param} has ${stats.grad.length} entries for ${stats.weight.length} weights`, {
      where: stats.param,
    });
  }
  return stats.grad;
}

export function taylorElementScores(weight: Float32Array, grad: Float32Array): Float32Array {
  const out = new Float32Array(weight.length);
  for (let i = 0; i < weight.length; i++) out[i] = Math.abs(weight[i]! * grad[i]!);
  return out;
}

/** |g·w − ½ w² H_ii| with H_ii = gradSquared (the Fisher diagonal), or g² when only one gradient is known. */
export function taylorSecondOrderScores(weight: Float32Array, grad: Float32Array, gradSquared?: Float32Array): Float32Array {
  const out = new Float32Array(weight.length);
  for (let i = 0; i < weight.length; i++) {
    const w = weight[i]!;
    const g = grad[i]!;
    const h = gradSquared ? gradSquared[i]! : g * g;
    out[i] = Math.abs(g * w - 0.5 * w * w * h);
  }
  return out;
}

export function taylorProducts(weight: Float32Array, grad: Float32Array): Float32Array {
  const out = new Float32Array(weight.length);
  for (let i = 0; i < weight.length; i++) out[i] = weight[i]! * grad[i]!;
  return out;
}

export const taylorElement: Saliency = Object.freeze({
  name: 'taylor-element',
  description: 'first-order Taylor |w·g| per element (LLM-Pruner element-wise)',
  needs: ['weights', 'grads'] as const,
  level: 'element' as const,
  score: (s: SaliencyStats) => taylorElementScores(s.weight, need(s, 'taylor-element')),
});

export const taylorElementSecondOrder: Saliency = Object.freeze({
  name: 'taylor-element-2nd',
  description: 'second-order Taylor |w·g − ½w²H_ii| per element, H_ii ≈ g² (Fisher)',
  needs: ['weights', 'grads'] as const,
  level: 'element' as const,
  score: (s: SaliencyStats) => taylorSecondOrderScores(s.weight, need(s, 'taylor-element-2nd'), s.gradSquared),
});

export const taylorVector: Saliency = Object.freeze({
  name: 'taylor-vector',
  description: 'vector-level Taylor |Σ w·g| over each group member (element scores are the signed w·g)',
  needs: ['weights', 'grads'] as const,
  level: 'vector' as const,
  score: (s: SaliencyStats) => taylorProducts(s.weight, need(s, 'taylor-vector')),
});

export const taylorSaliencies: readonly Saliency[] = [taylorElement, taylorElementSecondOrder, taylorVector];
