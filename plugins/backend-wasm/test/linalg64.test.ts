import { describe, expect, it } from 'vitest';
import { genericPrimitives, SeededRandom } from '@topiary/linalg';
import { wasmPrimitives } from '../src/index.js';

/** A float64 block with about `zeros` of its entries exactly zero (SparseGPT's error blocks: the kept weights). */
function block(rng: SeededRandom, length: number, zeros: number): Float64Array {
  return Float64Array.from({ length }, () => (rng.next() < zeros ? 0 : (rng.next() - 0.5) * 3));
}

describe('subtractProduct64 on the wasm backend (SparseGPT lazy batch update, float64 SIMD)', () => {
  it('is the generic loops bit for bit: strided operands, odd widths, several column tiles, rows without terms', () => {
    const rng = new SeededRandom(11);
    // m, n, k, and the strides' extra columns; n = 613 crosses two 256-column tiles and ends odd
    for (const [m, n, k, extra, zeros] of [[64, 613, 128, 7, 0.5], [37, 300, 5, 0, 0.3], [128, 256, 128, 1, 0.5], [9, 1001, 64, 3, 1]] as const) {
      const lda = k + extra;
      const ldb = n + extra + 2;
      const ldc = n + extra;
      const a = block(rng, m * lda, zeros);
      const b = block(rng, k * ldb, 0);
      const c = block(rng, m * ldc, 0);
      const want = c.slice();
      genericPrimitives.subtractProduct64(m, n, k, a, lda, b, ldb, want, ldc);
      const got = c.slice();
      wasmPrimitives.subtractProduct64(m, n, k, a, lda, b, ldb, got, ldc);
      expect(wasmPrimitives.subtractProduct64, 'the wasm backend has its own kernel').not.toBe(genericPrimitives.subtractProduct64);
      // the bits, not just the values: −0 and +0 must agree too
      expect(new Uint32Array(got.buffer), `${m}×${n}·${k}`).toEqual(new Uint32Array(want.buffer));
      // entries outside the m×n block (the strides' padding) are untouched
      for (let i = 0; i < m; i++) for (let j = n; j < ldc; j++) expect(got[i * ldc + j]).toBe(c[i * ldc + j]);
      if (zeros < 1) expect(got.some((v, i) => v !== c[i]), 'the product changed C').toBe(true);
    }
  });

  it('leaves small products to the generic code and still agrees', () => {
    const rng = new SeededRandom(5);
    const [m, n, k] = [3, 4, 2];
    const a = block(rng, m * k, 0.2);
    const b = block(rng, k * n, 0);
    const c = block(rng, m * n, 0);
    const want = c.slice();
    genericPrimitives.subtractProduct64(m, n, k, a, k, b, n, want, n);
    wasmPrimitives.subtractProduct64(m, n, k, a, k, b, n, c, n);
    expect([...c]).toEqual([...want]);
  });
});

describe('upperCholeskyOfInverse on the wasm backend (SparseGPT factorisation, float64 SIMD loops)', () => {
  /** A symmetric positive definite n×n matrix: XᵀX/rows + a small ridge, with some zero entries in X. */
  function spd(rng: SeededRandom, n: number): Float64Array {
    const rows = n + 17;
    const x = Float64Array.from({ length: rows * n }, () => (rng.next() < 0.2 ? 0 : rng.next() - 0.5));
    const a = new Float64Array(n * n);
    for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j]! += (x[r * n + i]! * x[r * n + j]!) / rows;
    for (let i = 0; i < n; i++) a[i * n + i]! += 0.01;
    return a;
  }

  it('is the generic factorisation bit for bit (orders that are and are not multiples of the panel, odd and even)', () => {
    const rng = new SeededRandom(21);
    expect(wasmPrimitives.upperCholeskyOfInverse, 'the wasm backend has its own').not.toBe(genericPrimitives.upperCholeskyOfInverse);
    for (const n of [64, 97, 130, 200]) {
      const a = spd(rng, n);
      const before = a.slice();
      const want = genericPrimitives.upperCholeskyOfInverse(a, n);
      const got = wasmPrimitives.upperCholeskyOfInverse(a, n);
      expect(new Uint32Array(got.buffer), `n = ${n}`).toEqual(new Uint32Array(want.buffer));
      expect([...a], 'the input is not modified').toEqual([...before]);
      // and it is the factor: (UᵀU)·A ≈ I on a few entries
      for (const [i, j] of [[0, 0], [n - 1, n - 1], [3, 7]] as const) {
        let s = 0;
        for (let k = 0; k < n; k++) {
          let uu = 0;
          for (let r = 0; r < n; r++) uu += got[r * n + i]! * got[r * n + k]!;
          s += uu * a[k * n + j]!;
        }
        expect(s).toBeCloseTo(i === j ? 1 : 0, 6);
      }
    }
  });

  it('names the failing pivot for a matrix that is not positive definite, as the generic code does', () => {
    const n = 80;
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) a[i * n + i] = i === 41 ? -1 : 1;
    let want = '';
    try {
      genericPrimitives.upperCholeskyOfInverse(a, n);
    } catch (e) {
      want = (e as Error).message;
    }
    expect(want).toMatch(/not positive definite/);
    expect(() => wasmPrimitives.upperCholeskyOfInverse(a, n)).toThrow(want);
  });
});

describe('obsBlock on the wasm backend (SparseGPT OBS steps, float64 SIMD)', () => {
  it('is the generic loop bit for bit (U a strided block; odd counts; rows with no drops and with every drop)', () => {
    const rng = new SeededRandom(8);
    expect(wasmPrimitives.obsBlock, 'the wasm backend has its own').not.toBe(genericPrimitives.obsBlock);
    for (const [rows, count, ldu] of [[64, 128, 300], [37, 61, 61], [9, 128, 130]] as const) {
      const w = block(rng, rows * count, 0);
      const u = block(rng, count * ldu, 0);
      for (let j = 0; j < count; j++) u[j * ldu + j] = 0.5 + rng.next(); // a positive diagonal
      const keep = Uint8Array.from({ length: rows * count }, (_, i) => (Math.floor(i / count) === 0 ? 1 : Math.floor(i / count) === 1 ? 0 : rng.next() < 0.5 ? 1 : 0));
      const wantW = w.slice();
      const wantErr = new Float64Array(rows * count);
      genericPrimitives.obsBlock!(wantW, wantErr, keep, rows, count, u, ldu);
      const gotW = w.slice();
      const gotErr = new Float64Array(rows * count);
      wasmPrimitives.obsBlock!(gotW, gotErr, keep, rows, count, u, ldu);
      expect(new Uint32Array(gotW.buffer), `W ${rows}×${count}`).toEqual(new Uint32Array(wantW.buffer));
      expect(new Uint32Array(gotErr.buffer), `Err ${rows}×${count}`).toEqual(new Uint32Array(wantErr.buffer));
      expect(gotW.some((v, i) => v !== w[i])).toBe(true);
    }
  });
});
