/**
 * The Llama building blocks, named as in the papers: rmsNorm, rope, attention (grouped-query, causal), swiglu.
 * Every op here is differentiable on every tfjs backend: linear layers and batched products use a custom gradient
 * that transposes explicitly (matMul with transpose flags is ~10x slower on wasm), and the embedding lookup has an
 * exact custom gradient through scatterND (the stock gather gradient needs UnsortedSegmentSum, missing on wasm).
 */
import * as tf from '@tensorflow/tfjs-core';
import { FusedKernel, type FusedKernelName } from '@topiary/kernel';
import type { RopeScaling } from './config.js';

type T = tf.Tensor;
type GradResult = { value: T; gradFunc: (dy: T, saved: T[]) => T[] };
/** tfjs types the custom-gradient callback loosely (inputs and the save function share one union). */
function custom(f: (...args: never[]) => GradResult): Parameters<typeof tf.customGrad>[0] {
  return f as unknown as Parameters<typeof tf.customGrad>[0];
}

/**
 * y = x Wᵀ for x [n, in] and W [out, in] (Hugging Face layout). The products are written with transpose flags:
 * the wasm backend plugin's BatchMatMul turns a flag into one explicit transpose (what this function used to do
 * itself), and a BLAS-backed kernel (backend-native) reads the transposed operand in place at no cost.
 */
export const linear2d = tf.customGrad(custom((x: T, w: T, save: tf.GradSaveFunc) => {
  save([x, w]);
  const value = tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D, false, true);
  const gradFunc = (dy: T, saved: T[]): T[] => {
    const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
    return [tf.matMul(dy as tf.Tensor2D, ws), tf.matMul(dy as tf.Tensor2D, xs, true, false)];
  };
  return { value, gradFunc };
})) as unknown as (x: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D;

/** Batched a @ b (same leading dims); the gradient products use transpose flags (see linear2d). */
export const batchMatMul = tf.customGrad(custom((a: T, b: T, save: tf.GradSaveFunc) => {
  save([a, b]);
  const value = tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D);
  const gradFunc = (dy: T, saved: T[]): T[] => {
    const [as, bs] = saved as [tf.Tensor3D, tf.Tensor3D];
    return [tf.matMul(dy as tf.Tensor3D, bs, false, true), tf.matMul(as, dy as tf.Tensor3D, true, false)];
  };
  return { value, gradFunc };
})) as unknown as <R extends tf.Rank>(a: tf.Tensor<R>, b: tf.Tensor<R>) => tf.Tensor<R>;

/** Token embedding lookup: rows of E [vocab, dim] for flat ids [n]; exact gradient by scatter-add. */
const lookup = tf.customGrad(
  custom((e: T, ids: T, save: tf.GradSaveFunc) => {
    // ids go through save() so they outlive the forward's tidy scope until the backward pass
    save([e, ids]);
    const value = tf.gather(e as tf.Tensor2D, ids as tf.Tensor1D);
    const gradFunc = (dy: T, saved: T[]): T[] => {
      const [es, idsSaved] = saved as [tf.Tensor2D, tf.Tensor1D];
      // scatterND sums updates for repeated ids, which is exactly dE = onehot(ids)ᵀ · dy.
      return [tf.scatterND(tf.reshape(idsSaved, [-1, 1]), dy, es.shape), tf.zerosLike(idsSaved)];
    };
    return { value, gradFunc };
  }),
);

export function embedding(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  return lookup(table, ids) as tf.Tensor2D;
}

/**
 * RMSNorm (Zhang & Sennrich): x · rsqrt(Σx² / n + eps) · w over the last axis. `activeDim` is the number of hidden
 * channels that are not masked: masked channels are exactly zero, so dividing by the active count makes a masked
 * model compute what its slimmed copy computes.
 */
export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number, activeDim: number): tf.Tensor2D {
  return tf.mul(tf.mul(x, rmsScale(x, eps, activeDim)), weight);
}

/** RMSNorm's per-row scale r = rsqrt(Σx² / activeDim + eps), [rows, 1]. */
export function rmsScale(x: tf.Tensor, eps: number, activeDim: number): tf.Tensor {
  return tf.rsqrt(tf.add(tf.div(tf.sum(tf.square(x), -1, true), activeDim), eps));
}

/** [b·t, count·hd] → [b, count, t, hd]: the heads of a projection as a batch axis. */
export function splitHeads(y: tf.Tensor, b: number, t: number, count: number, hd: number): tf.Tensor4D {
  // one position (a kv-cache decode step): swapping an axis of length 1 moves no data, so a reshape is the transpose
  if (t === 1) return tf.reshape(y, [b, count, 1, hd]);
  return tf.transpose(tf.reshape(y, [b, t, count, hd]), [0, 2, 1, 3]);
}

/** The inverse of splitHeads: [b, count, t, hd] → [b·t, count·hd]. */
export function mergeHeads(y: tf.Tensor, b: number, t: number, count: number, hd: number): tf.Tensor2D {
  if (t === 1) return tf.reshape(y, [b, count * hd]); // as in splitHeads: no transpose for one position
  return tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [b * t, count * hd]);
}

const f32 = Math.fround;

/**
 * RoPE's inverse frequencies [headDim / 2] for a pass whose last position is seqLen − 1, as transformers'
 * modeling_rope_utils.py computes them (`ROPE_INIT_FUNCTIONS`), in float32 step by step (every intermediate
 * rounded with Math.fround, as torch's float32 tensors round it; a committed table of real configs' frequencies
 * matches bit for bit):
 *   default  f_i = 1 / θ^((2i)/d)                                                (_compute_default_rope_parameters)
 *   linear   f_i / factor                                                   (_compute_linear_scaling_rope_parameters)
 *   dynamic  with seqLen > L (max_position_embeddings): θ' = θ·(factor·seqLen/L − (factor − 1))^(d/(d−2)) in place
 *            of θ; up to L plain RoPE (_compute_dynamic_ntk_parameters, via LlamaRotaryEmbedding's dynamic update)
 *   llama3   wavelength λ_i = 2π/f_i, with λ_lo = original/low_freq_factor, λ_hi = original/high_freq_factor:
 *            λ < λ_hi: f_i;  λ > λ_lo: f_i/factor;  otherwise (1 − s)·f_i/factor + s·f_i with
 *            s = (original/λ − low_freq_factor)/(high_freq_factor − low_freq_factor)          (_compute_llama3_parameters)
 */
export function ropeInvFreq(headDim: number, theta: number, scaling?: RopeScaling, seqLen = 0): Float64Array {
  const half = headDim / 2;
  let base = f32(theta);
  if (scaling?.type === 'dynamic' && seqLen > scaling.maxPositionEmbeddings) {
    // there seqLen is a tensor (max(position_ids) + 1), so the new base is a float32 computation too
    const { factor, maxPositionEmbeddings: L } = scaling;
    const grow = f32(f32(f32(factor * seqLen) / L) - (factor - 1));
    base = f32(theta * f32(Math.pow(grow, headDim / (headDim - 2))));
  }
  const f = new Float64Array(half);
  for (let i = 0; i < half; i++) f[i] = f32(1 / f32(Math.pow(base, f32((2 * i) / headDim))));
  if (scaling?.type === 'linear') for (let i = 0; i < half; i++) f[i] = f32(f[i]! / scaling.factor);
  if (scaling?.type === 'llama3') {
    const { factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositionEmbeddings: original } = scaling;
    const lowWavelen = original / low;
    const highWavelen = original / high;
    for (let i = 0; i < half; i++) {
      const wavelen = f32(f32(2 * Math.PI) / f[i]!);
      if (wavelen < highWavelen) continue;
      if (wavelen > lowWavelen) f[i] = f32(f[i]! / factor);
      else {
        const smooth = f32(f32(f32(original / wavelen) - low) / (high - low));
        f[i] = f32(f32(f32(f32(1 - smooth) * f[i]!) / factor) + f32(smooth * f[i]!));
      }
    }
  }
  return f;
}

/**
 * cos and sin tables [t, headDim] for positions start..start+t-1 (rotate-half layout: frequencies repeated twice),
 * with the model's RoPE scaling when given (dynamic scaling reads the pass's length, start + t). As in
 * LlamaRotaryEmbedding.forward, the angle p·f_i is a float32 product and cos/sin are taken of that float32 angle
 * (llama2.c's run.c computes them in float32 the same way).
 */
export function ropeTables(start: number, t: number, headDim: number, theta: number, scaling?: RopeScaling): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const half = headDim / 2;
  const invFreq = ropeInvFreq(headDim, theta, scaling, start + t);
  const cos = new Float32Array(t * headDim);
  const sin = new Float32Array(t * headDim);
  for (let p = 0; p < t; p++) {
    for (let i = 0; i < half; i++) {
      const angle = f32((start + p) * invFreq[i]!);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[p * headDim + i] = c;
      cos[p * headDim + i + half] = c;
      sin[p * headDim + i] = s;
      sin[p * headDim + i + half] = s;
    }
  }
  return { cos: tf.tensor2d(cos, [t, headDim]), sin: tf.tensor2d(sin, [t, headDim]) };
}

/**
 * Rotary position embedding (Su et al.), Hugging Face's rotate-half convention: within each head the first half
 * of the channels pairs with the second half. x: [b, heads, t, headDim]; cos/sin: [t, headDim].
 */
export function rope(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  const half = x.shape[3] / 2;
  const [x1, x2] = tf.split(x, [half, half], 3);
  const rotated = tf.concat([tf.neg(x2!), x1!], 3);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
}

/** Additive causal mask [t, tk] for queries at positions start.. over keys 0..start+t-1. */
export function causalMask(start: number, t: number): tf.Tensor2D {
  const tk = start + t;
  const m = new Float32Array(t * tk);
  for (let i = 0; i < t; i++) for (let j = start + i + 1; j < tk; j++) m[i * tk + j] = -1e30;
  return tf.tensor2d(m, [t, tk]);
}

/**
 * Scaled dot-product attention with grouped-query heads: query head h reads kv head headKvMap[h].
 * q: [b, nHeads, t, hd]; k, v: [b, nKvHeads, tk, hd]; mask [t, tk]. Returns [b, nHeads, t, hd].
 */
export function attention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, headKvMap: readonly number[], mask: tf.Tensor2D): tf.Tensor4D {
  const [b, nHeads, t, hd] = q.shape;
  const tk = k.shape[2];
  const nKv = k.shape[1];
  let kh = k;
  let vh = v;
  const identity = nKv === nHeads && headKvMap.every((g, h) => g === h);
  if (!identity) {
    // Pick each query head's kv head with slices (gather's gradient is missing on wasm).
    // (a split into one piece breaks tfjs's split gradient: a pruned layer can keep a single kv head)
    const ks = nKv === 1 ? [k] : tf.split(k, nKv, 1);
    const vs = nKv === 1 ? [v] : tf.split(v, nKv, 1);
    kh = tf.concat(headKvMap.map((g) => ks[g]!), 1) as tf.Tensor4D;
    vh = tf.concat(headKvMap.map((g) => vs[g]!), 1) as tf.Tensor4D;
  }
  const q3 = tf.reshape(q, [b * nHeads, t, hd]) as tf.Tensor3D;
  const kT = tf.reshape(tf.transpose(kh, [0, 1, 3, 2]), [b * nHeads, hd, tk]) as tf.Tensor3D;
  const v3 = tf.reshape(vh, [b * nHeads, tk, hd]) as tf.Tensor3D;
  const scores = tf.add(tf.mul(batchMatMul(q3, kT), 1 / Math.sqrt(hd)), mask);
  const probs = tf.softmax(scores, -1) as tf.Tensor3D;
  return tf.reshape(batchMatMul(probs, v3), [b, nHeads, t, hd]);
}

/** SwiGLU feed-forward (Shazeer): down(silu(gate x) ⊙ up x), given the two projections already applied. */
export function swiglu(gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D {
  return tf.mul(tf.mul(gate, tf.sigmoid(gate)), up);
}

/** Whether the active tfjs engine has a backend's fused kernel (see the kernel's `FusedKernel`). */
export function hasFused(name: FusedKernelName): boolean {
  const backend = tf.getBackend();
  return backend !== undefined && tf.getKernel(name, backend) !== undefined;
}

/**
 * Row-wise softmax cross-entropy of logits z [n, vocab] against int32 targets [n]:
 *   rows_i = logsumexp(z_i) − z_i[t_i],   grad = (softmax(z) − onehot(t)) · scale   (only when withGrad)
 * One pass in a backend's fused kernel when it has one (`FusedKernel.softmaxCrossEntropy`), composite ops otherwise.
 * Not differentiable itself: callers that train use `grad` (it is the gradient of Σ rows · scale).
 */
export function softmaxCrossEntropyRows(z: tf.Tensor2D, targets: tf.Tensor1D, withGrad: boolean, scale = 1): { rows: tf.Tensor1D; grad?: tf.Tensor2D } {
  if (hasFused(FusedKernel.softmaxCrossEntropy)) {
    const out = tf.engine().runKernel(FusedKernel.softmaxCrossEntropy, { logits: z, targets }, { withGrad, scale }) as unknown as tf.Tensor[];
    return withGrad ? { rows: out[0] as tf.Tensor1D, grad: out[1] as tf.Tensor2D } : { rows: out[0] as tf.Tensor1D };
  }
  const [n, vocab] = z.shape;
  const max = tf.max(z, -1, true);
  const e = tf.exp(tf.sub(z, max));
  const sum = tf.sum(e, -1, true);
  const flat = tf.add(tf.mul(tf.range(0, n, 1, 'int32'), tf.scalar(vocab, 'int32')), targets);
  const picked = tf.gather(tf.reshape(z, [-1]), flat);
  const rows = tf.sub(tf.add(tf.log(tf.reshape(sum, [-1])), tf.reshape(max, [-1])), picked) as tf.Tensor1D;
  if (!withGrad) return { rows };
  // int32 one-hot, then cast: wasm's OneHot writes integer bits when asked for float32 directly (tfjs 4.22)
  const onehot = tf.cast(tf.oneHot(targets, vocab), 'float32');
  return { rows, grad: tf.mul(tf.sub(tf.div(e, sum), onehot), scale) as tf.Tensor2D };
}

/**
 * Distillation from a teacher's logits (Hinton et al. 2015), mixed with the next-token cross-entropy:
 *   rows_i = (1 − α) · CE_i + α · T² · KL( softmax(zt_i / T) ‖ softmax(z_i / T) )
 *   grad   = ((1 − α) · (softmax(z) − onehot(t)) + α · T · (softmax(z / T) − softmax(zt / T))) · scale
 * (T² keeps the soft-target gradient on the scale of the hard one when T changes; α = 0 is plain CE.)
 */
export interface Distillation {
  temperature: number;
  /** Weight of the distillation term, in [0, 1]. */
  alpha: number;
}

/** The teacher's side of a distilled loss: its final-normed hidden states [n, d_t] and output projection [vocab, d_t]. */
export interface TeacherHead extends Distillation {
  h: tf.Tensor2D;
  weight: tf.Tensor2D;
}

export function distillationRows(
  z: tf.Tensor2D,
  zt: tf.Tensor2D,
  targets: tf.Tensor1D,
  d: Distillation,
  withGrad: boolean,
  scale = 1,
): { rows: tf.Tensor1D; grad?: tf.Tensor2D } {
  const { temperature: T, alpha } = d;
  const ce = softmaxCrossEntropyRows(z, targets, withGrad, scale);
  const logQs = tf.logSoftmax(tf.div(z, T));
  const logQt = tf.logSoftmax(tf.div(zt, T));
  const qt = tf.exp(logQt);
  const kl = tf.sum(tf.mul(qt, tf.sub(logQt, logQs)), 1) as tf.Tensor1D;
  const rows = tf.add(tf.mul(ce.rows, 1 - alpha), tf.mul(kl, alpha * T * T)) as tf.Tensor1D;
  if (!withGrad) return { rows };
  const soft = tf.mul(tf.sub(tf.exp(logQs), qt), alpha * T * scale);
  return { rows, grad: tf.add(tf.mul(ce.grad!, 1 - alpha), soft) as tf.Tensor2D };
}

/**
 * Mean cross-entropy of logits [n, vocab] against integer targets [n], fused with its gradient:
 *   loss = mean_i( logsumexp(z_i) − z_i[t_i] ),   ∂loss/∂z_i = (softmax(z_i) − onehot(t_i)) / n.
 * The gradient is computed with the loss (one exp over the logits) and kept for the backward pass.
 */
const fusedCrossEntropy = tf.customGrad(
  custom((logits: T, targets: T, save: tf.GradSaveFunc) => {
    const n = logits.shape[0]!;
    const { value, grad } = tf.tidy(() => {
      const r = softmaxCrossEntropyRows(logits as tf.Tensor2D, targets as tf.Tensor1D, true, 1 / n);
      return { value: tf.div(tf.sum(r.rows), n), grad: r.grad! };
    });
    save([grad, targets]);
    const gradFunc = (dy: T, saved: T[]): T[] => [tf.mul(saved[0]!, dy), tf.zerosLike(saved[1]!)];
    return { value, gradFunc };
  }),
);

/**
 * Mean cross-entropy of the logits h Wᵀ (h [n, d], W [vocab, d]) against integer targets [n], computed in row
 * chunks so the full [n, vocab] logits never exist at once:
 *   loss = mean_i( logsumexp(z_i) − z_i[t_i] ),  z_c = h_c Wᵀ
 *   g_c = (softmax(z_c) − onehot(t_c)) / n,  ∂h_c = g_c W,  ∂W = Σ_c g_cᵀ h_c
 * When gradients are being recorded, ∂h and ∂W are computed in the same pass as the loss, chunk by chunk, and
 * kept (n·d + vocab·d floats) for the backward pass, which only scales them by the incoming gradient — so each
 * chunk's logits are computed once, not again in the backward pass. Evaluation (no tape) computes the loss only.
 * With `teacher`, each row's loss is the distilled one (`distillationRows`), the teacher's logits of the same rows
 * formed chunk by chunk too: recovery and pruning-aware training distil at any vocabulary size.
 * With a 32,000-word vocabulary a step of 2,048 tokens would otherwise hold several 262 MB tensors (logits, their
 * softmax, the one-hot and the gradient), which the wasm heap cannot.
 */
export function linearCrossEntropy(h: tf.Tensor2D, weight: tf.Tensor2D, targets: tf.Tensor1D, chunkElements?: number, teacher?: TeacherHead): tf.Scalar {
  const [n] = h.shape;
  const vocab = weight.shape[0];
  const taping = tf.engine().isTapeOn();
  // Chunks of 32M logits (128 MB) when only the loss is needed, 16M when the gradient is kept beside each chunk's
  // logits: larger products run faster (measured at 15M parameters: eval 0.70 → 0.62 s per 2,048 tokens), and the
  // training chunk stays small enough for a 42M model's step to fit tfjs-wasm's 2 GB of addressable heap.
  chunkElements ??= (taping ? 1 << 24 : 1 << 25) >> (teacher ? 1 : 0); // a teacher's chunk of logits sits beside the student's
  const rows = Math.max(1, Math.floor(chunkElements / vocab));
  const chunks: [number, number][] = [];
  for (let start = 0; start < n; start += rows) chunks.push([start, Math.min(rows, n - start)]);
  const t32 = tf.cast(targets, 'int32') as tf.Tensor1D;
  // the teacher's logits of the same rows, chunk by chunk (never whole either); constants for the gradient
  const teacherLogits = (start: number, size: number): tf.Tensor2D =>
    tf.matMul(tf.slice(teacher!.h, [start, 0], [size, -1]), teacher!.weight, false, true) as tf.Tensor2D;
  if (!taping) {
    return tf.tidy(() => {
      let total: tf.Tensor = tf.scalar(0);
      for (const [start, size] of chunks) {
        const next = tf.tidy(() => {
          const z = tf.matMul(tf.slice(h, [start, 0], [size, -1]), weight, false, true) as tf.Tensor2D;
          const tc = tf.slice(t32, [start], [size]) as tf.Tensor1D;
          const rows = teacher ? distillationRows(z, teacherLogits(start, size), tc, teacher, false).rows : softmaxCrossEntropyRows(z, tc, false).rows;
          return tf.add(total, tf.sum(rows));
        });
        total.dispose();
        total = next;
      }
      return tf.div(total, n) as tf.Scalar;
    });
  }
  const op = tf.customGrad(
    custom((x: T, w: T, t: T, save: tf.GradSaveFunc) => {
      // Wᵀ once for every chunk, and ∂Wᵀ = Σ h_cᵀ g_c accumulated in that layout: the transposed operands are then
      // the small h_c, never a [chunk, vocab] or [vocab, d] one (a transpose flag costs an explicit transpose on wasm).
      const wT = tf.transpose(w) as tf.Tensor2D;
      let total: tf.Tensor = tf.scalar(0);
      let dwT: tf.Tensor = tf.zerosLike(wT);
      const dxs: tf.Tensor[] = [];
      for (const [start, size] of chunks) {
        const [nextTotal, dx, nextDwT] = tf.tidy(() => {
          const xc = tf.slice(x, [start, 0], [size, -1]) as tf.Tensor2D;
          const z = tf.matMul(xc, wT) as tf.Tensor2D;
          const tc = tf.slice(t as tf.Tensor1D, [start], [size]) as tf.Tensor1D;
          const r = teacher ? distillationRows(z, teacherLogits(start, size), tc, teacher, true, 1 / n) : softmaxCrossEntropyRows(z, tc, true, 1 / n);
          return [tf.add(total, tf.sum(r.rows)), tf.matMul(r.grad!, w as tf.Tensor2D), tf.add(dwT, tf.matMul(xc, r.grad!, true, false))];
        });
        total.dispose();
        dwT.dispose();
        total = nextTotal;
        dwT = nextDwT;
        dxs.push(dx);
      }
      const value = tf.div(total, n);
      const dx = dxs.length === 1 ? dxs[0]! : tf.concat(dxs, 0);
      const dw = tf.transpose(dwT);
      dwT.dispose();
      wT.dispose();
      save([dx, dw, t]);
      const gradFunc = (dy: T, saved: T[]): T[] => [tf.mul(saved[0]!, dy), tf.mul(saved[1]!, dy), tf.zerosLike(saved[2]!)];
      return { value, gradFunc };
    }),
  );
  return op(h, weight, t32) as tf.Scalar;
}

/** Mean cross-entropy of logits [n, vocab] against integer targets [n] (fused forward and gradient, see above). */
export function crossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
  return fusedCrossEntropy(logits, tf.cast(targets, 'int32')) as tf.Scalar;
}
