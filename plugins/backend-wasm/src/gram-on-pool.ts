/**
 * The pruning Gram `acc += XᵀX` straight on the installed GEMM pool, into one reused float32 product buffer.
 *
 * Why not through tfjs (`matMul(x, x, true, false)` then `dataSync`): each 1024-row block then made a tensor of X
 * on the tfjs heap and, worse, a fresh d×d Float32Array for the result — 7.5 MB at d = 1368, whose pages cost
 * ~60 ms to fault in on the machines measured (more than the product), 16 times in a 12.8M-parameter SparseGPT
 * prune. The pool computes the very same product (same ProductSpec as the BatchMatMul kernel builds for that call,
 * so the same plan and the same numbers) and writes C into a caller's array, so the buffer can be kept.
 */
import * as tf from '@tensorflow/tfjs-core';
import { accumulateGramInBlocks } from '@topiary/linalg';
import { TILE } from './gemm/kernels.js';
import { outputFloats, type ProductSpec } from './gemm/plan.js';
import { MAX_GEMM_BYTES, sharedGemmPool } from './kernels/batch-matmul.js';

/**
 * The d×d product buffer, kept between calls (and between layers of the same width). Module state, but only a
 * scratch area: every call overwrites what it reads, so no result depends on an earlier call.
 */
let product: Float32Array | undefined;

/**
 * acc += XᵀX in float32 blocks of `blockRows` rows summed in float64 (accumulateGramInBlocks), on the GEMM pool.
 * Returns false — and does nothing — where the pool is not the active product (another backend active, the stock
 * kernel registered, or operands too large for the shared memory): the caller then takes its tfjs path.
 */
export function accumulateGramOnPool(x: Float32Array, n: number, d: number, acc: Float64Array, blockRows: number): boolean {
  if (tf.getBackend() !== 'wasm') return false;
  const rows = Math.min(blockRows, n);
  const spec = (k: number): ProductSpec => ({ batch: 1, m: d, n: d, k, transposeA: true, transposeB: false, aBatched: true, bBatched: true });
  if (4 * (2 * rows * d + outputFloats(spec(rows), TILE)) > MAX_GEMM_BYTES) return false;
  const pool = sharedGemmPool();
  if (!pool) return false;
  if (!product || product.length < d * d) product = new Float32Array(d * d);
  const out = product.subarray(0, d * d);
  accumulateGramInBlocks(x, n, d, acc, blockRows, (block, k) => {
    pool.matmul(spec(k), block, block, out);
    return out;
  });
  return true;
}
