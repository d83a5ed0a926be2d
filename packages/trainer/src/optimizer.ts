/**
 * The trainer's optimiser settings and its numerical guards. The optimiser itself is model-llama's AdamW (one
 * implementation for the project): its state is exported into checkpoints, masked where groups are pruned, and
 * carried through `slim()` by `slimWithState`.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { AdamWOptions as ModelAdamWOptions } from '@topiary/model-llama';

export { AdamW, type AdamWState } from '@topiary/model-llama';

/** AdamW settings of a training run (the learning rate comes from the LR schedule at every step). */
export type AdamWOptions = Required<Pick<ModelAdamWOptions, 'beta1' | 'beta2' | 'eps' | 'weightDecay' | 'clipNorm'>>;

export const defaultAdamW: AdamWOptions = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clipNorm: 1 };

/** Squared L2 norm of every gradient, summed in float64 on the host; also says which tensor is not finite. */
export function gradientNorm(grads: ReadonlyMap<string, tf.Tensor>): { norm: number; nonFinite?: string } {
  const names = [...grads.keys()];
  const sums = tf.tidy(() => tf.stack(names.map((n) => tf.sum(tf.square(grads.get(n)!)))).dataSync());
  let total = 0;
  for (let i = 0; i < names.length; i++) {
    const s = sums[i]!;
    if (!Number.isFinite(s)) return { norm: Number.NaN, nonFinite: names[i] };
    total += s;
  }
  return { norm: Math.sqrt(total) };
}

/** The first parameter holding a NaN or ±Inf, or undefined. */
export function firstNonFinite(params: ReadonlyMap<string, tf.Tensor>): string | undefined {
  const names = [...params.keys()];
  const sums = tf.tidy(() => tf.stack(names.map((n) => tf.sum(tf.abs(params.get(n)!)))).dataSync());
  for (let i = 0; i < names.length; i++) if (!Number.isFinite(sums[i]!)) return names[i];
  return undefined;
}
