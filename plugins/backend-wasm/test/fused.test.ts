/**
 * The in-place fused kernels (src/fused) against the kernel contract's formulas computed here in float64 on the
 * host, on sizes that exercise the SIMD body and the scalar tail; then whole training steps with and without them.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { FusedKernel } from '@topiary/kernel';
import { createWasmBackend, installInPlaceFusedKernels, uninstallInPlaceFusedKernels } from '../src/index.js';

/** Deterministic values in [−a, a). */
function values(n: number, seed: number, a = 2): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * a;
  });
}

/** Largest |x − y| / (1 + |y|). */
function maxRelDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  expect(x.length).toBe(y.length);
  let d = 0;
  for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i]! - y[i]!) / (1 + Math.abs(y[i]!)));
  return d;
}

function run(name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown> = {}): Float32Array[] {
  const out = tf.engine().runKernel(name, inputs, attrs as never) as unknown as tf.Tensor | tf.Tensor[];
  const list = Array.isArray(out) ? out : [out];
  const data = list.map((t) => t.dataSync() as Float32Array);
  list.forEach((t) => t.dispose());
  return data;
}

const sigmoid = (g: number): number => 1 / (1 + Math.exp(-g));

describe('backend-wasm fused kernels (in place on the tfjs heap)', () => {
  beforeAll(async () => {
    await createWasmBackend().init();
  });

  it('are installed by init() for every FusedKernel name, and can be switched off', async () => {
    for (const name of Object.values(FusedKernel)) expect(tf.getKernel(name, 'wasm'), name).toBeDefined();
    const off = createWasmBackend({ fused: false });
    await off.init();
    expect(tf.getKernel(FusedKernel.rmsNorm, 'wasm')).toBeUndefined();
    expect(off.capabilities().notes.join(' ')).toContain('fused kernels off');
    const on = createWasmBackend();
    await on.init();
    expect(tf.getKernel(FusedKernel.rmsNorm, 'wasm')).toBeDefined();
    expect(on.capabilities().notes.join(' ')).toContain('in place on the tfjs heap');
  });

  it('swiglu and its gradient, including large |g| (no overflow) and a scalar tail', () => {
    for (const n of [1, 7, 64, 1031]) {
      const g = values(n, n, 6);
      g[0] = -120;
      if (n > 1) g[1] = 95;
      const u = values(n, n + 1);
      const dm = values(n, n + 2);
      const [m] = run(FusedKernel.swiglu, { gate: tf.tensor1d(g), up: tf.tensor1d(u) });
      const [dg, du] = run(FusedKernel.swigluGrad, { gate: tf.tensor1d(g), up: tf.tensor1d(u), dm: tf.tensor1d(dm) });
      const want = { m: new Float64Array(n), dg: new Float64Array(n), du: new Float64Array(n) };
      for (let i = 0; i < n; i++) {
        const s = sigmoid(g[i]!);
        want.m[i] = g[i]! * s * u[i]!;
        want.du[i] = dm[i]! * g[i]! * s;
        want.dg[i] = dm[i]! * u[i]! * s * (1 + g[i]! * (1 - s));
      }
      expect(maxRelDiff(m!, want.m), `swiglu n=${n}`).toBeLessThan(2e-6);
      expect(maxRelDiff(du!, want.du), `dUp n=${n}`).toBeLessThan(2e-6);
      expect(maxRelDiff(dg!, want.dg), `dGate n=${n}`).toBeLessThan(2e-6);
      expect([...m!].every(Number.isFinite)).toBe(true);
    }
  });

  it('rmsNorm and its gradient (with and without the residual), activeDim ≠ d', () => {
    for (const [rows, d, activeDim] of [[3, 6, 6], [5, 64, 48], [2, 131, 131]] as const) {
      const x = values(rows * d, d);
      const w = values(d, d + 1);
      const dh = values(rows * d, d + 2);
      const res = values(rows * d, d + 3);
      const eps = 1e-5;
      const [out, r] = run(FusedKernel.rmsNorm, { x: tf.tensor2d(x, [rows, d]), weight: tf.tensor1d(w) }, { eps, activeDim });
      const wantR = new Float64Array(rows);
      const wantOut = new Float64Array(rows * d);
      const wantDx = new Float64Array(rows * d);
      const wantDw = new Float64Array(d);
      for (let i = 0; i < rows; i++) {
        let ss = 0;
        for (let j = 0; j < d; j++) ss += x[i * d + j]! ** 2;
        const ri = 1 / Math.sqrt(ss / activeDim + eps);
        wantR[i] = ri;
        let c = 0;
        for (let j = 0; j < d; j++) {
          wantOut[i * d + j] = x[i * d + j]! * ri * w[j]!;
          c += dh[i * d + j]! * w[j]! * x[i * d + j]! * ri;
        }
        for (let j = 0; j < d; j++) {
          const n = x[i * d + j]! * ri;
          wantDx[i * d + j] = ri * (dh[i * d + j]! * w[j]! - n * (c / activeDim));
          wantDw[j] = wantDw[j]! + dh[i * d + j]! * n;
        }
      }
      expect(maxRelDiff(r!, wantR)).toBeLessThan(2e-6);
      expect(maxRelDiff(out!, wantOut)).toBeLessThan(2e-6);
      const inputs = { dh: tf.tensor2d(dh, [rows, d]), x: tf.tensor2d(x, [rows, d]), r: tf.tensor2d(r!, [rows, 1]), weight: tf.tensor1d(w) };
      const [dx, dw] = run(FusedKernel.rmsNormGrad, inputs, { activeDim });
      expect(maxRelDiff(dx!, wantDx)).toBeLessThan(1e-5);
      expect(maxRelDiff(dw!, wantDw)).toBeLessThan(1e-5);
      const [dxr] = run(FusedKernel.rmsNormGrad, { ...inputs, residual: tf.tensor2d(res, [rows, d]) }, { activeDim });
      expect(maxRelDiff(dxr!, wantDx.map((v, i) => v + res[i]!))).toBeLessThan(1e-5);
    }
  });

  it('causal softmax: each row reads keys up to its position (stacked query heads included), zeros beyond', () => {
    for (const [items, seq, stack] of [[2, 5, 1], [3, 9, 2], [1, 16, 3]] as const) {
      const rows = seq * stack;
      const s = values(items * rows * seq, seq + stack, 8);
      const scale = 0.37;
      const [p] = run(FusedKernel.causalSoftmax, { scores: tf.tensor3d(s, [items, rows, seq]) }, { seq, scale });
      const want = new Float64Array(items * rows * seq);
      for (let r = 0; r < items * rows; r++) {
        const pos = (r % rows) % seq;
        let m = -Infinity;
        for (let j = 0; j <= pos; j++) m = Math.max(m, scale * s[r * seq + j]!);
        let sum = 0;
        for (let j = 0; j <= pos; j++) sum += Math.exp(scale * s[r * seq + j]! - m);
        for (let j = 0; j <= pos; j++) want[r * seq + j] = Math.exp(scale * s[r * seq + j]! - m) / sum;
      }
      expect(maxRelDiff(p!, want)).toBeLessThan(2e-6);
      for (let r = 0; r < items * rows; r++) for (let j = ((r % rows) % seq) + 1; j < seq; j++) expect(p![r * seq + j]).toBe(0);
    }
  });

  it('softmax gradient over the last axis', () => {
    for (const [rows, cols] of [[4, 3], [6, 33]] as const) {
      const p = values(rows * cols, cols, 1).map(Math.abs);
      const dp = values(rows * cols, cols + 1);
      const [out] = run(FusedKernel.softmaxGrad, { probs: tf.tensor2d(p, [rows, cols]), dProbs: tf.tensor2d(dp, [rows, cols]) }, { scale: 0.5 });
      const want = new Float64Array(rows * cols);
      for (let r = 0; r < rows; r++) {
        let dot = 0;
        for (let j = 0; j < cols; j++) dot += p[r * cols + j]! * dp[r * cols + j]!;
        for (let j = 0; j < cols; j++) want[r * cols + j] = p[r * cols + j]! * (dp[r * cols + j]! - dot) * 0.5;
      }
      expect(maxRelDiff(out!, want)).toBeLessThan(2e-6);
    }
  });

  it('RoPE with the head transpose, forward and its transpose map (half-widths 4·k and odd)', () => {
    for (const [batch, seq, heads, hd] of [[2, 3, 2, 8], [1, 5, 3, 6], [2, 4, 1, 16]] as const) {
      const half = hd / 2;
      const x = values(batch * seq * heads * hd, hd);
      const cos = values(seq * hd, hd + 1, 1);
      const sin = values(seq * hd, hd + 2, 1);
      const attrs = { batch, seq, heads, headDim: hd };
      const [fwd] = run(FusedKernel.ropeHeads, { x: tf.tensor2d(x, [batch * seq, heads * hd]), cos: tf.tensor2d(cos, [seq, hd]), sin: tf.tensor2d(sin, [seq, hd]) }, { ...attrs, backward: false });
      const [bwd] = run(FusedKernel.ropeHeads, { x: tf.tensor4d(x, [batch, heads, seq, hd]), cos: tf.tensor2d(cos, [seq, hd]), sin: tf.tensor2d(sin, [seq, hd]) }, { ...attrs, backward: true });
      const wantF = new Float64Array(x.length);
      const wantB = new Float64Array(x.length);
      for (let b = 0; b < batch; b++)
        for (let h = 0; h < heads; h++)
          for (let t = 0; t < seq; t++) {
            const flat = ((b * seq + t) * heads + h) * hd;
            const byHead = ((b * heads + h) * seq + t) * hd;
            for (let i = 0; i < hd; i++) {
              const c = cos[t * hd + i]!;
              const s = sin[t * hd + i]!;
              wantF[byHead + i] = i < half ? x[flat + i]! * c - x[flat + i + half]! * s : x[flat + i]! * c + x[flat + i - half]! * s;
              wantB[flat + i] = i < half ? x[byHead + i]! * c + x[byHead + i + half]! * sin[t * hd + i + half]! : x[byHead + i]! * c - x[byHead + i - half]! * sin[t * hd + i - half]!;
            }
          }
      expect(maxRelDiff(fwd!, wantF)).toBeLessThan(1e-6);
      expect(maxRelDiff(bwd!, wantB)).toBeLessThan(1e-6);
    }
  });

  it('AdamW: one update of parameter and both moments', () => {
    const n = 1027;
    const [p, g, m] = [1, 2, 3].map((s) => values(n, s));
    const v = values(n, 4).map(Math.abs);
    const a = { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, decay: 3e-5, gradScale: 0.7, bc1: 1 - 0.9 ** 3, bc2: 1 - 0.95 ** 3 };
    const [po, mo, vo] = run(FusedKernel.adamw, { param: tf.tensor1d(p!), grad: tf.tensor1d(g!), m: tf.tensor1d(m!), v: tf.tensor1d(v) }, a);
    const want = { p: new Float64Array(n), m: new Float64Array(n), v: new Float64Array(n) };
    for (let i = 0; i < n; i++) {
      const gi = a.gradScale * g![i]!;
      want.m[i] = a.beta1 * m![i]! + (1 - a.beta1) * gi;
      want.v[i] = a.beta2 * v[i]! + (1 - a.beta2) * gi * gi;
      want.p[i] = p![i]! * (1 - a.decay) - (a.lr * (want.m[i]! / a.bc1)) / (Math.sqrt(want.v[i]! / a.bc2) + a.eps);
    }
    expect(maxRelDiff(mo!, want.m)).toBeLessThan(2e-6);
    expect(maxRelDiff(vo!, want.v)).toBeLessThan(2e-6);
    expect(maxRelDiff(po!, want.p)).toBeLessThan(2e-6);
  });

  it('reject inputs that do not fit, naming the kernel, and leak no tensors', () => {
    const before = tf.memory().numTensors;
    expect(() => run(FusedKernel.swiglu, { gate: tf.tensor1d([1, 2]), up: tf.tensor1d([1, 2, 3]) })).toThrow(/TopiarySwiglu: inputs of different sizes/);
    expect(() => run(FusedKernel.ropeHeads, { x: tf.zeros([2, 6]), cos: tf.zeros([2, 3]), sin: tf.zeros([2, 3]) }, { batch: 1, seq: 2, heads: 2, headDim: 3, backward: false })).toThrow(/TopiaryRopeHeads/);
    expect(() => run(FusedKernel.causalSoftmax, { scores: tf.zeros([2, 2]) }, { seq: 2, scale: 1 })).toThrow(/TopiaryCausalSoftmax/);
    // the inputs made in those calls are the only tensors left
    expect(tf.memory().numTensors - before).toBe(6);
  });

  it('a training step with the fused kernels equals one with composite ops (model-llama on a tiny LLaMA)', async () => {
    const { createLlama, AdamW, trainStep } = await import('@topiary/model-llama');
    const cfg = { dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, hiddenDim: 44, vocabSize: 37, maxSeqLen: 17, tiedEmbeddings: true };
    const ids = tf.tensor2d(Int32Array.from({ length: 3 * 17 }, (_, i) => (i * 7 + 3) % 37), [3, 17], 'int32');
    const steps = (fused: boolean): { losses: number[]; weights: Float32Array } => {
      if (fused) installInPlaceFusedKernels();
      else uninstallInPlaceFusedKernels();
      const model = createLlama(cfg, { seed: 3 });
      const opt = new AdamW({ lr: 1e-2 });
      const losses = [0, 1, 2].map(() => trainStep(model, opt, ids).loss);
      const eval1 = model.loss(ids);
      losses.push(eval1.dataSync()[0]!);
      eval1.dispose();
      const weights = Float32Array.from([...model.parameters().values()].flatMap((p) => [...(p.dataSync() as Float32Array)]));
      model.dispose();
      return { losses, weights };
    };
    const composite = steps(false);
    const fused = steps(true);
    expect(tf.getKernel(FusedKernel.rmsNorm, 'wasm')).toBeDefined();
    for (const [i, l] of fused.losses.entries()) expect(Math.abs(l - composite.losses[i]!), `loss ${i}`).toBeLessThan(1e-4 * Math.abs(composite.losses[i]!));
    expect(maxRelDiff(fused.weights, composite.weights)).toBeLessThan(1e-4);
  });
});
