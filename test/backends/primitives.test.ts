/**
 * Backend conformance, pruning primitives (`backend.primitives`, host-side typed arrays): every backend's set —
 * the generic kernel implementation or its own overrides — against explicit products and closed forms.
 *
 * Tolerances:
 *   accumulateGram / accumulateColumnSquares (float32 inputs, float64 accumulator)  relative ≤ 1e-5 vs the explicit float64 XᵀX
 *   matmul, rowNorms                                                                 relative ≤ 1e-5
 *   cholesky, choleskyInverse, upperCholeskyOfInverse (float64)                      ≤ 1e-10 (closed forms), ≤ 1e-9 (identities on n = 40)
 *   masks                                                                            exact counts and positions
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TopiaryError } from '@topiary/kernel';
import { backendsUnderTest, hostMatMul, hostTranspose, maxAbsDiff, relDiff, uniform } from './harness.js';

const backends = await backendsUnderTest();

/** The 1-D Laplacian tridiag(−1, 2, −1): its Cholesky factor and inverse have closed forms. */
function laplacian(n: number): Float64Array {
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    a[i * n + i] = 2;
    if (i > 0) a[i * n + i - 1] = -1;
    if (i < n - 1) a[i * n + i + 1] = -1;
  }
  return a;
}

/** A well-conditioned SPD matrix: XᵀX/rows + 0.1·I. */
function spd(n: number, seed: number): Float64Array {
  const x = uniform(3 * n * n, seed);
  const g = hostMatMul(hostTranspose(x, 3 * n, n), x, n, 3 * n, n);
  for (let i = 0; i < n * n; i++) g[i] = g[i]! / (3 * n);
  for (let i = 0; i < n; i++) g[i * n + i]! += 0.1;
  return g;
}

function mul64(a: Float64Array, b: Float64Array, n: number): Float64Array {
  return hostMatMul(a, b, n, n, n);
}

function identity(n: number): Float64Array {
  const e = new Float64Array(n * n);
  for (let i = 0; i < n; i++) e[i * n + i] = 1;
  return e;
}

for (const { label, backend, skip } of backends) {
  describe.skipIf(skip !== undefined)(`conformance primitives: ${label}`, () => {
    const p = backend.primitives;
    // Active engine, as in a real run: some backends (wasm) run primitives on their engine when it is active.
    beforeAll(async () => {
      await backend.init();
    });

    it('runs with its engine active', () => {
      expect(tf.getBackend()).toBe(backend.engine);
    });

    // gpujs-webgl: after each primitive, the gpu.js kernel that really ran is a WebGL one (never the CPU fallback)
    const gpuMode = (): string | undefined => (backend as { gpuMode?: string }).gpuMode;
    afterEach(() => {
      if (label === 'gpujs-webgl') expect(gpuMode()).toBe('headlessgl');
    });

    it('accumulateGram equals the explicit XᵀX and accumulates across calls (several 256-row blocks)', () => {
      const [n, d] = [700, 24];
      const x = uniform(n * d, 31);
      const want = hostMatMul(hostTranspose(x, n, d), x, d, n, d);
      const acc = new Float64Array(d * d);
      p.accumulateGram(x.subarray(0, 300 * d), 300, d, acc);
      p.accumulateGram(x.subarray(300 * d), 400, d, acc);
      expect(relDiff(acc, want)).toBeLessThan(1e-5);
      // Symmetric exactly.
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) expect(acc[i * d + j]).toBe(acc[j * d + i]);
    });

    it('accumulateColumnSquares equals the Gram diagonal', () => {
      const [n, d] = [50, 9];
      const x = uniform(n * d, 32);
      const acc = new Float64Array(d);
      p.accumulateColumnSquares(x, n, d, acc);
      const g = hostMatMul(hostTranspose(x, n, d), x, d, n, d);
      expect(relDiff(acc, Array.from({ length: d }, (_, i) => g[i * d + i]!))).toBeLessThan(1e-6);
    });

    it('matmul and rowNorms match the definitions', () => {
      const a = uniform(13 * 40, 33);
      const b = uniform(40 * 11, 34);
      expect(relDiff(p.matmul(a, b, 13, 40, 11), hostMatMul(a, b, 13, 40, 11))).toBeLessThan(1e-5);
      const norms = p.rowNorms(a, 13, 40);
      const want = Array.from({ length: 13 }, (_, i) => Math.hypot(...a.subarray(i * 40, (i + 1) * 40)));
      expect(relDiff(norms, want)).toBeLessThan(1e-5);
    });

    it('cholesky of the Laplacian has the closed form L_ii = √((i+2)/(i+1)), L_(i+1,i) = −√((i+1)/(i+2))', () => {
      const n = 12;
      const l = p.cholesky(laplacian(n), n);
      const want = new Float64Array(n * n);
      for (let i = 0; i < n; i++) {
        want[i * n + i] = Math.sqrt((i + 2) / (i + 1));
        if (i + 1 < n) want[(i + 1) * n + i] = -Math.sqrt((i + 1) / (i + 2));
      }
      expect(maxAbsDiff(l, want)).toBeLessThan(1e-12);
    });

    it('cholesky: L·Lᵀ = A and L lower-triangular on a random SPD matrix', () => {
      const n = 40;
      const a = spd(n, 35);
      const l = p.cholesky(a, n);
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) expect(l[i * n + j]).toBe(0);
      expect(maxAbsDiff(mul64(l, hostTranspose(l, n, n), n), a)).toBeLessThan(1e-9);
    });

    it('cholesky refuses a matrix that is not positive definite with E_NUMERIC and a dampening hint', () => {
      const a = Float64Array.from([1, 2, 2, 1]);
      let err: unknown;
      try {
        p.cholesky(a, 2);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TopiaryError);
      expect((err as TopiaryError).code).toBe('E_NUMERIC');
      expect((err as TopiaryError).hint).toContain('dampening');
    });

    it('choleskyInverse: the Laplacian inverse closed form min(i,j)(n+1−max(i,j))/(n+1), and A⁻¹·A = I', () => {
      const n = 10;
      const inv = p.choleskyInverse(laplacian(n), n);
      const want = new Float64Array(n * n);
      for (let i = 1; i <= n; i++) for (let j = 1; j <= n; j++) want[(i - 1) * n + (j - 1)] = (Math.min(i, j) * (n + 1 - Math.max(i, j))) / (n + 1);
      expect(maxAbsDiff(inv, want)).toBeLessThan(1e-10);
      const m = 40;
      const a = spd(m, 36);
      expect(maxAbsDiff(mul64(p.choleskyInverse(a, m), a, m), identity(m))).toBeLessThan(1e-9);
    });

    it('upperCholeskyOfInverse: U upper-triangular with UᵀU = A⁻¹', () => {
      const n = 40;
      const a = spd(n, 37);
      const u = p.upperCholeskyOfInverse(a, n);
      for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(u[i * n + j]).toBe(0);
      const utu = mul64(hostTranspose(u, n, n), u, n);
      expect(maxAbsDiff(mul64(utu, a, n), identity(n))).toBeLessThan(1e-9);
      // Closed form for the 2×2 case A = diag(4, 9): A⁻¹ = diag(1/4, 1/9), U = diag(1/2, 1/3).
      expect(maxAbsDiff(p.upperCholeskyOfInverse(Float64Array.from([4, 0, 0, 9]), 2), [0.5, 0, 0, 1 / 3])).toBeLessThan(1e-15);
    });

    it('nmMask 2:4 and 4:8 zero exactly N of every M, the lowest ones, ties by index', () => {
      const [rows, cols] = [6, 16];
      const scores = uniform(rows * cols, 38).map(Math.abs);
      for (const [n, m] of [
        [2, 4],
        [4, 8],
      ] as const) {
        const keep = p.nmMask(scores, rows, cols, n, m);
        for (let r = 0; r < rows; r++)
          for (let g = 0; g < cols; g += m) {
            const block = Array.from({ length: m }, (_, i) => r * cols + g + i);
            expect(block.filter((i) => keep[i] === 0)).toHaveLength(n);
            const kept = block.filter((i) => keep[i] === 1).map((i) => scores[i]!);
            const pruned = block.filter((i) => keep[i] === 0).map((i) => scores[i]!);
            expect(Math.max(...pruned)).toBeLessThanOrEqual(Math.min(...kept));
          }
      }
      expect(Array.from(p.nmMask(new Float32Array(4).fill(1), 1, 4, 2, 4))).toEqual([0, 0, 1, 1]);
      expect(() => p.nmMask(scores, rows, 15, 2, 4)).toThrow(TopiaryError);
    });

    it('lowestMask and rowwiseMask: exact counts of the lowest scores', () => {
      const scores = Float32Array.from([5, 1, 4, 1, 3, 9, 0, 2]);
      expect(Array.from(p.lowestMask(scores, 3))).toEqual([1, 0, 1, 0, 1, 1, 0, 1]);
      const rowwise = p.rowwiseMask(scores, 2, 4, 0.5);
      expect(Array.from(rowwise)).toEqual([1, 0, 1, 0, 1, 1, 0, 0]);
      expect(rowwise.reduce((s, v) => s + v, 0)).toBe(4);
    });
  });
}
