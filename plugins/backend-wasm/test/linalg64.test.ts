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
