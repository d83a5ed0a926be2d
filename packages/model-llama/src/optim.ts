/**
 * Training: AdamW (Loshchilov & Hutter) with decoupled weight decay that skips norm weights (and, optionally, the
 * embedding), global gradient-norm clipping, and a `trainStep` that returns the loss and the pre-clip grad norm.
 * Masks stay applied: after every update the model's masks are re-applied, so pruned elements and groups stay zero.
 *
 *   coef = min(1, clip / (‖g‖ + 1e-6));  g ← coef·g
 *   θ ← θ·(1 − lr·wd)                              (not for norm weights)
 *   m ← β₁m + (1−β₁)g;   v ← β₂v + (1−β₂)g²
 *   θ ← θ − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)
 *
 * The one optimiser of the project: recovery fine-tuning and the trainer use it too. Its state can be exported
 * (checkpoints), imported (resume, or carried through `slim()` by the caller) and masked (pruned groups restart
 * from zero moments).
 */
import * as tf from '@tensorflow/tfjs-core';
import { FusedKernel, TopiaryError, type CausalLM } from '@topiary/kernel';
import { EMBED } from './names.js';
import { hasFused } from './ops.js';

export interface AdamWOptions {
  /** Default learning rate of `apply` (default 1e-3); every update can pass its own. */
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (default 0.1); never applied to norm weights or projection biases. */
  weightDecay?: number;
  /** Decay the token embedding too (default true, as in most Llama recipes; lm_head is always decayed). */
  decayEmbeddings?: boolean;
  /** Clip the global gradient norm to this value (default 1; 0 disables). */
  clipNorm?: number;
}

/** Host copy of the optimiser state, keyed by parameter name. */
export interface AdamWState {
  t: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export interface StepResult {
  loss: number;
  /** Global L2 norm of the gradients before clipping. */
  gradNorm: number;
}

function isNorm(name: string): boolean {
  return name.endsWith('layernorm.weight') || name === 'model.norm.weight';
}

/** Projection biases (Qwen2's q/k/v), which, like norm weights, are not decayed. */
function isBias(name: string): boolean {
  return name.endsWith('.bias');
}

export class AdamW {
  readonly options: Required<AdamWOptions>;
  private t = 0;
  private readonly m = new Map<string, tf.Tensor>();
  private readonly v = new Map<string, tf.Tensor>();

  constructor(options: AdamWOptions = {}, state?: AdamWState) {
    const lr = options.lr ?? 1e-3;
    if (!(lr >= 0)) throw new TopiaryError('E_USAGE', `learning rate must be >= 0, got ${options.lr}`, { where: 'lr' });
    this.options = {
      lr,
      beta1: options.beta1 ?? 0.9,
      beta2: options.beta2 ?? 0.95,
      eps: options.eps ?? 1e-8,
      weightDecay: options.weightDecay ?? 0.1,
      decayEmbeddings: options.decayEmbeddings ?? true,
      clipNorm: options.clipNorm ?? 1,
    };
    if (state) {
      this.t = state.t;
      for (const [name, m] of state.m) this.m.set(name, tf.tensor(m));
      for (const [name, v] of state.v) this.v.set(name, tf.tensor(v));
    }
  }

  get stepCount(): number {
    return this.t;
  }

  /** Clip factor for a gradient of global norm `gradNorm`. */
  clipCoefficient(gradNorm: number): number {
    return this.options.clipNorm > 0 ? Math.min(1, this.options.clipNorm / (gradNorm + 1e-6)) : 1;
  }

  /** Whether weight decay applies to a parameter. */
  decays(name: string): boolean {
    if (isNorm(name) || isBias(name)) return false;
    if (name === EMBED) return this.options.decayEmbeddings;
    return true;
  }

  /** Apply one update from `grads` (by parameter name) to `model`; returns the pre-clip global grad norm. */
  apply(model: CausalLM, grads: ReadonlyMap<string, tf.Tensor>, lr = this.options.lr): number {
    const gradNorm = tf.tidy(() => {
      const sq = [...grads.values()].map((g) => tf.sum(tf.square(g)));
      return Math.sqrt(sq.length ? (tf.addN(sq).dataSync()[0] as number) : 0);
    });
    if (!Number.isFinite(gradNorm)) {
      throw new TopiaryError('E_NUMERIC', `gradient norm is ${gradNorm}; the step was not applied`, { hint: 'lower the learning rate' });
    }
    this.step(model.parameters(), grads, lr, gradNorm);
    model.applyMasks();
    return gradNorm;
  }

  /**
   * The update itself, for callers that computed the global gradient norm already (the trainer checks it for
   * NaN/Inf tensor by tensor first). Parameters without a gradient are left alone.
   */
  step(params: ReadonlyMap<string, tf.Variable>, grads: ReadonlyMap<string, tf.Tensor>, lr: number, gradNorm: number): void {
    const { beta1, beta2, eps, weightDecay } = this.options;
    const coef = this.clipCoefficient(gradNorm);
    this.t += 1;
    const bc1 = 1 - beta1 ** this.t;
    const bc2 = 1 - beta2 ** this.t;
    for (const [name, g] of grads) {
      const p = params.get(name);
      if (!p) throw new TopiaryError('E_USAGE', `gradient for unknown parameter "${name}"`, { where: name });
      const oldM = this.m.get(name);
      if (oldM && oldM.size !== p.size) {
        throw new TopiaryError('E_USAGE', `optimiser state of "${name}" has shape [${oldM.shape}] but the parameter is [${p.shape}]`, {
          where: name,
          hint: 'create a new AdamW after slim() (carry the state over with exportState and the kept indices)',
        });
      }
      const decay = weightDecay > 0 && this.decays(name) ? lr * weightDecay : 0;
      const [m, v] = tf.tidy(() => {
        const m0 = oldM ? tf.reshape(oldM, p.shape) : tf.zerosLike(p);
        const oldV = this.v.get(name);
        const v0 = oldV ? tf.reshape(oldV, p.shape) : tf.zerosLike(p);
        if (hasFused(FusedKernel.adamw)) {
          // one pass over θ, g, m, v in the backend's kernel (same formulas as below)
          const attrs = { lr, beta1, beta2, eps, decay, gradScale: coef, bc1, bc2 };
          const [next, m, v] = tf.engine().runKernel(FusedKernel.adamw, { param: p, grad: g, m: m0, v: v0 }, attrs) as unknown as tf.Tensor[];
          p.assign(next!);
          return [m!, v!];
        }
        const gc = coef === 1 ? g : tf.mul(g, coef);
        const m = tf.add(tf.mul(m0, beta1), tf.mul(gc, 1 - beta1));
        const v = tf.add(tf.mul(v0, beta2), tf.mul(tf.square(gc), 1 - beta2));
        const next = decay > 0 ? tf.mul(p, 1 - decay) : p;
        const update = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), eps));
        p.assign(tf.sub(next, tf.mul(update, lr)));
        return [m, v];
      });
      oldM?.dispose();
      this.v.get(name)?.dispose();
      this.m.set(name, m);
      this.v.set(name, v);
    }
  }

  /** Multiply the moments by keep masks (1 keep, 0 pruned): masked groups restart from zero state. */
  maskState(keep: ReadonlyMap<string, tf.Tensor>): void {
    for (const [name, k] of keep) {
      for (const moments of [this.m, this.v]) {
        const t = moments.get(name);
        if (!t) continue;
        moments.set(name, tf.tidy(() => tf.mul(tf.reshape(t, k.shape), k)));
        t.dispose();
      }
    }
  }

  /**
   * The state on the host (for checkpoints). With `params`, every parameter gets an entry (zero moments for one that
   * never had a gradient), so a checkpoint always holds a full set; without, only the parameters updated so far.
   */
  exportState(params?: ReadonlyMap<string, tf.Variable>): AdamWState {
    const m = new Map<string, Float32Array>();
    const v = new Map<string, Float32Array>();
    for (const [name, t] of this.m) m.set(name, t.dataSync() as Float32Array);
    for (const [name, t] of this.v) v.set(name, t.dataSync() as Float32Array);
    for (const [name, p] of params ?? []) {
      if (!m.has(name)) m.set(name, new Float32Array(p.size));
      if (!v.has(name)) v.set(name, new Float32Array(p.size));
    }
    return { t: this.t, m, v };
  }

  dispose(): void {
    for (const t of this.m.values()) t.dispose();
    for (const t of this.v.values()) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/** Loss and gradients of every trainable parameter for ids [batch, seq]. */
export function lossAndGrads(model: CausalLM, ids: tf.Tensor2D): { loss: number; grads: Map<string, tf.Tensor> } {
  const names = [...model.parameters().keys()];
  const vars = names.map((n) => model.parameters().get(n)!);
  const { value, grads } = tf.variableGrads(() => model.loss(ids), vars);
  const loss = value.dataSync()[0] as number;
  value.dispose();
  const out = new Map<string, tf.Tensor>();
  for (const [i, name] of names.entries()) {
    const g = grads[vars[i]!.name];
    if (g) out.set(name, g);
  }
  return { loss, grads: out };
}

/** One optimiser step on ids [batch, seq]: forward, backward, clip, AdamW update, masks re-applied. */
export function trainStep(model: CausalLM, optimizer: AdamW, ids: tf.Tensor2D, lr?: number): StepResult {
  const { loss, grads } = lossAndGrads(model, ids);
  try {
    if (!Number.isFinite(loss)) throw new TopiaryError('E_NUMERIC', `training step produced loss ${loss}`, { hint: 'lower the learning rate' });
    const gradNorm = optimizer.apply(model, grads, lr);
    return { loss, gradNorm };
  } finally {
    for (const g of grads.values()) g.dispose();
  }
}
