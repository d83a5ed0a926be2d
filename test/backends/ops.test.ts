/**
 * Backend conformance, tensor ops: the operations a LLaMA forward and backward pass uses, on every backend plugin
 * that loads here, against closed forms (computed in float64 on the host) and against tfjs's cpu engine.
 *
 * Tolerances, per op (inputs are in [-1, 1] unless said; float32 engines):
 *   matmul, batched matmul (k ≤ 64)        |Δ| ≤ 1e-4 vs the float64 definition; ≤ 1e-4 vs cpu
 *   softmax                                 |Δ| ≤ 1e-6 vs exp(x − max)/Σ; rows sum to 1 ± 1e-6
 *   rsqrt (x in [0.01, 100])                relative ≤ 2e-6 vs 1/√x
 *   sin / cos (RoPE angles, up to 255 rad)  |Δ| ≤ 1e-5 vs Math.sin/cos of the same float32 angle
 *   gather, bandPart (causal mask)          exact
 *   gradients: matmul ≤ 1e-4, softmax ≤ 1e-6, rsqrt relative ≤ 1e-5, sin/cos ≤ 1e-6, gather exact (closed forms);
 *              a causal attention block ≤ 1e-5 relative vs cpu
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { backendsUnderTest, hostMatMul, hostTranspose, maxAbsDiff, onCpu, relDiff, uniform } from './harness.js';

const backends = await backendsUnderTest();

function t(shape: number[], seed: number): tf.Tensor {
  return tf.tensor(uniform(shape.reduce((p, d) => p * d, 1), seed), shape);
}

/** A causal self-attention block (the shape of LLaMA's, without projections): softmax(QKᵀ/√d + mask)·V. */
function attention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor): tf.Tensor {
  const [, , seq, d] = q.shape as [number, number, number, number];
  const scores = tf.div(tf.matMul(q, k, false, true), Math.sqrt(d));
  const causal = tf.linalg.bandPart(tf.ones([seq, seq]), -1, 0);
  const masked = tf.add(scores, tf.mul(tf.sub(1, causal), -1e9));
  return tf.matMul(tf.softmax(masked), v);
}

for (const { label, backend, skip } of backends) {
  describe.skipIf(skip !== undefined)(`conformance ops: ${label}`, () => {
    beforeAll(async () => {
      await backend.init();
    });

    it('activates its engine', () => {
      expect(tf.getBackend()).toBe(backend.engine);
    });

    for (const [ta, tb] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const) {
      it(`matmul transposeA=${ta} transposeB=${tb}: definition and cpu`, async () => {
        const [m, k, n] = [7, 64, 5];
        const a = t(ta ? [k, m] : [m, k], 1);
        const b = t(tb ? [n, k] : [k, n], 2);
        const got = tf.matMul(a, b, ta, tb).dataSync();
        const A = ta ? hostTranspose(a.dataSync(), k, m) : a.dataSync();
        const B = tb ? hostTranspose(b.dataSync(), n, k) : b.dataSync();
        expect(maxAbsDiff(got, hostMatMul(A, B, m, k, n))).toBeLessThan(1e-4);
        const ref = await onCpu(() => tf.matMul(a, b, ta, tb).dataSync());
        expect(maxAbsDiff(got, ref)).toBeLessThan(1e-4);
      });
    }

    it('batched matmul (attention shape [batch, heads, seq, d]) and broadcast of a shared right operand', async () => {
      const q = t([2, 3, 8, 16], 3);
      const k = t([2, 3, 8, 16], 4);
      const got = tf.matMul(q, k, false, true);
      expect(got.shape).toEqual([2, 3, 8, 8]);
      const Q = q.dataSync();
      const K = k.dataSync();
      const G = got.dataSync();
      for (let item = 0; item < 6; item++) {
        const want = hostMatMul(Q.subarray(item * 128, (item + 1) * 128), hostTranspose(K.subarray(item * 128, (item + 1) * 128), 8, 16), 8, 16, 8);
        expect(maxAbsDiff(G.subarray(item * 64, (item + 1) * 64), want)).toBeLessThan(1e-4);
      }
      const x = t([4, 6, 32], 5);
      const w = t([32, 12], 6);
      const y = tf.matMul(x, w);
      expect(y.shape).toEqual([4, 6, 12]);
      expect(maxAbsDiff(y.dataSync(), hostMatMul(x.dataSync(), w.dataSync(), 24, 32, 12))).toBeLessThan(1e-4);
      const ref = await onCpu(() => tf.matMul(q, k, false, true).dataSync());
      expect(maxAbsDiff(G, ref)).toBeLessThan(1e-4);
    });

    it('softmax: closed form, rows sum to 1, cpu', async () => {
      const x = tf.mul(t([6, 50], 7), 8);
      const got = tf.softmax(x).dataSync();
      const X = x.dataSync();
      for (let r = 0; r < 6; r++) {
        const row = Array.from(X.subarray(r * 50, (r + 1) * 50));
        const mx = Math.max(...row);
        const e = row.map((v) => Math.exp(v - mx));
        const z = e.reduce((s, v) => s + v, 0);
        expect(maxAbsDiff(got.subarray(r * 50, (r + 1) * 50), e.map((v) => v / z))).toBeLessThan(1e-6);
        expect(Math.abs(Array.from(got.subarray(r * 50, (r + 1) * 50)).reduce((s, v) => s + v, 0) - 1)).toBeLessThan(1e-6);
      }
      expect(maxAbsDiff(got, await onCpu(() => tf.softmax(x).dataSync()))).toBeLessThan(1e-6);
    });

    it('rsqrt: relative error vs 1/√x', () => {
      const xs = Float32Array.from({ length: 200 }, (_, i) => 0.01 * Math.pow(10000, i / 199));
      const got = tf.rsqrt(tf.tensor1d(xs)).dataSync();
      for (let i = 0; i < xs.length; i++) expect(Math.abs(got[i]! * Math.sqrt(xs[i]!) - 1)).toBeLessThan(2e-6);
    });

    it('sin/cos on RoPE angles (positions 0..255 × inverse frequencies)', () => {
      const dim = 48;
      const angles = new Float32Array(256 * (dim / 2));
      for (let p = 0; p < 256; p++) for (let i = 0; i < dim / 2; i++) angles[p * (dim / 2) + i] = p / Math.pow(10000, (2 * i) / dim);
      const x = tf.tensor1d(angles);
      const s = tf.sin(x).dataSync();
      const c = tf.cos(x).dataSync();
      expect(maxAbsDiff(s, Array.from(angles, Math.sin))).toBeLessThan(1e-5);
      expect(maxAbsDiff(c, Array.from(angles, Math.cos))).toBeLessThan(1e-5);
    });

    it('gather (embedding lookup) is exact, repeated ids included', () => {
      const table = t([10, 4], 8);
      const ids = [3, 0, 3, 9, 7];
      const got = tf.gather(table, tf.tensor1d(ids, 'int32')).arraySync() as number[][];
      const rows = table.arraySync() as number[][];
      expect(got).toEqual(ids.map((i) => rows[i]));
    });

    it('causal mask with bandPart is exactly lower-triangular, and masked attention ignores the future', () => {
      const mask = tf.linalg.bandPart(tf.ones([5, 5]), -1, 0).arraySync() as number[][];
      expect(mask).toEqual(mask.map((row, i) => row.map((_, j) => (j <= i ? 1 : 0))));
      // Changing future values must not change earlier outputs.
      const q = t([1, 1, 6, 8], 9);
      const k = t([1, 1, 6, 8], 10);
      const v = t([1, 1, 6, 8], 11);
      const out1 = attention(q, k, v).dataSync();
      const v2 = tf.concat([tf.slice(v, [0, 0, 0, 0], [1, 1, 5, 8]), tf.fill([1, 1, 1, 8], 100)], 2);
      const out2 = attention(q, k, v2).dataSync();
      expect(maxAbsDiff(out1.subarray(0, 40), out2.subarray(0, 40))).toBe(0);
      expect(maxAbsDiff(out1.subarray(40), out2.subarray(40))).toBeGreaterThan(1);
      // First row attends only to itself: output row 0 = v row 0.
      expect(maxAbsDiff(out1.subarray(0, 8), v.dataSync().subarray(0, 8))).toBeLessThan(1e-6);
    });

    it('gradient of matmul (incl. transposed operands): dA = dY·Bᵀ, dB = Aᵀ·dY', () => {
      const [m, k, n] = [6, 20, 4];
      const a = t([m, k], 12);
      const b = t([n, k], 13);
      const dy = t([m, n], 14);
      const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y, false, true), dy)))([a, b]);
      // y = a·bᵀ ⇒ da = dy·b, db = dyᵀ·a
      expect(maxAbsDiff(ga!.dataSync(), hostMatMul(dy.dataSync(), b.dataSync(), m, n, k))).toBeLessThan(1e-4);
      expect(maxAbsDiff(gb!.dataSync(), hostMatMul(hostTranspose(dy.dataSync(), m, n), a.dataSync(), n, m, k))).toBeLessThan(1e-4);
    });

    it('gradient of softmax: dx = s ⊙ (w − Σ s·w)', () => {
      const x = t([3, 10], 15);
      const w = t([3, 10], 16);
      const g = tf.grad((z: tf.Tensor) => tf.sum(tf.mul(tf.softmax(z), w)))(x).dataSync();
      const s = tf.softmax(x).dataSync();
      const W = w.dataSync();
      const want = new Float64Array(30);
      for (let r = 0; r < 3; r++) {
        let dot = 0;
        for (let j = 0; j < 10; j++) dot += s[r * 10 + j]! * W[r * 10 + j]!;
        for (let j = 0; j < 10; j++) want[r * 10 + j] = s[r * 10 + j]! * (W[r * 10 + j]! - dot);
      }
      expect(maxAbsDiff(g, want)).toBeLessThan(1e-6);
    });

    it('gradients of rsqrt, sin and cos: −½x^(−3/2), cos, −sin', () => {
      const xs = Float32Array.from({ length: 50 }, (_, i) => 0.1 + i * 0.2);
      const x = tf.tensor1d(xs);
      const gr = tf.grad((z: tf.Tensor) => tf.sum(tf.rsqrt(z)))(x).dataSync();
      for (let i = 0; i < 50; i++) expect(Math.abs(gr[i]! / (-0.5 * Math.pow(xs[i]!, -1.5)) - 1)).toBeLessThan(1e-5);
      const gs = tf.grad((z: tf.Tensor) => tf.sum(tf.sin(z)))(x).dataSync();
      const gc = tf.grad((z: tf.Tensor) => tf.sum(tf.cos(z)))(x).dataSync();
      expect(maxAbsDiff(gs, Array.from(xs, Math.cos))).toBeLessThan(1e-6);
      expect(maxAbsDiff(gc, Array.from(xs, (v) => -Math.sin(v)))).toBeLessThan(1e-6);
    });

    it('gradient of gather (the embedding gradient) counts repeated ids exactly', () => {
      const table = t([6, 3], 17);
      const ids = tf.tensor1d([5, 1, 5, 5, 0], 'int32');
      const g = tf.grad((z: tf.Tensor) => tf.sum(tf.gather(z, ids)))(table).arraySync();
      expect(g).toEqual([[1, 1, 1], [1, 1, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0], [3, 3, 3]]);
    });

    it('gradients through a causal attention block (batched matmuls, mask, softmax) match cpu', async () => {
      const q = t([2, 2, 8, 12], 18);
      const k = t([2, 2, 8, 12], 19);
      const v = t([2, 2, 8, 12], 20);
      const w = t([2, 2, 8, 12], 21);
      const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(attention(a, b, c), w));
      const got = tf.grads(f)([q, k, v]).map((g) => g.dataSync());
      const ref = await onCpu(() => tf.grads(f)([q, k, v]).map((g) => g.dataSync()));
      for (let i = 0; i < 3; i++) expect(relDiff(got[i]!, ref[i]!)).toBeLessThan(1e-5);
    });

    it('leaves no tensors behind in a tidy forward+backward', () => {
      const a = t([8, 16], 22);
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        tf.grads((x: tf.Tensor) => tf.sum(tf.softmax(tf.matMul(x, x, false, true))))([a]);
      });
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}
