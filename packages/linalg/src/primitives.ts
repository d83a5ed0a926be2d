/**
 * The generic pruning primitives, once, on plain typed arrays. Backends override only what they accelerate
 * (`{ ...genericPrimitives, accumulateGram: fasterGram }`). Factorisations run in float64: tfjs has no
 * Cholesky/inverse and float32 is not enough for ill-conditioned Hessians.
 */
import { TopiaryError, type PruningPrimitives } from '@topiary/kernel';
import { cholesky, choleskyInPlace, invertLower, invertLowerInPlace, jsFactorKernels, type FactorKernels } from './factor.js';
import { ascendingOrder, dropLowest, INDEX_RANGE } from './select.js';

/**
 * acc += Σ_r x_rᵀ x_r over the rows of x [n, d]: row-by-row rank-1 updates on the upper triangle, mirrored once at
 * the end (half the flops of a full product). With `lowerTriangular`, row r is known to be zero past column r and
 * its update stops there.
 */
function addRowGram(x: Float32Array | Float64Array, n: number, d: number, acc: Float64Array, lowerTriangular = false): void {
  for (let r = 0; r < n; r++) {
    const base = r * d;
    const end = lowerTriangular ? Math.min(d, r + 1) : d;
    for (let i = 0; i < end; i++) {
      const xi = x[base + i]!;
      if (xi === 0) continue;
      const row = i * d;
      for (let j = i; j < end; j++) acc[row + j]! += xi * x[base + j]!;
    }
  }
  for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) acc[i * d + j] = acc[j * d + i]!;
}

function accumulateGram(x: Float32Array, n: number, d: number, acc: Float64Array): void {
  addRowGram(x, n, d, acc);
}

function accumulateColumnSquares(x: Float32Array, n: number, d: number, acc: Float64Array): void {
  let r = 0;
  // Four rows per pass over acc: one load and store of acc[j] per four terms (2× faster), the terms still added
  // one row after the other, so the sums are bit-identical to the plain loop's.
  for (; r + 4 <= n; r += 4) {
    const b0 = r * d;
    const b1 = b0 + d;
    const b2 = b1 + d;
    const b3 = b2 + d;
    for (let j = 0; j < d; j++) {
      const v0 = x[b0 + j]!;
      const v1 = x[b1 + j]!;
      const v2 = x[b2 + j]!;
      const v3 = x[b3 + j]!;
      acc[j] = acc[j]! + v0 * v0 + v1 * v1 + v2 * v2 + v3 * v3;
    }
  }
  for (; r < n; r++) {
    const base = r * d;
    for (let j = 0; j < d; j++) {
      const v = x[base + j]!;
      acc[j]! += v * v;
    }
  }
}

function rowNorms(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += w[i * cols + j]! ** 2;
    out[i] = Math.sqrt(s);
  }
  return out;
}

function matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
  const c = new Float32Array(m * n);
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p]!;
      if (av === 0) continue;
      const bo = p * n;
      for (let j = 0; j < n; j++) row[j]! += av * b[bo + j]!;
    }
    c.set(row, i * n);
  }
  return c;
}

/** Columns of C per pass of `subtractProduct64`: a tile of B (k × 256 float64, k ≤ 128 in SparseGPT) stays in L2. */
const PRODUCT_TILE = 256;

/**
 * C −= A·B (float64, row-major with leading dimensions). SparseGPT's lazy batch update, where A is the error block:
 * about half its entries are zero (kept weights), so each row of A is first reduced to its nonzero terms, which are
 * then applied four at a time (one load and store of C per four terms), over column tiles of C and B. Every entry of
 * C still receives its nonzero terms one by one in ascending p — the same result as the plain triple loop that skips
 * zeros, bit for bit.
 */
function subtractProduct64(m: number, n: number, k: number, a: Float64Array, lda: number, b: Float64Array, ldb: number, c: Float64Array, ldc: number): void {
  const terms = new Int32Array(m * k); // per row of A: the p of its nonzero entries, ascending
  const counts = new Int32Array(m);
  for (let i = 0; i < m; i++) {
    let t = 0;
    for (let p = 0; p < k; p++) if (a[i * lda + p] !== 0) terms[i * k + t++] = p;
    counts[i] = t;
  }
  for (let j0 = 0; j0 < n; j0 += PRODUCT_TILE) {
    const j1 = Math.min(j0 + PRODUCT_TILE, n);
    for (let i = 0; i < m; i++) {
      const ci = i * ldc;
      const ai = i * lda;
      const ti = i * k;
      const t = counts[i]!;
      let q = 0;
      for (; q + 3 < t; q += 4) {
        const p0 = terms[ti + q]!, p1 = terms[ti + q + 1]!, p2 = terms[ti + q + 2]!, p3 = terms[ti + q + 3]!;
        const a0 = a[ai + p0]!, a1 = a[ai + p1]!, a2 = a[ai + p2]!, a3 = a[ai + p3]!;
        const b0 = p0 * ldb, b1 = p1 * ldb, b2 = p2 * ldb, b3 = p3 * ldb;
        for (let j = j0; j < j1; j++) c[ci + j] = c[ci + j]! - a0 * b[b0 + j]! - a1 * b[b1 + j]! - a2 * b[b2 + j]! - a3 * b[b3 + j]!;
      }
      for (; q < t; q++) {
        const p = terms[ti + q]!;
        const av = a[ai + p]!;
        const bp = p * ldb;
        for (let j = j0; j < j1; j++) c[ci + j]! -= av * b[bp + j]!;
      }
    }
  }
}

function choleskyInverse(a: Float64Array, n: number): Float64Array {
  // A = L Lᵀ  ⇒  A⁻¹ = L⁻ᵀ L⁻¹ = Σ_k (row k of L⁻¹)ᵀ (row k of L⁻¹): the Gram matrix of L⁻¹'s rows.
  const out = new Float64Array(n * n);
  addRowGram(invertLower(cholesky(a, n), n), n, n, out, true);
  return out;
}

function upperCholeskyOfInverse(a: Float64Array, n: number): Float64Array {
  return upperCholeskyOfInverseIn(a, n, new Float64Array(n * n), jsFactorKernels);
}

/**
 * `upperCholeskyOfInverse` worked out in, and returned as, `work` (n×n float64: a fresh array, or a view of a
 * backend's own memory that its `kernels` reach; `packed`, n × FACTOR_PANEL scratch, likewise).
 *
 * Want U upper with A⁻¹ = Uᵀ U, without forming A⁻¹: with M = chol(J A J) lower (J the reversal permutation),
 * A = J M Mᵀ J, so A⁻¹ = (J M⁻ᵀ J)(J M⁻¹ J) and U = J M⁻¹ J (upper, positive diagonal: the Cholesky factor, by
 * uniqueness). One factorisation and one triangular inverse instead of two factorisations, an inverse and a
 * product. J a J moves entry (i, j) to (n−1−i, n−1−j), i.e. flat index k to n²−1−k: the row-major array reversed
 * end to end. All of it in one n×n array (fresh large arrays are slow to fault in here: see choleskyInPlace).
 */
export function upperCholeskyOfInverseIn(a: Float64Array, n: number, work: Float64Array, kernels: FactorKernels, packed?: Float64Array): Float64Array {
  work.set(a);
  work.reverse();
  try {
    choleskyInPlace(work, n, kernels, packed);
  } catch (err) {
    // Name the failing pivot as every backend does, in A's own order: factorise A itself (it fails too).
    cholesky(a, n);
    throw err;
  }
  return invertLowerInPlace(work, n, kernels).reverse();
}

function lowestMask(scores: Float32Array, count: number): Uint8Array {
  const keep = new Uint8Array(scores.length).fill(1);
  if (scores.length > INDEX_RANGE) {
    const order = ascendingOrder(scores);
    for (let i = 0; i < Math.min(count, scores.length); i++) keep[order[i]!] = 0;
    return keep;
  }
  dropLowest(scores, 0, scores.length, count, keep, 0, new Float64Array(scores.length), new Float64Array(scores.length));
  return keep;
}

function rowwiseMask(scores: Float32Array, rows: number, cols: number, sparsity: number): Uint8Array {
  const keep = new Uint8Array(rows * cols).fill(1);
  const prune = Math.floor(cols * sparsity);
  if (cols > INDEX_RANGE) {
    for (let r = 0; r < rows; r++) {
      const order = ascendingOrder(scores, r * cols, cols);
      for (let i = 0; i < prune; i++) keep[r * cols + order[i]!] = 0;
    }
    return keep;
  }
  const keys = new Float64Array(cols);
  const scratch = new Float64Array(cols);
  for (let r = 0; r < rows; r++) dropLowest(scores, r * cols, cols, prune, keep, r * cols, keys, scratch);
  return keep;
}

function nmMask(scores: Float32Array, rows: number, cols: number, n: number, m: number): Uint8Array {
  if (cols % m !== 0) {
    throw new TopiaryError('E_USAGE', `N:M pattern ${n}:${m} needs a column count divisible by ${m}, got ${cols}`, { where: '--pattern' });
  }
  const keep = new Uint8Array(rows * cols).fill(1);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < cols; g += m) {
      const order = ascendingOrder(scores, r * cols + g, m);
      for (let i = 0; i < n; i++) keep[r * cols + g + order[i]!] = 0;
    }
  }
  return keep;
}

/**
 * `acc += XᵀX` for backends whose fast product is float32: X is taken `blockRows` rows at a time, `blockGram`
 * returns that block's d×d Gram in float32, and the blocks are summed in float64 here. The block is symmetrised
 * while adding, since SIMD/BLAS accumulation order can make G_ij and G_ji differ in the last bit.
 */
export function accumulateGramInBlocks(
  x: Float32Array,
  n: number,
  d: number,
  acc: Float64Array,
  blockRows: number,
  blockGram: (block: Float32Array, rows: number) => Float32Array,
): void {
  for (let start = 0; start < n; start += blockRows) {
    const rows = Math.min(blockRows, n - start);
    const g = blockGram(x.subarray(start * d, (start + rows) * d), rows);
    for (let i = 0; i < d; i++) {
      acc[i * d + i]! += g[i * d + i]!;
      for (let j = i + 1; j < d; j++) {
        const v = (g[i * d + j]! + g[j * d + i]!) / 2;
        acc[i * d + j]! += v;
        acc[j * d + i]! += v;
      }
    }
  }
}

/**
 * SparseGPT's OBS step for one dropped weight (`at` = its index in W, in column j of a row segment of `count`
 * values; `urow` = U's index of (j, 0) of the block): e = W/U_jj, the weight zeroed, e spread over the row's later
 * columns with row j of U. Returns e.
 */
export function dropAndSpread(W: Float64Array, at: number, j: number, count: number, U: Float64Array, urow: number): number {
  const err = W[at]! / U[urow + j]!;
  W[at] = 0;
  const base = at - j;
  for (let c = j + 1; c < count; c++) W[base + c]! -= err * U[urow + c]!;
  return err;
}

/** PruningPrimitives.obsBlock: row by row (the mask is fixed, rows are independent), each row's segment in L1. */
function obsBlock(w: Float64Array, err: Float64Array, keep: Uint8Array, rows: number, count: number, u: Float64Array, ldu: number): void {
  for (let r = 0; r < rows; r++) {
    const base = r * count;
    for (let j = 0; j < count; j++) if (keep[base + j] === 0) err[base + j] = dropAndSpread(w, base + j, j, count, u, j * ldu);
  }
}

export const genericPrimitives: PruningPrimitives = Object.freeze({
  obsBlock,
  accumulateGram,
  accumulateColumnSquares,
  rowNorms,
  matmul,
  subtractProduct64,
  cholesky,
  choleskyInverse,
  upperCholeskyOfInverse,
  lowestMask,
  rowwiseMask,
  nmMask,
});
