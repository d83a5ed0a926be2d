/**
 * The transformer block, written once. `blockForward` is the model's only block forward: evaluation, capture hooks,
 * kv-cache decoding, and gradients through tfjs autodiff (when capture hooks or a cache are on under a gradient tape)
 * all run it. `trainableBlock` runs the same forward as one tape node with a hand-written backward, for training:
 *
 * - tfjs's tape keeps every tensor each recorded op saves, and every activation gradient, until the whole backward
 *   pass ends. Here the block is one tape node: its forward runs in a `tidy` that keeps only what the backward needs
 *   (the `BlockSaved` record), and its backward runs in a `tidy` that returns only the gradients.
 * - The backward is written out (below), so rmsNorm, RoPE, softmax and SwiGLU cost a few fused-size ops instead of
 *   tfjs's generic gradients of each elementary op.
 *
 * Forward, on x [N = b·t, d] at positions start..start+t−1 (keys/values of 0..start−1 come from a kv cache):
 *   r₁ = (Σ_active x² / A + ε)^(−½),  h = x·r₁·w₁
 *   q, k, v = h Wqᵀ + b_q, h Wkᵀ + b_k, h Wvᵀ + b_v  (biases optional: Qwen2)
 *   Q = rope(q), K = [K_past; rope(k)], V = [V_past; v]  (kv heads shared for GQA)
 *   P = softmax(Q Kᵀ/√hd + mask),  O = P V,  x₂ = x + merge(O) Woᵀ
 *   r₂ = (Σ_active x₂² / A + ε)^(−½),  h₂ = x₂·r₂·w₂
 *   g, u = h₂ Wgᵀ, h₂ Wuᵀ;  m = g·σ(g)·u;  y = x₂ + m Wdᵀ
 * Backward (training: start 0, no cache), from dy:
 *   dWd = dyᵀ m;  dm = dy Wd;  du = dm·silu(g);  dg = dm·u·σ(g)(1 + g(1 − σ(g)))
 *   dWg = dgᵀ h₂;  dWu = duᵀ h₂;  dh₂ = dg Wg + du Wu
 *   rmsNorm: with n = x·r and dn = dh·w:  dw = Σ_rows dh·n,  dx = r·(dn − n·Σ(dn·n)/A)
 *   dx₂ = dy + rmsNorm′(dh₂)
 *   dWo = dx₂ᵀ merge(O);  dO = heads(dx₂ Wo)
 *   dP = dO Vᵀ;  dV = Pᵀ dO;  dS = P·(dP − Σ_j dP·P) / √hd;  dQ = dS K;  dK = dSᵀ Q  (summed per kv head for GQA)
 *   rope′(d) = d·cos + rotᵀ(d·sin),  rotᵀ([z₁, z₂]) = [z₂, −z₁]
 *   dWq = dqᵀ h (etc.);  db_q = Σ_rows dq (etc., with biases);  dh = dq Wq + dk Wk + dv Wv;  dx = dx₂ + rmsNorm′(dh)
 * Saved per block: x and the `BlockSaved` record (h, Q, K, V, P, merge(O), x₂, h₂, g, u, m, the two [N, 1] scales
 * and the RoPE tables).
 */
import * as tf from '@tensorflow/tfjs-core';
import { FusedKernel, type FusedKernelName, type LinearKind } from '@topiary/kernel';
import { hasFused, mergeHeads, rmsScale, rope, splitHeads, swiglu } from './ops.js';

type T = tf.Tensor;

export interface AttentionWeights {
  inputNorm: tf.Tensor1D;
  q: tf.Tensor2D;
  k: tf.Tensor2D;
  v: tf.Tensor2D;
  o: tf.Tensor2D;
  /** optional biases of the q, k and v projections [out] (Qwen2) */
  qBias?: tf.Tensor1D;
  kBias?: tf.Tensor1D;
  vBias?: tf.Tensor1D;
}

export interface FfnWeights {
  postNorm: tf.Tensor1D;
  gate: tf.Tensor2D;
  up: tf.Tensor2D;
  down: tf.Tensor2D;
}

/** The block's parameters; the attention or feed-forward half is absent when the layer has no heads / channels. */
export interface BlockWeights {
  attention?: AttentionWeights;
  ffn?: FfnWeights;
}

/**
 * The fixed order in which the weights are flattened into tf.customGrad's inputs (and their gradients into its
 * outputs), and rebuilt from them: by field name, the same list both ways (the optional biases only when present).
 */
const ATTENTION_FIELDS = ['inputNorm', 'q', 'k', 'v', 'o', 'qBias', 'kBias', 'vBias'] as const satisfies readonly (keyof AttentionWeights)[];
// (a field added to AttentionWeights but not to ATTENTION_FIELDS fails to compile here)
const attentionFieldsComplete: [Exclude<keyof AttentionWeights, (typeof ATTENTION_FIELDS)[number]>] extends [never] ? true : never = true;
void attentionFieldsComplete;
const FFN_FIELDS = ['postNorm', 'gate', 'up', 'down'] as const satisfies readonly (keyof FfnWeights)[];

export interface BlockGeometry {
  b: number;
  /** new positions in this pass (query rows per sequence) */
  t: number;
  /** position of the first new token: keys/values of positions 0..start−1 come from the kv cache */
  start: number;
  headDim: number;
  nHeads: number;
  nKvHeads: number;
  /** kv head of each query head */
  headKvMap: readonly number[];
  eps: number;
  /** hidden channels not masked (the rmsNorm mean divides by this) */
  activeDim: number;
  /** RoPE tables of positions start..start+t−1, [t, headDim] */
  cos: tf.Tensor2D;
  sin: tf.Tensor2D;
  /** additive causal mask [t, start + t]: the query at position start+i reads keys 0..start+i */
  mask: tf.Tensor2D;
}

/** Keys (after RoPE) and values of one block for positions 0..n−1, each [b, nKvHeads, n, headDim]. */
export interface LayerKv {
  k: tf.Tensor4D;
  v: tf.Tensor4D;
}

/**
 * The forward's activations that the hand-written backward reads, by name. The attention fields are absent when the
 * block has no attention heads, the feed-forward ones when it has no hidden channels.
 */
export interface BlockSaved {
  /** input rmsNorm scale [N, 1] */
  r1?: T;
  /** normed input h = x·r₁·w₁ [N, d] */
  h?: T;
  /** queries after RoPE [items, rows, hd] (see attentionLayout) */
  q3?: T;
  /** keys after RoPE [items, tk, hd] */
  k3?: T;
  /** values [items, tk, hd] */
  v3?: T;
  /** attention probabilities [items, rows, tk] */
  p?: T;
  /** merge(O) [N, nHeads·hd], the o projection's input */
  merged?: T;
  /** residual stream after attention [N, d] (x itself when the block has no attention) */
  x2: T;
  /** post-attention rmsNorm scale [N, 1] */
  r2?: T;
  /** normed h₂ = x₂·r₂·w₂ [N, d] */
  h2?: T;
  /** gate projection g = h₂ Wgᵀ [N, hidden] */
  g?: T;
  /** up projection u = h₂ Wuᵀ [N, hidden] */
  u?: T;
  /** SwiGLU product m = g·σ(g)·u [N, hidden], the down projection's input */
  m?: T;
  /** the RoPE tables (kept: the pass's copies die with the caller's scope before the backward runs) */
  cos?: T;
  sin?: T;
}

/** Every field of BlockSaved, in the order they are handed to tf.customGrad's save() (and read back). */
const SAVED_FIELDS = ['r1', 'h', 'q3', 'k3', 'v3', 'p', 'merged', 'x2', 'r2', 'h2', 'g', 'u', 'm', 'cos', 'sin'] as const satisfies readonly (keyof BlockSaved)[];
// (a field added to BlockSaved but not to SAVED_FIELDS fails to compile here)
const savedFieldsComplete: [Exclude<keyof BlockSaved, (typeof SAVED_FIELDS)[number]>] extends [never] ? true : never = true;
void savedFieldsComplete;

/** The fields of `record` that are set, in the order of `fields`: the names a flat list is packed and read back by. */
function presentFields<K extends string>(fields: readonly K[], record: Partial<Record<K, unknown>>): K[] {
  return fields.filter((f) => record[f] !== undefined);
}

/** record → its tensors, in the order of `names`. */
function pack<K extends string>(names: readonly K[], record: Partial<Record<K, T>>): T[] {
  return names.map((f) => record[f]!);
}

/** The inverse of pack: tensors in the order of `names` → the record. */
function unpack<K extends string>(names: readonly K[], list: readonly T[]): Record<K, T> {
  return Object.fromEntries(names.map((f, j) => [f, list[j]!])) as Record<K, T>;
}

/** The weight fields a block has: its halves' fields that are set (the biases are optional). */
function weightFields(like: BlockWeights) {
  return {
    attention: like.attention ? presentFields(ATTENTION_FIELDS, like.attention) : [],
    ffn: like.ffn ? presentFields(FFN_FIELDS, like.ffn) : [],
  };
}

/**
 * The block's weights (or their gradients) as one flat list: the attention half's fields, then the feed-forward's,
 * by the fields of `like` (the block whose weights these are).
 */
function flattenWeights(w: BlockWeights, like: BlockWeights = w): T[] {
  const fields = weightFields(like);
  return [...(w.attention ? pack(fields.attention, w.attention) : []), ...(w.ffn ? pack(fields.ffn, w.ffn) : [])];
}

/** The inverse of flattenWeights, for a block with the same fields as `like`. */
function rebuildWeights(list: readonly T[], like: BlockWeights): BlockWeights {
  const fields = weightFields(like);
  const nAttention = fields.attention.length;
  return {
    ...(like.attention ? { attention: unpack(fields.attention, list.slice(0, nAttention)) as unknown as AttentionWeights } : {}),
    ...(like.ffn ? { ffn: unpack(fields.ffn, list.slice(nAttention)) as unknown as FfnWeights } : {}),
  };
}

/** Whether a fused kernel may run: the backend has it, and no gradient tape records (fused kernels have none). */
type CanFuse = (name: FusedKernelName) => boolean;

/** rmsNorm forward: the scale r [N, 1] and the output x·r·w. */
function rmsForward(x: T, w: T, eps: number, activeDim: number, fused: CanFuse): { r: T; out: T } {
  if (fused(FusedKernel.rmsNorm)) {
    const [out, r] = tf.engine().runKernel(FusedKernel.rmsNorm, { x, weight: w }, { eps, activeDim }) as unknown as T[];
    return { r: r!, out: out! };
  }
  const r = rmsScale(x, eps, activeDim);
  return { r, out: tf.mul(tf.mul(x, r), w) };
}

/** rmsNorm backward: dx (+ the residual's gradient, when given) and dw from dh, the input x and its scale r. */
function rmsBackward(dh: T, x: T, r: T, w: T, activeDim: number, residual?: T): { dx: T; dw: T } {
  if (hasFused(FusedKernel.rmsNormGrad)) {
    const inputs = { dh, x, r, weight: w, ...(residual ? { residual } : {}) };
    const [dx, dw] = tf.engine().runKernel(FusedKernel.rmsNormGrad, inputs, { activeDim }) as unknown as T[];
    return { dx: dx!, dw: dw! };
  }
  const n = tf.mul(x, r);
  const dw = tf.sum(tf.mul(dh, n), 0);
  const dn = tf.mul(dh, w);
  const dx = tf.mul(r, tf.sub(dn, tf.mul(n, tf.div(tf.sum(tf.mul(dn, n), -1, true), activeDim))));
  return { dx: residual ? tf.add(residual, dx) : dx, dw };
}

/** SwiGLU's product m = g·σ(g)·u. */
function swigluProduct(g: T, u: T, fused: CanFuse): T {
  if (fused(FusedKernel.swiglu)) return tf.engine().runKernel(FusedKernel.swiglu, { gate: g, up: u }, {}) as T;
  return swiglu(g as tf.Tensor2D, u as tf.Tensor2D);
}

/** SwiGLU's gradient: with s = σ(g), dUp = dm·g·s and dGate = dm·u·s·(1 + g(1 − s)). */
function swigluBackward(g: T, u: T, dm: T): { dg: T; du: T } {
  if (hasFused(FusedKernel.swigluGrad)) {
    const [dg, du] = tf.engine().runKernel(FusedKernel.swigluGrad, { gate: g, up: u, dm }, {}) as unknown as T[];
    return { dg: dg!, du: du! };
  }
  const sg = tf.sigmoid(g);
  return { du: tf.mul(dm, tf.mul(g, sg)), dg: tf.mul(tf.mul(dm, u), tf.mul(sg, tf.add(1, tf.mul(g, tf.sub(1, sg))))) };
}

/** The transpose of RoPE's linear map, for the gradient: d·cos + rotᵀ(d·sin) with rotᵀ([z₁, z₂]) = [z₂, −z₁]. */
function ropeBackward(d: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  const half = d.shape[3] / 2;
  const [z1, z2] = tf.split(tf.mul(d, sin), [half, half], 3);
  return tf.add(tf.mul(d, cos), tf.concat([z2!, tf.neg(z1!)], 3));
}

/**
 * Whether the query heads of each kv head are consecutive (the standard GQA map h → ⌊h / group⌋, identity included).
 * Then the query heads of one group are stacked as rows of one product with their kv head ([g·t, hd]·[hd, tk]), so
 * keys and values are never repeated and their gradients come out summed over the group by the product itself.
 */
function isContiguousMap(geo: BlockGeometry): boolean {
  const group = geo.nHeads / geo.nKvHeads;
  return Number.isInteger(group) && geo.headKvMap.every((kv, h) => kv === Math.floor(h / group));
}

/** y [b·t, heads·hd] → RoPE'd heads [b, heads, t, hd] (fused kernel when the backend has one). */
function ropeHeads(y: T, heads: number, geo: BlockGeometry, fused: CanFuse): tf.Tensor4D {
  const { b, t, headDim: hd, cos, sin } = geo;
  if (fused(FusedKernel.ropeHeads)) {
    return tf.engine().runKernel(FusedKernel.ropeHeads, { x: y, cos, sin }, { batch: b, seq: t, heads, headDim: hd, backward: false }) as tf.Tensor4D;
  }
  return rope(splitHeads(y, b, t, heads, hd), cos, sin);
}

/** The gradient of ropeHeads: d [b, heads, t, hd] → [b·t, heads·hd]. */
function ropeHeadsBackward(d: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor2D {
  const [b, heads, t, hd] = d.shape;
  if (hasFused(FusedKernel.ropeHeads)) {
    return tf.engine().runKernel(FusedKernel.ropeHeads, { x: d, cos, sin }, { batch: b, seq: t, heads, headDim: hd, backward: true }) as tf.Tensor2D;
  }
  return mergeHeads(ropeBackward(d, cos, sin), b, t, heads, hd);
}

/**
 * softmax(scale·scores + causal mask) for scores [items, rows, tk] whose row r is the query at position start + (r mod
 * t), over keys 0..tk−1 (mask [t, tk]). The fused kernel only knows queries from position 0 (tk = t, no cache).
 */
function causalSoftmax(scores: tf.Tensor3D, scale: number, mask: tf.Tensor2D, t: number, fused: CanFuse): tf.Tensor3D {
  const [, rowsPerItem, tk] = scores.shape;
  if (tk === t && fused(FusedKernel.causalSoftmax)) return tf.engine().runKernel(FusedKernel.causalSoftmax, { scores }, { seq: t, scale }) as tf.Tensor3D;
  // one new position per sequence (a kv-cache decode step) sees every key: its mask row is all zeros, and adding it
  // (after tiling it to every head) would be two ops per block and step for nothing
  if (t === 1) return tf.softmax(tf.mul(scores, scale)) as tf.Tensor3D;
  const m = rowsPerItem === t ? mask : tf.tile(mask, [rowsPerItem / t, 1]);
  return tf.softmax(tf.add(tf.mul(scores, scale), m)) as tf.Tensor3D;
}

/** The scores' gradient from the probabilities' one: P·(dP − Σ dP·P)·scale. */
function softmaxGrad(p: T, dP: T, scale: number): T {
  if (hasFused(FusedKernel.softmaxGrad)) return tf.engine().runKernel(FusedKernel.softmaxGrad, { probs: p, dProbs: dP }, { scale }) as T;
  return tf.mul(tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true))), scale);
}

/** [b, nKv, n, hd] → [b, nHeads, n, hd]: each query head's kv head. */
function expandKv(x: tf.Tensor4D, geo: BlockGeometry): tf.Tensor4D {
  const parts = Array.from({ length: geo.nKvHeads }, (_, j) => tf.slice(x, [0, j, 0, 0], [-1, 1, -1, -1]));
  return tf.concat(geo.headKvMap.map((j) => parts[j]!), 1) as tf.Tensor4D;
}

/** The transpose of expandKv: gradients of the query heads summed into their kv head. */
function reduceKv(d: tf.Tensor4D, geo: BlockGeometry): tf.Tensor4D {
  const perHead = Array.from({ length: geo.nHeads }, (_, h) => tf.slice(d, [0, h, 0, 0], [-1, 1, -1, -1]));
  const perKv = Array.from({ length: geo.nKvHeads }, (_, j) => {
    const mine = perHead.filter((_, h) => geo.headKvMap[h] === j);
    return mine.length === 0 ? tf.zerosLike(perHead[0]!) : mine.length === 1 ? mine[0]! : tf.addN(mine);
  });
  return tf.concat(perKv, 1) as tf.Tensor4D;
}

/** How attention is laid out as batched products: items of [rows, hd]·[hd, tk] (see isContiguousMap). */
function attentionLayout(geo: BlockGeometry) {
  const { b, t, headDim: hd, nHeads, nKvHeads } = geo;
  const grouped = isContiguousMap(geo);
  return {
    scale: 1 / Math.sqrt(hd),
    grouped,
    items: b * (grouped ? nKvHeads : nHeads),
    rows: grouped ? (nHeads / nKvHeads) * t : t,
    heads: (y: T, count: number): tf.Tensor4D => splitHeads(y, b, t, count, hd),
    merge: (y: T, count: number): tf.Tensor2D => mergeHeads(y, b, t, count, hd),
  };
}

/** Called with the input of each linear layer before its product (capture hooks: q, k and v share one tensor). */
export type LinearTap = (kind: LinearKind, input: tf.Tensor2D) => void;

export interface BlockOptions {
  /** capture hooks: called with each linear layer's input */
  tap?: LinearTap;
  /**
   * Only the taps are wanted (calibration statistics): the last product (the down projection, whose input is tapped)
   * and its residual add are skipped, and `y` is not the block's output.
   */
  captureOnly?: boolean;
  /**
   * Decoding with a kv cache: `past` holds the keys/values of positions 0..geometry.start−1 (absent at start 0).
   * The output's `kv` then holds those of 0..start+t−1, for the caller to keep.
   */
  cache?: { past?: LayerKv };
  /**
   * Inference: nothing reads `saved`, so each half's temporaries (and the FFN's gate/up products once multiplied)
   * are freed as soon as that half is done instead of when the caller's scope ends. The same operations in the same
   * order — the same numbers — with the heap's high-water mark set by one half, not the whole block (at Llama-2-7B
   * shapes and 8 × 128 tokens the whole block's temporaries are gigabytes). Ignored under a gradient tape.
   */
  lean?: boolean;
}

export interface BlockOutput {
  y: tf.Tensor2D;
  /** what the hand-written backward reads (`trainableBlock` keeps it; otherwise the caller's tidy scope frees it) */
  saved: BlockSaved;
  /** with options.cache and attention heads: keys/values of positions 0..start+t−1 */
  kv?: LayerKv;
}

/**
 * The block's forward pass (the equations at the top), on x [b·t, d] at positions start..start+t−1. Under a gradient
 * tape (capture hooks or a kv cache while training) it runs composite ops only, which tfjs autodiff differentiates;
 * otherwise a backend's fused kernels where it has them (inside `trainableBlock` the tape is paused).
 */
export function blockForward(x: tf.Tensor2D, w: BlockWeights, geo: BlockGeometry, options: BlockOptions = {}): BlockOutput {
  const { b, t, start, headDim: hd, nHeads, nKvHeads, eps, activeDim, mask } = geo;
  const { tap, cache } = options;
  const past = cache?.past;
  if (w.attention && (past?.k.shape[2] ?? 0) !== start) {
    throw new Error(`blockForward: ${past?.k.shape[2] ?? 0} cached positions before a pass that starts at position ${start}`);
  }
  const taping = tf.engine().isTapeOn();
  const fused: CanFuse = (name) => !taping && hasFused(name);
  const { scale, grouped, items, rows, heads, merge } = attentionLayout(geo);
  const linear = (input: T, weight: tf.Tensor2D, kind: LinearKind, bias?: tf.Tensor1D): tf.Tensor2D => {
    tap?.(kind, input as tf.Tensor2D);
    const y: tf.Tensor2D = tf.matMul(input as tf.Tensor2D, weight, false, true);
    return bias ? (tf.add(y, bias) as tf.Tensor2D) : y;
  };
  const tk = start + t;

  const lean = options.lean === true && !taping;

  const attentionHalf = (A: NonNullable<BlockWeights['attention']>): { x2: T; saved: Omit<BlockSaved, 'x2'>; kv?: LayerKv } => {
    // h = rmsNorm(x)
    const { r: r1, out: h } = rmsForward(x, A.inputNorm, eps, activeDim, fused);
    // q, k, v = h Wqᵀ + b_q, h Wkᵀ + b_k, h Wvᵀ + b_v;  RoPE on q and k, heads as a batch axis [b, heads, t, hd]
    const qh = ropeHeads(linear(h, A.q, 'q', A.qBias), nHeads, geo, fused);
    let kh = ropeHeads(linear(h, A.k, 'k', A.kBias), nKvHeads, geo, fused);
    let vh = heads(linear(h, A.v, 'v', A.vBias), nKvHeads);
    // the cached positions' keys and values come first: [b, nKv, tk, hd]
    if (past) {
      kh = tf.concat([past.k, kh], 2);
      vh = tf.concat([past.v, vh], 2);
    }
    // causal attention with GQA: P = softmax(Q Kᵀ/√hd + mask), O = P V
    const q3 = tf.reshape(qh, [items, rows, hd]);
    const k3 = tf.reshape(grouped ? kh : expandKv(kh, geo), [items, tk, hd]);
    const v3 = tf.reshape(grouped ? vh : expandKv(vh, geo), [items, tk, hd]);
    const p = causalSoftmax(tf.matMul(q3, k3, false, true) as tf.Tensor3D, scale, mask, t, fused);
    const merged = merge(tf.reshape(tf.matMul(p, v3), [b, nHeads, t, hd]), nHeads);
    // x₂ = x + merge(O) Woᵀ
    return { x2: tf.add(x, linear(merged, A.o, 'o')), saved: { r1, h, q3, k3, v3, p, merged, cos: geo.cos, sin: geo.sin }, ...(cache ? { kv: { k: kh, v: vh } } : {}) };
  };

  const ffnHalf = (F: NonNullable<BlockWeights['ffn']>): { y: T; saved: Omit<BlockSaved, 'x2'> } => {
    // h₂ = rmsNorm(x₂)
    const { r: r2, out: h2 } = rmsForward(x2, F.postNorm, eps, activeDim, fused);
    // m = swiglu(h₂ Wgᵀ, h₂ Wuᵀ);  y = x₂ + m Wdᵀ
    if (lean) {
      const m = tf.tidy(() => swigluProduct(linear(h2, F.gate, 'gate'), linear(h2, F.up, 'up'), fused));
      if (options.captureOnly) {
        tap?.('down', m as tf.Tensor2D);
        return { y: x2, saved: {} };
      }
      return { y: tf.add(x2, linear(m, F.down, 'down')), saved: {} };
    }
    const g = linear(h2, F.gate, 'gate');
    const u = linear(h2, F.up, 'up');
    const m = swigluProduct(g, u, fused);
    return { y: tf.add(x2, linear(m, F.down, 'down')), saved: { r2, h2, g, u, m } };
  };

  let x2: T = x;
  let attention: Omit<BlockSaved, 'x2'> = {};
  let kv: LayerKv | undefined;
  if (w.attention) {
    const A = w.attention;
    if (lean) {
      const kept = tf.tidy(() => {
        const out = attentionHalf(A);
        return out.kv ? [out.x2, out.kv.k, out.kv.v] : [out.x2];
      });
      x2 = kept[0]!;
      if (kept.length === 3) kv = { k: kept[1] as tf.Tensor4D, v: kept[2] as tf.Tensor4D };
    } else {
      ({ x2, saved: attention, kv } = attentionHalf(A));
    }
  }

  let y: T = x2;
  let ffn: Omit<BlockSaved, 'x2'> = {};
  if (w.ffn) {
    const F = w.ffn;
    if (lean) y = tf.tidy(() => ffnHalf(F).y);
    else ({ y, saved: ffn } = ffnHalf(F));
  }
  return { y: y as tf.Tensor2D, saved: { ...attention, x2, ...ffn }, ...(kv ? { kv } : {}) };
}

/**
 * y = block(x) with the hand-written backward above: one tape node per block. Only for passes from position 0
 * without a kv cache or capture hooks (the model runs `blockForward` under tfjs autodiff for those).
 */
export function trainableBlock(x: tf.Tensor2D, w: BlockWeights, geo: BlockGeometry): tf.Tensor2D {
  if (geo.start !== 0) throw new Error(`trainableBlock: training passes start at position 0, not ${geo.start} (no kv cache)`);
  const { b, t, headDim: hd, nHeads, nKvHeads, activeDim } = geo;
  const { scale, grouped, items, rows, heads, merge } = attentionLayout(geo);
  // tf.customGrad's inputs are x and the weights flat (flattenWeights); the forward sees the inputs, the backward
  // their saved copies, both rebuilt by field name (rebuildWeights)
  const weights = flattenWeights(w);

  const op = tf.customGrad(((...args: unknown[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [xIn, ...ws] = args as T[];

    // ---------------------------------------------------------------- forward, keeping only what the backward reads
    const { y, saved } = tf.tidy(() => blockForward(xIn as tf.Tensor2D, rebuildWeights(ws, w), geo) as unknown as tf.TensorContainer) as unknown as BlockOutput;
    const savedNames = presentFields(SAVED_FIELDS, saved);
    save([xIn!, ...ws, ...pack(savedNames, saved)]);

    // ---------------------------------------------------------------- backward
    const gradFunc = (dy: T, list: T[]): T[] =>
      tf.tidy(() => {
        const xs = list[0]!;
        const { attention: A, ffn: F } = rebuildWeights(list.slice(1, 1 + ws.length), w);
        // (the fields of the halves this block has are all present)
        const s = unpack(savedNames, list.slice(1 + ws.length)) as Required<BlockSaved>;
        const grads: BlockWeights = {};
        let dx2: T = dy;
        if (F) {
          const dWd = tf.matMul(dy, s.m, true, false);
          const { dg, du } = swigluBackward(s.g, s.u, tf.matMul(dy, F.down));
          const dWg = tf.matMul(dg, s.h2, true, false);
          const dWu = tf.matMul(du, s.h2, true, false);
          const dh2 = tf.add(tf.matMul(dg, F.gate), tf.matMul(du, F.up));
          const norm = rmsBackward(dh2, s.x2, s.r2, F.postNorm, activeDim, dy);
          dx2 = norm.dx;
          grads.ffn = { postNorm: norm.dw as tf.Tensor1D, gate: dWg as tf.Tensor2D, up: dWu as tf.Tensor2D, down: dWd as tf.Tensor2D };
        }
        let dx: T = dx2;
        if (A) {
          const dWo = tf.matMul(dx2, s.merged, true, false);
          const dO = tf.reshape(heads(tf.matMul(dx2, A.o), nHeads), [items, rows, hd]);
          const dP = tf.matMul(dO, s.v3, false, true);
          const dV3 = tf.matMul(s.p, dO, true, false);
          const dS = softmaxGrad(s.p, dP, scale);
          const dQ3 = tf.matMul(dS, s.k3);
          const dK3 = tf.matMul(dS, s.q3, true, false);
          const kvLayout = (y3: T): tf.Tensor4D => {
            const y4 = tf.reshape(y3, [b, items / b, t, hd]) as tf.Tensor4D;
            return grouped ? y4 : reduceKv(y4, geo);
          };
          const [cos, sin] = [s.cos as tf.Tensor2D, s.sin as tf.Tensor2D];
          const dq = ropeHeadsBackward(tf.reshape(dQ3, [b, nHeads, t, hd]), cos, sin);
          const dk = ropeHeadsBackward(kvLayout(dK3), cos, sin);
          const dv = merge(kvLayout(dV3), nKvHeads);
          const dWq = tf.matMul(dq, s.h, true, false);
          const dWk = tf.matMul(dk, s.h, true, false);
          const dWv = tf.matMul(dv, s.h, true, false);
          const dh = tf.addN([tf.matMul(dq, A.q), tf.matMul(dk, A.k), tf.matMul(dv, A.v)]);
          const norm = rmsBackward(dh, xs, s.r1, A.inputNorm, activeDim, dx2);
          dx = norm.dx;
          grads.attention = { inputNorm: norm.dw as tf.Tensor1D, q: dWq as tf.Tensor2D, k: dWk as tf.Tensor2D, v: dWv as tf.Tensor2D, o: dWo as tf.Tensor2D };
          // the biases' gradients: the projections' output gradients summed over the rows (tokens)
          if (A.qBias) grads.attention.qBias = tf.sum(dq, 0) as tf.Tensor1D;
          if (A.kBias) grads.attention.kBias = tf.sum(dk, 0) as tf.Tensor1D;
          if (A.vBias) grads.attention.vBias = tf.sum(dv, 0) as tf.Tensor1D;
        }
        // the gradients in the inputs' order: x, then the weights by the same field lists
        return [dx, ...flattenWeights(grads, w)];
      });
    return { value: y, gradFunc };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);

  return op(x, ...weights) as tf.Tensor2D;
}
