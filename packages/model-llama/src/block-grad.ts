/**
 * One transformer block with a hand-written backward pass, for training. The forward is the same as the model's
 * `runBlock` (same ops, same numbers); what changes is memory and op count in the backward pass:
 *
 * - tfjs's tape keeps every tensor each recorded op saves, and every activation gradient, until the whole backward
 *   pass ends. Here the block is one tape node: its forward runs in a `tidy` that keeps only what the backward needs
 *   (listed below), and its backward runs in a `tidy` that returns only the gradients.
 * - The backward is written out (below), so rmsNorm, RoPE, softmax and SwiGLU cost a few fused-size ops instead of
 *   tfjs's generic gradients of each elementary op.
 *
 * Forward, on x [N = b·t, d]:
 *   r₁ = (Σ_active x² / A + ε)^(−½),  h = x·r₁·w₁
 *   q, k, v = h Wqᵀ, h Wkᵀ, h Wvᵀ;  Q = rope(q), K = rope(k) (kv heads repeated for GQA), V = v
 *   P = softmax(Q Kᵀ/√hd + mask),  O = P V,  x₂ = x + merge(O) Woᵀ
 *   r₂ = (Σ_active x₂² / A + ε)^(−½),  h₂ = x₂·r₂·w₂
 *   g, u = h₂ Wgᵀ, h₂ Wuᵀ;  m = g·σ(g)·u;  y = x₂ + m Wdᵀ
 * Backward, from dy:
 *   dWd = dyᵀ m;  dm = dy Wd;  du = dm·silu(g);  dg = dm·u·σ(g)(1 + g(1 − σ(g)))
 *   dWg = dgᵀ h₂;  dWu = duᵀ h₂;  dh₂ = dg Wg + du Wu
 *   rmsNorm: with n = x·r and dn = dh·w:  dw = Σ_rows dh·n,  dx = r·(dn − n·Σ(dn·n)/A)
 *   dx₂ = dy + rmsNorm′(dh₂)
 *   dWo = dx₂ᵀ merge(O);  dO = heads(dx₂ Wo)
 *   dP = dO Vᵀ;  dV = Pᵀ dO;  dS = P·(dP − Σ_j dP·P) / √hd;  dQ = dS K;  dK = dSᵀ Q  (summed per kv head for GQA)
 *   rope′(d) = d·cos + rotᵀ(d·sin),  rotᵀ([z₁, z₂]) = [z₂, −z₁]
 *   dWq = dqᵀ h (etc.);  dh = dq Wq + dk Wk + dv Wv;  dx = dx₂ + rmsNorm′(dh)
 * Saved per block: x, h, Q, K, V, P, merge(O), x₂, h₂, g, u, m, the two [N, 1] scales and the RoPE tables.
 */
import * as tf from '@tensorflow/tfjs';
import { FusedKernel, type LinearKind } from '@topiary/kernel';
import { hasFused, mergeHeads, rmsScale, rope, splitHeads, swiglu } from './ops.js';

type T = tf.Tensor;

/** The block's parameters; the attention or feed-forward half is absent when the layer has no heads / channels. */
export interface BlockWeights {
  attention?: { inputNorm: tf.Tensor1D; q: tf.Tensor2D; k: tf.Tensor2D; v: tf.Tensor2D; o: tf.Tensor2D };
  ffn?: { postNorm: tf.Tensor1D; gate: tf.Tensor2D; up: tf.Tensor2D; down: tf.Tensor2D };
}

export interface BlockGeometry {
  b: number;
  t: number;
  headDim: number;
  nHeads: number;
  nKvHeads: number;
  /** kv head of each query head */
  headKvMap: readonly number[];
  eps: number;
  /** hidden channels not masked (the rmsNorm mean divides by this) */
  activeDim: number;
  cos: tf.Tensor2D;
  sin: tf.Tensor2D;
  mask: tf.Tensor2D;
}

/** rmsNorm forward: the scale r [N, 1] and the output x·r·w. */
function rmsForward(x: T, w: T, eps: number, activeDim: number): { r: T; out: T } {
  if (hasFused(FusedKernel.rmsNorm)) {
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
function swigluProduct(g: T, u: T): T {
  if (hasFused(FusedKernel.swiglu)) return tf.engine().runKernel(FusedKernel.swiglu, { gate: g, up: u }, {}) as T;
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
 * Then the query heads of one group are stacked as rows of one product with their kv head ([g·t, hd]·[hd, t]), so
 * keys and values are never repeated and their gradients come out summed over the group by the product itself.
 */
function isContiguousMap(g: BlockGeometry): boolean {
  const group = g.nHeads / g.nKvHeads;
  return Number.isInteger(group) && g.headKvMap.every((kv, h) => kv === Math.floor(h / group));
}

/** y [b·t, heads·hd] → RoPE'd heads [b, heads, t, hd] (fused kernel when the backend has one). */
function ropeHeads(y: T, heads: number, g: BlockGeometry, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  const { b, t, headDim: hd } = g;
  if (hasFused(FusedKernel.ropeHeads)) {
    return tf.engine().runKernel(FusedKernel.ropeHeads, { x: y, cos, sin }, { batch: b, seq: t, heads, headDim: hd, backward: false }) as tf.Tensor4D;
  }
  return rope(splitHeads(y, b, t, heads, hd), cos, sin);
}

/** The gradient of ropeHeads: d [b, heads, t, hd] → [b·t, heads·hd]. */
function ropeHeadsBackward(d: tf.Tensor4D, g: BlockGeometry, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor2D {
  const [b, heads, t, hd] = d.shape;
  if (hasFused(FusedKernel.ropeHeads)) {
    return tf.engine().runKernel(FusedKernel.ropeHeads, { x: d, cos, sin }, { batch: b, seq: t, heads, headDim: hd, backward: true }) as tf.Tensor2D;
  }
  return mergeHeads(ropeBackward(d, cos, sin), b, t, heads, hd);
}

/** softmax(scale·scores + causal mask) for scores [items, rows, t] whose row r is at position r mod t. */
function causalSoftmax(scores: tf.Tensor3D, scale: number, mask: tf.Tensor2D, t: number): tf.Tensor3D {
  if (hasFused(FusedKernel.causalSoftmax)) return tf.engine().runKernel(FusedKernel.causalSoftmax, { scores }, { seq: t, scale }) as tf.Tensor3D;
  const rowsPerItem = scores.shape[1];
  const m = rowsPerItem === t ? mask : tf.tile(mask, [rowsPerItem / t, 1]);
  return tf.softmax(tf.add(tf.mul(scores, scale), m)) as tf.Tensor3D;
}

/** The scores' gradient from the probabilities' one: P·(dP − Σ dP·P)·scale. */
function softmaxGrad(p: T, dP: T, scale: number): T {
  if (hasFused(FusedKernel.softmaxGrad)) return tf.engine().runKernel(FusedKernel.softmaxGrad, { probs: p, dProbs: dP }, { scale }) as T;
  return tf.mul(tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true))), scale);
}

/** [b, nKv, t, hd] → [b, nHeads, t, hd]: each query head's kv head. */
function expandKv(x: tf.Tensor4D, g: BlockGeometry): tf.Tensor4D {
  const parts = Array.from({ length: g.nKvHeads }, (_, j) => tf.slice(x, [0, j, 0, 0], [-1, 1, -1, -1]));
  return tf.concat(g.headKvMap.map((j) => parts[j]!), 1) as tf.Tensor4D;
}

/** The transpose of expandKv: gradients of the query heads summed into their kv head. */
function reduceKv(d: tf.Tensor4D, g: BlockGeometry): tf.Tensor4D {
  const perHead = Array.from({ length: g.nHeads }, (_, h) => tf.slice(d, [0, h, 0, 0], [-1, 1, -1, -1]));
  const perKv = Array.from({ length: g.nKvHeads }, (_, j) => {
    const mine = perHead.filter((_, h) => g.headKvMap[h] === j);
    return mine.length === 0 ? tf.zerosLike(perHead[0]!) : mine.length === 1 ? mine[0]! : tf.addN(mine);
  });
  return tf.concat(perKv, 1) as tf.Tensor4D;
}

/** Called with the input of each linear layer before its product (capture hooks: q, k and v share one tensor). */
export type LinearTap = (kind: LinearKind, input: tf.Tensor2D) => void;

/**
 * The block's forward pass (the equations at the top), for positions 0..t−1 without a kv cache. Returns y and the
 * tensors the backward reads (`trainableBlock` keeps them; a plain forward lets its tidy scope free them).
 */
export function blockForward(x: T, w: BlockWeights, g: BlockGeometry, tap?: LinearTap): Record<string, T> & { y: T } {
  const { b, t, headDim: hd, nHeads, nKvHeads, eps, activeDim, cos, sin, mask } = g;
  const { scale, grouped, items, rows, heads, merge } = attentionLayout(g);
  const linear = (input: tf.Tensor2D, weight: T, kind: LinearKind): tf.Tensor2D => {
    tap?.(kind, input);
    return tf.matMul(input, weight as tf.Tensor2D, false, true);
  };
  const out: Record<string, T> = {};
  let x2: T = x;
  if (w.attention) {
    const A = w.attention;
    const { r, out: h } = rmsForward(x, A.inputNorm, eps, activeDim);
    const h2d = h as tf.Tensor2D;
    const q3 = tf.reshape(ropeHeads(linear(h2d, A.q, 'q'), nHeads, g, cos, sin), [items, rows, hd]);
    const kr = ropeHeads(linear(h2d, A.k, 'k'), nKvHeads, g, cos, sin);
    const k3 = tf.reshape(grouped ? kr : expandKv(kr, g), [items, t, hd]);
    const vh = heads(linear(h2d, A.v, 'v'), nKvHeads);
    const v3 = tf.reshape(grouped ? vh : expandKv(vh, g), [items, t, hd]);
    const p = causalSoftmax(tf.matMul(q3, k3, false, true) as tf.Tensor3D, scale, mask, t);
    const merged = merge(tf.reshape(tf.matMul(p, v3), [b, nHeads, t, hd]), nHeads);
    x2 = tf.add(x, linear(merged, A.o, 'o'));
    Object.assign(out, { r1: r, h, q3, k3, v3, p, merged });
  }
  out['x2'] = x2;
  let y: T = x2;
  if (w.ffn) {
    const F = w.ffn;
    const { r, out: h2 } = rmsForward(x2, F.postNorm, eps, activeDim);
    const gt = linear(h2 as tf.Tensor2D, F.gate, 'gate');
    const u = linear(h2 as tf.Tensor2D, F.up, 'up');
    const m = swigluProduct(gt, u);
    y = tf.add(x2, linear(m as tf.Tensor2D, F.down, 'down'));
    Object.assign(out, { r2: r, h2, g: gt, u, m });
  }
  return Object.assign(out, { y });
}

/** How attention is laid out as batched products: items of [rows, hd]·[hd, t] (see isContiguousMap). */
function attentionLayout(g: BlockGeometry) {
  const { b, t, headDim: hd, nHeads, nKvHeads } = g;
  const grouped = isContiguousMap(g);
  return {
    scale: 1 / Math.sqrt(hd),
    grouped,
    items: b * (grouped ? nKvHeads : nHeads),
    rows: grouped ? (nHeads / nKvHeads) * t : t,
    heads: (y: T, count: number): tf.Tensor4D => splitHeads(y, b, t, count, hd),
    merge: (y: T, count: number): tf.Tensor2D => mergeHeads(y, b, t, count, hd),
  };
}

/**
 * y = block(x) with the hand-written backward above. Only for training passes from position 0 without a kv cache
 * or capture hooks (the model's `runBlock` serves those).
 */
export function trainableBlock(x: tf.Tensor2D, w: BlockWeights, g: BlockGeometry): tf.Tensor2D {
  const { b, t, headDim: hd, nHeads, nKvHeads, activeDim } = g;
  const { scale, grouped, items, rows, heads, merge } = attentionLayout(g);
  const att = w.attention;
  const ffn = w.ffn;
  // The weights are the custom gradient's inputs after x, flat, in this order; `unpack` reads them back (the forward
  // sees the inputs, the backward their saved copies).
  const weights: T[] = [
    ...(att ? [att.inputNorm, att.q, att.k, att.v, att.o] : []),
    ...(ffn ? [ffn.postNorm, ffn.gate, ffn.up, ffn.down] : []),
  ];
  const unpack = (ws: T[]): BlockWeights => {
    let i = 0;
    const next = <R extends T>(): R => ws[i++] as R;
    return {
      ...(att ? { attention: { inputNorm: next<tf.Tensor1D>(), q: next<tf.Tensor2D>(), k: next<tf.Tensor2D>(), v: next<tf.Tensor2D>(), o: next<tf.Tensor2D>() } } : {}),
      ...(ffn ? { ffn: { postNorm: next<tf.Tensor1D>(), gate: next<tf.Tensor2D>(), up: next<tf.Tensor2D>(), down: next<tf.Tensor2D>() } } : {}),
    };
  };

  const op = tf.customGrad(((...args: unknown[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [xIn, ...ws] = args as T[];

    // ---------------------------------------------------------------- forward, keeping only what the backward reads
    const kept = tf.tidy(() => blockForward(xIn!, unpack(ws), g));
    if (att) Object.assign(kept, { cos: g.cos, sin: g.sin }); // the RoPE tables die with the forward's scope otherwise
    const names = Object.keys(kept).filter((k) => k !== 'y');
    save([xIn!, ...ws, ...names.map((k) => kept[k]!)]);

    // ---------------------------------------------------------------- backward
    const gradFunc = (dy: T, saved: T[]): T[] =>
      tf.tidy(() => {
        const xs = saved[0]!;
        const wsS = saved.slice(1, 1 + ws.length);
        const s: Record<string, T> = {};
        names.forEach((k, j) => (s[k] = saved[1 + ws.length + j]!));
        const { attention: As, ffn: Fs } = unpack(wsS);
        const grads: T[] = [];
        let dx2: T = dy;
        if (Fs) {
          const dWd = tf.matMul(dy, s['m']!, true, false);
          const { dg, du } = swigluBackward(s['g']!, s['u']!, tf.matMul(dy, Fs.down));
          const h2 = s['h2']!;
          const dWg = tf.matMul(dg, h2, true, false);
          const dWu = tf.matMul(du, h2, true, false);
          const dh2 = tf.add(tf.matMul(dg, Fs.gate), tf.matMul(du, Fs.up));
          const norm = rmsBackward(dh2, s['x2']!, s['r2']!, Fs.postNorm, activeDim, dy);
          dx2 = norm.dx;
          grads.push(norm.dw, dWg, dWu, dWd);
        }
        let dx: T = dx2;
        if (As) {
          const merged = s['merged']!;
          const dWo = tf.matMul(dx2, merged, true, false);
          const dO = tf.reshape(heads(tf.matMul(dx2, As.o), nHeads), [items, rows, hd]);
          const p = s['p']!;
          const dP = tf.matMul(dO, s['v3']!, false, true);
          const dV3 = tf.matMul(p, dO, true, false);
          const dS = softmaxGrad(p, dP, scale);
          const dQ3 = tf.matMul(dS, s['k3']!);
          const dK3 = tf.matMul(dS, s['q3']!, true, false);
          const kvLayout = (y: T): tf.Tensor4D => {
            const y4 = tf.reshape(y, [b, items / b, t, hd]) as tf.Tensor4D;
            return grouped ? y4 : reduceKv(y4, g);
          };
          const [c, sn] = [s['cos'] as tf.Tensor2D, s['sin'] as tf.Tensor2D];
          const dq = ropeHeadsBackward(tf.reshape(dQ3, [b, nHeads, t, hd]), g, c, sn);
          const dk = ropeHeadsBackward(kvLayout(dK3), g, c, sn);
          const dv = merge(kvLayout(dV3), nKvHeads);
          const h = s['h']!;
          const dWq = tf.matMul(dq, h, true, false);
          const dWk = tf.matMul(dk, h, true, false);
          const dWv = tf.matMul(dv, h, true, false);
          const dh = tf.addN([tf.matMul(dq, As.q), tf.matMul(dk, As.k), tf.matMul(dv, As.v)]);
          const norm = rmsBackward(dh, xs, s['r1']!, As.inputNorm, activeDim, dx2);
          dx = norm.dx;
          grads.unshift(norm.dw, dWq, dWk, dWv, dWo);
        }
        return [dx, ...grads];
      });
    return { value: kept['y']!, gradFunc };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);

  return op(x, ...weights) as tf.Tensor2D;
}
