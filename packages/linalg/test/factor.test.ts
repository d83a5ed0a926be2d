import { describe, expect, it } from 'vitest';
import { genericPrimitives as P, SeededRandom } from '../src/index.js';
import { cholesky, invertLower } from '../src/factor.js';

// The textbook loops the blocked factorisations replace: one chain of float64 subtractions per entry, ascending k.
function textbookCholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let s = a[j * n + j]!;
    for (let k = 0; k < j; k++) s -= l[j * n + k]! ** 2;
    const d = Math.sqrt(s);
    l[j * n + j] = d;
    for (let i = j + 1; i < n; i++) {
      let t = a[i * n + j]!;
      for (let k = 0; k < j; k++) t -= l[i * n + k]! * l[j * n + k]!;
      l[i * n + j] = t / d;
    }
  }
  return l;
}

function textbookInvertLower(l: Float64Array, n: number): Float64Array {
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < i; k++) {
      const lik = l[i * n + k]!;
      if (lik === 0) continue;
      for (let j = 0; j <= k; j++) inv[i * n + j]! -= lik * inv[k * n + j]!;
    }
    for (let j = 0; j < i; j++) inv[i * n + j]! /= l[i * n + i]!;
    inv[i * n + i] = 1 / l[i * n + i]!;
  }
  return inv;
}

function spd(rng: SeededRandom, n: number): Float64Array {
  const x = new Float32Array(2 * n * n);
  for (let i = 0; i < x.length; i++) x[i] = rng.next() * 2 - 1;
  const a = new Float64Array(n * n);
  P.accumulateGram(x, 2 * n, n, a);
  for (let i = 0; i < n; i++) a[i * n + i]! += 0.01;
  return a;
}

const bits = (a: Float64Array) => [...new BigUint64Array(a.buffer, a.byteOffset, a.length)];

describe('blocked factorisations (panels of 32 columns)', () => {
  const rng = new SeededRandom(11);
  // sizes around the panel width and its multiples, odd and even (the 2×2 tiles and 4-term passes have tails)
  for (const n of [1, 2, 3, 31, 32, 33, 63, 64, 65, 97, 130]) {
    it(`n = ${n}: Cholesky, L⁻¹ and the upper factor of the inverse equal the textbook loops bit for bit`, () => {
      const a = spd(rng, n);
      const l = cholesky(a, n);
      expect(bits(l)).toEqual(bits(textbookCholesky(a, n)));
      expect(bits(invertLower(l, n))).toEqual(bits(textbookInvertLower(l, n)));
      // U = J chol(J A J)⁻¹ J, J the reversal
      const rev = (m: Float64Array) => m.slice().reverse();
      expect(bits(P.upperCholeskyOfInverse(a, n))).toEqual(bits(rev(textbookInvertLower(textbookCholesky(rev(a), n), n))));
    });
  }

  it('a lower-triangular matrix with zeros below the diagonal inverts as the textbook loop does', () => {
    const n = 70;
    const l = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) l[i * n + j] = j === i ? 1 + rng.next() : rng.next() < 0.5 ? 0 : rng.next() - 0.5;
    expect(bits(invertLower(l, n))).toEqual(bits(textbookInvertLower(l, n)));
  });

  it('names the first non-positive pivot in the matrix’s own order', () => {
    const n = 40;
    const a = spd(rng, n);
    a[35 * n + 35] = -1;
    expect(() => P.cholesky(a, n)).toThrow(/pivot 35/);
    expect(() => P.upperCholeskyOfInverse(a, n)).toThrow(/pivot 35/);
  });
});

describe('per-row selection (quickselect on unique keys)', () => {
  it('rowwiseMask equals a comparator sort on wide rows with ties, ±0, ±∞ and NaN, from an offset view', () => {
    const rng = new SeededRandom(5);
    const rows = 9;
    const cols = 301;
    const backing = new Float32Array(rows * cols + 3);
    const scores = backing.subarray(3); // a view with a byte offset, as a caller's subarray would be
    for (let i = 0; i < scores.length; i++) {
      const r = rng.next();
      scores[i] = r < 0.2 ? 0.25 : r < 0.25 ? -0 : r < 0.3 ? 0 : r < 0.32 ? Infinity : r < 0.34 ? -Infinity : r < 0.35 ? NaN : rng.next() - 0.5;
    }
    // NaN ranks above +∞ (one canonical NaN key); otherwise by value, ties by index
    const rank = (v: number) => (Number.isNaN(v) ? Number.MAX_VALUE : v);
    for (const sparsity of [0, 0.1, 0.5, 0.9, 1]) {
      const expected = new Uint8Array(rows * cols).fill(1);
      for (let r = 0; r < rows; r++) {
        const row = scores.subarray(r * cols, (r + 1) * cols);
        const order = [...row.keys()].sort((p, q) => {
          const a = row[p]!, b = row[q]!;
          if (Number.isNaN(a) !== Number.isNaN(b)) return Number.isNaN(a) ? 1 : -1;
          return rank(a) - rank(b) || p - q;
        });
        for (const c of order.slice(0, Math.floor(cols * sparsity))) expected[r * cols + c] = 0;
      }
      expect([...P.rowwiseMask(scores, rows, cols, sparsity)], `sparsity ${sparsity}`).toEqual([...expected]);
    }
  });
});

describe('subtractProduct64 (nonzero terms four at a time, column tiles)', () => {
  it('equals the plain triple loop that skips zeros, bit for bit, with leading dimensions and sub-views', () => {
    const rng = new SeededRandom(9);
    for (const [m, n, k] of [[1, 1, 1], [5, 300, 7], [17, 520, 128], [3, 2, 9]] as const) {
      const lda = k + 2, ldb = n + 3, ldc = n + 5;
      const a = Float64Array.from({ length: m * lda }, () => (rng.next() < 0.5 ? 0 : rng.next() - 0.5));
      const b = Float64Array.from({ length: k * ldb }, () => rng.next() - 0.5);
      const c0 = Float64Array.from({ length: m * ldc + 1 }, () => rng.next() - 0.5);
      const expected = c0.slice();
      const ev = expected.subarray(1);
      for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) {
        const av = a[i * lda + p]!;
        if (av === 0) continue;
        for (let j = 0; j < n; j++) ev[i * ldc + j]! -= av * b[p * ldb + j]!;
      }
      const got = c0.slice();
      P.subtractProduct64(m, n, k, a, lda, b, ldb, got.subarray(1), ldc);
      expect(bits(got), `${m}×${n}×${k}`).toEqual(bits(expected));
    }
  });
});
