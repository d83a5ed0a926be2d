/**
 * The group criteria of pruning-aware training, scored from the gradients a training step already has. Both are
 * group level: their signed element terms are summed over the whole group and the group scores |Σ| — the Taylor
 * estimate of the loss change when the group's weights are set to zero at once (δ = −w):
 *
 *     taylor-fisher   ΔL_G ≈ −Σ_{i∈G} w_i g_i + ½ Σ_{i∈G} w_i² H_ii,   H_ii ≈ E[g_i²] (diagonal empirical Fisher)
 *     taylor          ΔL_G ≈ −Σ_{i∈G} w_i g_i
 *
 * (LLM-Pruner's vector-level Taylor with its second-order term, taken over the group as EfficientLLM ranks groups.)
 * They are ordinary kernel `Saliency` objects, so a training run resolves them like any installed criterion; they
 * live here because the trainer needs them without a plugin.
 */
import { TopiaryError, type Saliency, type SaliencyStats } from '@topiary/kernel';

function gradientOf(s: SaliencyStats, name: string): Float32Array {
  if (!s.grad || s.grad.length !== s.weight.length) {
    throw new TopiaryError('E_INTERNAL', `criterion ${name} needs the gradient of ${s.param}`, { where: s.param });
  }
  return s.grad;
}

/** Signed per-element terms −w·g (+ ½·w²·H with H the Fisher diagonal, or g² when only one gradient is known). */
export function taylorTerms(weight: Float32Array, grad: Float32Array, fisher: Float32Array | undefined, secondOrder: boolean): Float32Array {
  const out = new Float32Array(weight.length);
  for (let i = 0; i < weight.length; i++) {
    const w = weight[i]!;
    const g = grad[i]!;
    out[i] = secondOrder ? -w * g + 0.5 * w * w * (fisher ? fisher[i]! : g * g) : -w * g;
  }
  return out;
}

export const taylorFisher: Saliency = Object.freeze({
  name: 'taylor-fisher',
  description: '|−Σw·g + ½Σw²H| over the whole group, H ≈ g² (diagonal Fisher): Taylor first plus second order',
  needs: ['weights', 'grads'] as const,
  level: 'group' as const,
  score: (s: SaliencyStats) => taylorTerms(s.weight, gradientOf(s, 'taylor-fisher'), s.gradSquared, true),
});

export const taylorGroup: Saliency = Object.freeze({
  name: 'taylor',
  description: '|Σw·g| over the whole group: first-order Taylor',
  needs: ['weights', 'grads'] as const,
  level: 'group' as const,
  score: (s: SaliencyStats) => taylorTerms(s.weight, gradientOf(s, 'taylor'), undefined, false),
});

/** The criteria a training run has without any plugin. */
export const trainingCriteria: readonly Saliency[] = [taylorFisher, taylorGroup];
