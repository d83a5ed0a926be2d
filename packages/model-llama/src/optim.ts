/**
 * Training: AdamW (Loshchilov & Hutter) with decoupled weight decay that skips norm weights (and, optionally, the
 * embedding), global gradient-norm clipping, and a `trainStep` that returns the loss and the pre-clip grad norm.
 * Masks stay applied: after every update the model's masks are re-applied, so pruned elements and groups stay zero.
 */
import * as tf from '@tensorflow/tfjs';
import { TopiaryError, type CausalLM } from '@topiary/kernel';
import { EMBED } from './names.js';

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (default 0.1); never applied to norm weights. */
  weightDecay?: number;
  /** Decay the token embedding too (default true, as in most Llama recipes; lm_head is always decayed). */
  decayEmbeddings?: boolean;
  /** Clip the global gradient norm to this value (default 1; 0 disables). */
  clipNorm?: number;
}

export interface StepResult {
  loss: number;
  /** Global L2 norm of the gradients before clipping. */
  gradNorm: number;
}

function isNorm(name: string): boolean {
  return name.endsWith('layernorm.weight') || name === 'model.norm.weight';
}

export class AdamW {
  readonly options: Required<AdamWOptions>;
  private t = 0;
  private readonly m = new Map<string, tf.Tensor>();
  private readonly v = new Map<string, tf.Tensor>();

  constructor(options: AdamWOptions) {
    if (!(options.lr >= 0)) throw new TopiaryError('E_USAGE', `learning rate must be >= 0, got ${options.lr}`, { where: 'lr' });
    this.options = {
      lr: options.lr,
      beta1: options.beta1 ?? 0.9,
      beta2: options.beta2 ?? 0.95,
      eps: options.eps ?? 1e-8,
      weightDecay: options.weightDecay ?? 0.1,
      decayEmbeddings: options.decayEmbeddings ?? true,
      clipNorm: options.clipNorm ?? 1,
    };
  }

  get stepCount(): number {
    return this.t;
  }

  /** Whether weight decay applies to a parameter. */
  decays(name: string): boolean {
    if (isNorm(name)) return false;
    if (name === EMBED) return this.options.decayEmbeddings;
    return true;
  }

  /** Apply one update from `grads` (by parameter name) to `model`; returns the pre-clip global grad norm. */
  apply(model: CausalLM, grads: ReadonlyMap<string, tf.Tensor>, lr = this.options.lr): number {
    const { beta1, beta2, eps, weightDecay, clipNorm } = this.options;
    const params = model.parameters();
    const gradNorm = tf.tidy(() => {
      const sq = [...grads.values()].map((g) => tf.sum(tf.square(g)));
      return Math.sqrt(sq.length ? (tf.addN(sq).dataSync()[0] as number) : 0);
    });
    if (!Number.isFinite(gradNorm)) {
      throw new TopiaryError('E_NUMERIC', `gradient norm is ${gradNorm}; the step was not applied`, { hint: 'lower the learning rate' });
    }
    const coef = clipNorm > 0 ? Math.min(1, clipNorm / (gradNorm + 1e-6)) : 1;
    this.t += 1;
    const bc1 = 1 - beta1 ** this.t;
    const bc2 = 1 - beta2 ** this.t;
    for (const [name, g] of grads) {
      const p = params.get(name);
      if (!p) throw new TopiaryError('E_USAGE', `gradient for unknown parameter "${name}"`, { where: name });
      const oldM = this.m.get(name);
      if (oldM && oldM.shape.join() !== p.shape.join()) {
        throw new TopiaryError('E_USAGE', `optimiser state of "${name}" has shape [${oldM.shape}] but the parameter is [${p.shape}]`, {
          where: name,
          hint: 'create a new AdamW after slim()',
        });
      }
      const [m, v] = tf.tidy(() => {
        const gc = coef === 1 ? g : tf.mul(g, coef);
        const m = tf.add(tf.mul(oldM ?? tf.zerosLike(p), beta1), tf.mul(gc, 1 - beta1));
        const v = tf.add(tf.mul(this.v.get(name) ?? tf.zerosLike(p), beta2), tf.mul(tf.square(gc), 1 - beta2));
        let next: tf.Tensor = p;
        if (weightDecay > 0 && this.decays(name)) next = tf.mul(next, 1 - lr * weightDecay);
        const update = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), eps));
        p.assign(tf.sub(next, tf.mul(update, lr)));
        return [m, v];
      });
      oldM?.dispose();
      this.v.get(name)?.dispose();
      this.m.set(name, m);
      this.v.set(name, v);
    }
    model.applyMasks();
    return gradNorm;
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
