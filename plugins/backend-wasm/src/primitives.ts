/**
 * The pruning primitives the wasm engine accelerates: Gram accumulation `XᵀX` and matmul run as the engine's
 * `BatchMatMul` (Topiary's threaded GEMM, or XNNPACK with the stock kernel; ~20× or more the generic loops).
 * SparseGPT's float64 algebra — the lazy batch update (`subtractProduct64`), the factorisation
 * (`upperCholeskyOfInverse`) and the OBS steps (`obsBlock`) — runs as generated float64 SIMD kernels (linalg64.ts),
 * bit-identical to the generic loops. Everything else (masks, `cholesky`, `choleskyInverse`) is the generic
 * implementation. When the wasm engine is not the active tfjs backend, the Gram and matmul fall back to the generic
 * versions, so the primitives never depend on global state for correctness.
 */
import * as tf from '@tensorflow/tfjs-core';
import { type PruningPrimitives } from '@topiary/kernel';
import { accumulateGramInBlocks, genericPrimitives } from '@topiary/linalg';
import { accumulateGramOnPool } from './gram-on-pool.js';
import { obsBlock, subtractProduct64, upperCholeskyOfInverse } from './linalg64.js';

/** Rows per product: each block's XᵀX is float32, the blocks are summed in float64 on the host. */
export const GRAM_BLOCK_ROWS = 1024;

function wasmActive(): boolean {
  return tf.getBackend() === 'wasm';
}

/**
 * The values of the tensor `build` makes, every intermediate freed. Not `tf.tidy(() => t.dataSync())`: tidy walks
 * whatever its callback returns looking for tensors, and walks a typed array element by element (a Set insert per
 * value) — 7 of the 22 s of a SparseGPT run at 3.3M parameters went there.
 */
function valuesOf(build: () => tf.Tensor): Float32Array {
  const t = tf.tidy(build);
  try {
    return t.dataSync() as Float32Array;
  } finally {
    t.dispose();
  }
}

function accumulateGram(x: Float32Array, n: number, d: number, acc: Float64Array): void {
  if (!wasmActive()) return genericPrimitives.accumulateGram(x, n, d, acc);
  if (accumulateGramOnPool(x, n, d, acc, GRAM_BLOCK_ROWS)) return; // gram-on-pool.ts: no tensors, a reused buffer
  // The tensor path below may grow tfjs's heap, which detaches a view of it (a capture hook's values): a copy first.
  const values = x.slice(0, n * d);
  accumulateGramInBlocks(values, n, d, acc, GRAM_BLOCK_ROWS, (block, rows) =>
    valuesOf(() => {
      const xb = tf.tensor2d(block, [rows, d]);
      return tf.matMul(xb, xb, true, false);
    }),
  );
}

function matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  if (!wasmActive()) return genericPrimitives.matmul(a, b, m, k, n);
  return valuesOf(() => tf.matMul(tf.tensor2d(a, [m, k]), tf.tensor2d(b, [k, n])));
}

export const wasmPrimitives: PruningPrimitives = Object.freeze({
  ...genericPrimitives,
  accumulateGram,
  matmul,
  subtractProduct64,
  upperCholeskyOfInverse,
  obsBlock,
});
