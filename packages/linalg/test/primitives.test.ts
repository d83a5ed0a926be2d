import { describe, expect, it } from 'vitest';
import { genericPrimitives as P, SeededRandom } from '../src/index.js';

function randomMatrix(rng: SeededRandom, rows: number, cols: number): Float32Array {
  const m = new Float32Array(rows * cols);
  for (let i = 0; i < m.length; i++) m[i] = rng.next() * 2 - 1;
  return m;
}

/** A symmetric positive definite matrix XᵀX + εI from random X. */
function spd(rng: SeededRandom, n: number): Float64Array {
  const x = randomMatrix(rng, 3 * n, n);
  const a = new Float64Array(n * n);
  P.accumulateGram(x, 3 * n, n, a);
  for (let i = 0; i < n; i++) a[i * n + i]! += 0.1;
  return a;
}

function matmul64(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) c[i * n + j]! += a[i * n + k]! * b[k * n + j]!;
  return c;
}

function transpose64(a: Float64Array, n: number): Float64Array {
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[j * n + i] = a[i * n + j]!;
  return t;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('generic primitives', () => {
  const rng = new SeededRandom(7);

  it('Gram accumulation equals the explicit XᵀX and accumulates across calls', () => {
    const x = randomMatrix(rng, 10, 4);
    const acc = new Float64Array(16);
    P.accumulateGram(x.subarray(0, 24), 6, 4, acc);
    P.accumulateGram(x.subarray(24), 4, 4, acc);
    const expected = new Float64Array(16);
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) for (let r = 0; r < 10; r++) expected[i * 4 + j]! += x[r * 4 + i]! * x[r * 4 + j]!;
    expect(maxAbsDiff(acc, expected)).toBeLessThan(1e-12);
    const sq = new Float64Array(4);
    P.accumulateColumnSquares(x, 10, 4, sq);
    expect(maxAbsDiff(sq, [0, 5, 10, 15].map((d) => expected[d]!))).toBeLessThan(1e-12);
  });

  it('Cholesky of a closed-form matrix', () => {
    // [[4,2],[2,3]] = L Lᵀ with L = [[2,0],[1,√2]]
    const l = P.cholesky(new Float64Array([4, 2, 2, 3]), 2);
    expect(maxAbsDiff(l, [2, 0, 1, Math.SQRT2])).toBeLessThan(1e-15);
  });

  it('Cholesky, inverse and the upper factor of the inverse satisfy their identities', () => {
    const n = 12;
    const a = spd(rng, n);
    const l = P.cholesky(a, n);
    expect(maxAbsDiff(matmul64(l, transpose64(l, n), n), a)).toBeLessThan(1e-10);
    const inv = P.choleskyInverse(a, n);
    const eye = matmul64(inv, a, n);
    for (let i = 0; i < n; i++) eye[i * n + i]! -= 1;
    expect(maxAbsDiff(eye, new Float64Array(n * n))).toBeLessThan(1e-9);
    const u = P.upperCholeskyOfInverse(a, n);
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(u[i * n + j]).toBe(0);
    expect(maxAbsDiff(matmul64(transpose64(u, n), u, n), inv)).toBeLessThan(1e-9);
  });

  it('refuses a matrix that is not positive definite with a hint', () => {
    expect(() => P.cholesky(new Float64Array([1, 2, 2, 1]), 2)).toThrow(expect.objectContaining({ code: 'E_NUMERIC' }));
  });

  it('row norms and matmul against closed forms', () => {
    expect(Array.from(P.rowNorms(new Float32Array([3, 4, 0, 5, 12, 0]), 2, 3))).toEqual([5, 13]);
    const c = P.matmul(new Float32Array([1, 2, 3, 4]), new Float32Array([5, 6, 7, 8]), 2, 2, 2);
    expect(Array.from(c)).toEqual([19, 22, 43, 50]);
  });

  it('masks: lowest-k, per-row fraction and exact N:M', () => {
    expect(Array.from(P.lowestMask(new Float32Array([5, 1, 4, 2, 3]), 2))).toEqual([1, 0, 1, 0, 1]);
    const rows = 3;
    const cols = 8;
    const scores = randomMatrix(rng, rows, cols);
    const half = P.rowwiseMask(scores, rows, cols, 0.5);
    for (let r = 0; r < rows; r++) {
      const row = half.subarray(r * cols, (r + 1) * cols);
      expect(row.reduce((s, v) => s + v, 0)).toBe(4);
      const kept = Array.from(scores.subarray(r * cols, (r + 1) * cols)).filter((_, j) => row[j] === 1);
      const dropped = Array.from(scores.subarray(r * cols, (r + 1) * cols)).filter((_, j) => row[j] === 0);
      expect(Math.min(...kept)).toBeGreaterThanOrEqual(Math.max(...dropped));
    }
    const nm = P.nmMask(scores, rows, cols, 2, 4);
    for (let g = 0; g < rows * cols; g += 4) expect(nm[g]! + nm[g + 1]! + nm[g + 2]! + nm[g + 3]!).toBe(2);
    expect(() => P.nmMask(scores, rows, 6, 2, 4)).toThrow(/divisible by 4/);
  });

  it('seeded random is reproducible and restorable', () => {
    const a = new SeededRandom(42);
    const first = [a.next(), a.next()];
    const state = a.getState();
    const third = a.next();
    const b = new SeededRandom(42);
    expect([b.next(), b.next()]).toEqual(first);
    b.setState(state);
    expect(b.next()).toBe(third);
  });
});

describe('mask ordering (numeric sort keys)', () => {
  // The reference: a comparator sort by score, ties by index.
  function referenceOrder(scores: Float32Array): number[] {
    return [...scores.keys()].sort((p, q) => scores[p]! - scores[q]! || p - q);
  }
  it('lowestMask and rowwiseMask equal a comparator sort, with ties, negatives, ±0 and infinities', () => {
    const rng = new SeededRandom(21);
    for (const n of [1, 2, 7, 64, 1000, 5000]) {
      const scores = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const r = rng.next();
        // a few repeated values (ties), negatives, both zeros and infinities among ordinary floats
        scores[i] = r < 0.1 ? 0.5 : r < 0.15 ? -0 : r < 0.2 ? 0 : r < 0.22 ? -Infinity : r < 0.24 ? Infinity : (rng.next() - 0.3) * 1e3;
      }
      for (const count of [0, 1, Math.floor(n / 2), n]) {
        const expected = new Uint8Array(n).fill(1);
        for (const i of referenceOrder(scores).slice(0, count)) expected[i] = 0;
        expect([...P.lowestMask(scores, count)], `n ${n} count ${count}`).toEqual([...expected]);
      }
      const cols = n >= 7 ? 7 : n;
      const rows = Math.floor(n / cols);
      const rowScores = scores.subarray(0, rows * cols);
      const expected = new Uint8Array(rows * cols).fill(1);
      for (let r = 0; r < rows; r++) {
        const order = referenceOrder(rowScores.slice(r * cols, (r + 1) * cols));
        for (const c of order.slice(0, Math.floor(cols * 0.5))) expected[r * cols + c] = 0;
      }
      expect([...P.rowwiseMask(rowScores, rows, cols, 0.5)]).toEqual([...expected]);
    }
  });
});

describe('SeededRandom.skip', () => {
  it('moves on as that many next() calls would, past 2³² calls too', () => {
    for (const calls of [0, 1, 7, 1000]) {
      const walked = new SeededRandom(42);
      for (let i = 0; i < calls; i++) walked.next();
      expect(new SeededRandom(42).skip(calls).getState()).toBe(walked.getState());
      expect(new SeededRandom(42).skip(calls).next()).toBe(walked.next());
    }
    // the state moves by one constant per call, modulo 2³²: 2³² calls come back to the start (a 7B model draws ~1.4·10¹⁰)
    expect(new SeededRandom(42).skip(2 ** 32 + 5).getState()).toBe(new SeededRandom(42).skip(5).getState());
    expect(new SeededRandom(42).skip(3 * 2 ** 32).getState()).toBe(42);
  });
});
