/**
 * AdamW (Loshchilov & Hutter) with decoupled weight decay on matrices only (norm weights are not decayed) and
 * global-norm gradient clipping, written out here rather than taken from tfjs so the trainer owns its state:
 * the moments are saved in checkpoints, zeroed where groups are masked, and carried through `slim()`.
 *
 *   coef = min(1, clip / (‖g‖ + 1e-6));  g ← coef·g
 *   θ ← θ·(1 − lr·wd)                              (matrices only)
 *   m ← β₁m + (1−β₁)g;   v ← β₂v + (1−β₂)g²
 *   θ ← θ − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)
 */
import * as tf from '@tensorflow/tfjs';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the global gradient norm to this value; 0 turns clipping off. */
  clipNorm: number;
}

export const defaultAdamW: AdamWOptions = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clipNorm: 1 };

/** Host copy of the optimiser state, keyed by parameter name. */
export interface AdamWState {
  t: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export class AdamW {
  /** Steps taken so far (the bias-correction exponent of the next step is t + 1). */
  t = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();

  constructor(
    params: ReadonlyMap<string, tf.Variable>,
    readonly options: AdamWOptions = defaultAdamW,
    state?: AdamWState,
  ) {
    for (const [name, p] of params) {
      const m0 = state?.m.get(name);
      const v0 = state?.v.get(name);
      this.m.set(name, tf.variable(m0 ? tf.tensor(m0, p.shape) : tf.zerosLike(p), false));
      this.v.set(name, tf.variable(v0 ? tf.tensor(v0, p.shape) : tf.zerosLike(p), false));
    }
    if (state) this.t = state.t;
  }

  /** Clip factor for a gradient of global norm `gradNorm`. */
  clipCoefficient(gradNorm: number): number {
    return this.options.clipNorm > 0 ? Math.min(1, this.options.clipNorm / (gradNorm + 1e-6)) : 1;
  }

  /** One update of every parameter that has a gradient. */
  step(params: ReadonlyMap<string, tf.Variable>, grads: ReadonlyMap<string, tf.Tensor>, lr: number, gradNorm: number): void {
    this.t += 1;
    const { beta1, beta2, eps, weightDecay } = this.options;
    const coef = this.clipCoefficient(gradNorm);
    const c1 = 1 - beta1 ** this.t;
    const c2 = 1 - beta2 ** this.t;
    for (const [name, p] of params) {
      const g0 = grads.get(name);
      if (!g0) continue;
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      tf.tidy(() => {
        const g = coef === 1 ? g0 : tf.mul(g0, coef);
        const m1 = tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1));
        const v1 = tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2));
        m.assign(m1);
        v.assign(v1);
        const decayed = weightDecay > 0 && p.rank >= 2 ? tf.mul(p, 1 - lr * weightDecay) : p;
        const update = tf.div(tf.mul(tf.div(m1, c1), lr), tf.add(tf.sqrt(tf.div(v1, c2)), eps));
        p.assign(tf.sub(decayed, update));
      });
    }
  }

  /** Multiply the moments by keep masks (1 keep, 0 pruned): masked groups restart from zero state. */
  maskState(keep: ReadonlyMap<string, tf.Tensor>): void {
    for (const [name, k] of keep) {
      const m = this.m.get(name);
      const v = this.v.get(name);
      if (!m || !v) continue;
      tf.tidy(() => {
        m.assign(tf.mul(m, k));
        v.assign(tf.mul(v, k));
      });
    }
  }

  exportState(): AdamWState {
    const m = new Map<string, Float32Array>();
    const v = new Map<string, Float32Array>();
    for (const [name, t] of this.m) m.set(name, t.dataSync() as Float32Array);
    for (const [name, t] of this.v) v.set(name, t.dataSync() as Float32Array);
    return { t: this.t, m, v };
  }

  dispose(): void {
    for (const t of this.m.values()) t.dispose();
    for (const t of this.v.values()) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

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
