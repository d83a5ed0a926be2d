/** A tensor backend: the tfjs engine it activates plus the few heavy host-side primitives pruning needs. */

export interface BackendCapabilities {
  /** Where the math runs. */
  device: 'cpu' | 'gpu';
  /** Threads the engine really uses (not what it could use). */
  threads: number;
  simd: boolean;
  /** Whether the engine itself can hold float64 tensors (tfjs cannot: float64 math happens on the host). */
  float64: boolean;
  /** Short facts worth printing (e.g. "wasm threads unavailable under Node: 1 thread"). */
  notes: readonly string[];
}

/**
 * Whether a backend can run here. `detail` says how it will run when that is worth knowing (e.g. gpujs: WebGL on
 * which renderer, or its CPU fallback and why); `reason` and `fix` say why it cannot and what to do.
 */
export type BackendAvailability = { ok: true; detail?: string } | { ok: false; reason: string; fix: string };

/**
 * Host-side primitives on plain typed arrays, row-major. A generic implementation lives once in the kernel
 * (`genericPrimitives`); a backend overrides only the ones it accelerates.
 */
export interface PruningPrimitives {
  /** `acc += Xᵀ X` for X of shape [n, d]; acc is d×d float64, row-major. */
  accumulateGram(x: Float32Array, n: number, d: number, acc: Float64Array): void;
  /** `acc[j] += Σ_i X_ij²` for X of shape [n, d] (the squared input-feature norms Wanda needs). */
  accumulateColumnSquares(x: Float32Array, n: number, d: number, acc: Float64Array): void;
  /** L2 norm of each row of W [rows, cols]. */
  rowNorms(w: Float32Array, rows: number, cols: number): Float32Array;
  /** C = A·B for A [m, k], B [k, n]. */
  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array;
  /**
   * C −= A·B on float64 row-major blocks: A [m, k], B [k, n], C [m, n], each given as a view that starts at the
   * block, with its row stride (lda, ldb, ldc ≥ the block's width). SparseGPT's lazy batch update.
   */
  subtractProduct64(m: number, n: number, k: number, a: Float64Array, lda: number, b: Float64Array, ldb: number, c: Float64Array, ldc: number): void;
  /**
   * Optional. SparseGPT's OBS steps on one block whose mask is fixed (its rows are then independent): for each row r
   * and each column j in ascending order with keep[r·count + j] = 0: e = W[r, j] / U[j, j]; W[r, j] = 0;
   * Err[r, j] = e; W[r, c] −= e·U[j, c] for j < c < count. W and Err are [rows, count] row-major (Err's other
   * entries untouched); U is the count×count block of the factor, a view starting at the block's (0, 0) with row
   * stride ldu. Absent: the generic loop (`genericPrimitives.obsBlock` of @topiary/linalg) runs.
   */
  obsBlock?(w: Float64Array, err: Float64Array, keep: Uint8Array, rows: number, count: number, u: Float64Array, ldu: number): void;
  /** Lower-triangular L with A = L Lᵀ for a symmetric positive definite n×n A; throws E_NUMERIC otherwise. */
  cholesky(a: Float64Array, n: number): Float64Array;
  /** A⁻¹ for symmetric positive definite A, through its Cholesky factor. */
  choleskyInverse(a: Float64Array, n: number): Float64Array;
  /** Upper-triangular U with A⁻¹ = Uᵀ U (what SparseGPT walks column by column). */
  upperCholeskyOfInverse(a: Float64Array, n: number): Float64Array;
  /** Keep-mask (1 = keep) that zeroes the `count` lowest scores of the whole array; ties broken by index. */
  lowestMask(scores: Float32Array, count: number): Uint8Array;
  /** Keep-mask that zeroes the same fraction of lowest scores within every row of [rows, cols]. */
  rowwiseMask(scores: Float32Array, rows: number, cols: number, sparsity: number): Uint8Array;
  /** Keep-mask that zeroes the `n` lowest of every `m` consecutive columns in each row (N:M sparsity). */
  nmMask(scores: Float32Array, rows: number, cols: number, n: number, m: number): Uint8Array;
}

export interface TensorBackend {
  /** What recipes and `--backend` write: `wasm`, `cpu`, `node`, `node-gpu`, `gpujs`. */
  readonly name: string;
  /** The tfjs engine backend it activates (`wasm`, `cpu`, `tensorflow`, ...). */
  readonly engine: string;
  /** Used by `backend: auto`: among the available backends, the highest priority wins. */
  readonly priority: number;
  /** Whether it can load here, and if not, exactly what is missing and how to fix it. Never throws. */
  available(): Promise<BackendAvailability>;
  /** Load and activate the engine. Throws a TopiaryError(E_BACKEND) naming what failed. */
  init(): Promise<void>;
  capabilities(): BackendCapabilities;
  readonly primitives: PruningPrimitives;
}
