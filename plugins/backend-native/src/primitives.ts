/**
 * Host-side pruning primitives on OpenBLAS: Gram accumulation (XᵀX in float32 blocks of rows, summed in float64,
 * symmetrised), matmul, the float64 block product of SparseGPT's lazy update (dgemm), and the float64 factorisations
 * SparseGPT needs (H⁻¹ and the Cholesky factor of H⁻¹, by LAPACK's dpotrf/dpotri). The rest is the kernel's generic
 * implementation.
 */
import { type PruningPrimitives } from '@topiary/kernel';
import { accumulateGramInBlocks, genericPrimitives, notPositiveDefinite } from '@topiary/linalg';
import type { BlasAddon } from './addon.js';

/** Rows per float32 block of the Gram product; blocks are summed in float64. */
export const GRAM_BLOCK_ROWS = 1024;

export function nativePrimitives(blas: BlasAddon): PruningPrimitives {
  function accumulateGram(x: Float32Array, n: number, d: number, acc: Float64Array): void {
    const g = new Float32Array(d * d);
    accumulateGramInBlocks(x, n, d, acc, GRAM_BLOCK_ROWS, (block, rows) => {
      blas.sgemmStrided(true, false, d, d, rows, 1, block, 0, block, 0, g, 0);
      return g;
    });
  }
  function matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
    const c = new Float32Array(m * n);
    if (k > 0) blas.sgemmStrided(false, false, m, n, k, 1, a, 0, b, 0, c, 0);
    return c;
  }
  function factorInverse(a: Float64Array, n: number, upper: boolean): Float64Array {
    const out = Float64Array.from(a); // LAPACK works in place; the caller's matrix stays as it was
    const k = blas.choleskyInverse(out, n, upper);
    if (k !== 0) throw notPositiveDefinite(k - 1);
    return out;
  }
  return Object.freeze({
    ...genericPrimitives,
    accumulateGram,
    matmul,
    subtractProduct64: (m: number, n: number, k: number, a: Float64Array, lda: number, b: Float64Array, ldb: number, c: Float64Array, ldc: number) =>
      blas.subtractProduct64(m, n, k, a, lda, b, ldb, c, ldc),
    choleskyInverse: (a: Float64Array, n: number) => factorInverse(a, n, false),
    upperCholeskyOfInverse: (a: Float64Array, n: number) => factorInverse(a, n, true),
  });
}
