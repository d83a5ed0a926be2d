/**
 * SparseGPT's per-layer reconstruction (Frantar & Alistarh, 2023) on plain arrays, float64 throughout.
 *
 * Given W [rows, cols] and H = 2XXᵀ/n over calibration inputs:
 *  - dead inputs (H_jj = 0) get their weight column zeroed and H_jj = 1;
 *  - H += dampening · mean(diag H) · I; U = upper Cholesky factor of H⁻¹ (H⁻¹ = UᵀU);
 *  - columns left to right in blocks: at each block start the unstructured mask drops the floor(rows·cols·s)
 *    lowest w²/U_jj² of the block (all rows); with N:M, every M columns each row drops its N lowest (scored on
 *    the weights as updated so far); for each column j, err = (w_j − q_j)/U_jj is spread over the block's later
 *    columns with U_j,: ; after the block, all later columns get Err·U[block, later] in one product (lazy batch).
 */
import { TopiaryError, type PruningPrimitives } from '@topiary/kernel';
import { dropAndSpread, genericPrimitives } from '@topiary/linalg';
import { nmKeepMask, type NMPattern } from '@topiary/prune-core';

export interface SparseGPTLayerOptions {
  rows: number;
  cols: number;
  sparsity: number;
  pattern?: NMPattern;
  /** Columns per block (128 in the paper). */
  blocksize: number;
  /** Fraction of mean(diag H) added to the diagonal (0.01 in the paper). */
  dampening: number;
}

export interface SparseGPTLayerResult {
  weight: Float32Array;
  keep: Uint8Array;
  /** Inputs whose Hessian diagonal was zero (their weights were zeroed). */
  deadInputs: number;
}

/** H = 2·Σxxᵀ/n from an accumulated Gram matrix (into `into` when given, else a new array). */
export function hessianFromGram(gram: Float64Array, tokens: number, into: Float64Array = new Float64Array(gram.length)): Float64Array {
  const scale = 2 / tokens;
  for (let i = 0; i < gram.length; i++) into[i] = gram[i]! * scale;
  return into;
}

/**
 * Working arrays reused from one layer to the next. Why: a fresh multi-megabyte typed array costs more than the
 * arithmetic done in it on the machines measured (its pages are faulted in one by one: ~120 ms for the 15 MB of a
 * 1368² float64 matrix, against ~1 ms to refill a resident one), and a 12.8M-parameter prune asked for hundreds of
 * megabytes of them. One set per prune run (the method owns it), grown to the largest layer.
 */
export class SparseGPTBuffers {
  private readonly f64 = new Map<string, Float64Array>();
  private readonly f32 = new Map<string, Float32Array>();

  /** `length` float64 values named `name` (contents left from the last use). */
  float64(name: string, length: number): Float64Array {
    let b = this.f64.get(name);
    if (!b || b.length < length) this.f64.set(name, (b = new Float64Array(length)));
    return b.subarray(0, length);
  }

  float32(name: string, length: number): Float32Array {
    let b = this.f32.get(name);
    if (!b || b.length < length) this.f32.set(name, (b = new Float32Array(length)));
    return b.subarray(0, length);
  }
}

/**
 * What SparseGPT takes from one layer's Hessian: the upper Cholesky factor of the dampened inverse and the dead
 * inputs. It depends on H and the dampening only, so layers fed the same input (q/k/v, gate/up) share one —
 * the factorisation is the costly part (O(cols³)) and is done once per distinct input.
 */
export interface PreparedHessian {
  cols: number;
  /** Upper U with (H + λI)⁻¹ = UᵀU, row-major [cols, cols]. */
  U: Float64Array;
  /** 1 where H_jj = 0: that input never fired, its weight column is zeroed. */
  dead: Uint8Array;
  deadInputs: number;
}

export function prepareHessian(hessian: Float64Array, cols: number, dampening: number, p: PruningPrimitives): PreparedHessian {
  return prepareHessianInPlace(Float64Array.from(hessian), cols, dampening, p);
}

/** `prepareHessian` overwriting `H` (the caller's scratch copy: it is dampened in place, then only read). */
export function prepareHessianInPlace(H: Float64Array, cols: number, dampening: number, p: PruningPrimitives): PreparedHessian {
  if (H.length !== cols * cols) {
    throw new TopiaryError('E_INTERNAL', `sparsegpt: hessian ${H.length} does not match ${cols}×${cols}`, { where: 'sparsegpt' });
  }
  const dead = new Uint8Array(cols);
  let deadInputs = 0;
  for (let j = 0; j < cols; j++) {
    if (H[j * cols + j] === 0) {
      deadInputs++;
      dead[j] = 1;
      H[j * cols + j] = 1;
    }
  }
  let meanDiag = 0;
  for (let j = 0; j < cols; j++) meanDiag += H[j * cols + j]!;
  const damp = (dampening * meanDiag) / cols;
  for (let j = 0; j < cols; j++) H[j * cols + j]! += damp;
  return { cols, U: p.upperCholeskyOfInverse(H, cols), dead, deadInputs };
}

export function sparsegptPrune(weight: Float32Array, hessian: Float64Array, o: SparseGPTLayerOptions, p: PruningPrimitives): SparseGPTLayerResult {
  return sparsegptPrunePrepared(weight, prepareHessian(hessian, o.cols, o.dampening, p), o, p);
}

/**
 * The reconstruction of one layer from its prepared Hessian. With `buffers`, the working arrays come from there and
 * the result is written into `weight` itself (the caller hands over its copy); without, `weight` is left as it is.
 */
export function sparsegptPrunePrepared(
  weight: Float32Array,
  prepared: PreparedHessian,
  o: SparseGPTLayerOptions,
  p: PruningPrimitives,
  buffers?: SparseGPTBuffers,
): SparseGPTLayerResult {
  const { rows, cols } = o;
  if (weight.length !== rows * cols || prepared.cols !== cols) {
    throw new TopiaryError('E_INTERNAL', `sparsegpt: weight ${weight.length} / hessian ${prepared.cols}² do not match ${rows}×${cols}`, { where: 'sparsegpt' });
  }
  if (o.pattern && o.blocksize % o.pattern.m !== 0) {
    throw new TopiaryError('E_USAGE', `blocksize ${o.blocksize} must be a multiple of M = ${o.pattern.m}`, { where: '--blocksize' });
  }
  const { U, dead } = prepared;
  const W = buffers ? buffers.float64('w', rows * cols) : new Float64Array(rows * cols);
  W.set(weight);
  if (prepared.deadInputs > 0) {
    for (let j = 0; j < cols; j++) if (dead[j] === 1) for (let r = 0; r < rows; r++) W[r * cols + j] = 0;
  }

  const keep = new Uint8Array(rows * cols).fill(1);
  // Block buffers, allocated once per layer: a fresh half-megabyte typed array per block cost more than the block's
  // OBS steps (the allocator hands large arrays out as new zeroed pages).
  const blockSize = Math.min(o.blocksize, cols);
  const W1all = buffers ? buffers.float64('block', rows * blockSize) : new Float64Array(rows * blockSize);
  const Err1all = buffers ? buffers.float64('error', rows * blockSize) : new Float64Array(rows * blockSize);
  const scoreAll = buffers ? buffers.float32('score', rows * blockSize) : new Float32Array(rows * blockSize);
  for (let i1 = 0; i1 < cols; i1 += o.blocksize) {
    const i2 = Math.min(i1 + o.blocksize, cols);
    const count = i2 - i1;
    // the block's columns of W, contiguous per row: the OBS steps and the lazy update work on this copy
    const W1 = W1all.subarray(0, rows * count);
    for (let r = 0; r < rows; r++) W1.set(W.subarray(r * cols + i1, r * cols + i2), r * count);
    const Err1 = Err1all.subarray(0, rows * count).fill(0);
    const uAt = (j: number): number => (i1 + j) * cols + i1; // U's index of (i1 + j, i1)

    if (!o.pattern) {
      const score = scoreAll.subarray(0, rows * count);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < count; c++) {
          const w = W1[r * count + c]!;
          const d = U[uAt(c) + c]!;
          score[r * count + c] = (w * w) / (d * d);
        }
      }
      const keep1 = p.lowestMask(score, Math.floor(rows * count * o.sparsity));
      // The mask is fixed for the whole block, so rows are independent (obsBlock: row by row, each row's segment in
      // L1 while its columns are stepped through in order — the same operations per entry as column by column).
      (p.obsBlock ?? genericPrimitives.obsBlock!)(W1, Err1, keep1, rows, count, U.subarray(uAt(0)), cols);
      for (let r = 0; r < rows; r++) keep.set(keep1.subarray(r * count, (r + 1) * count), r * cols + i1);
    } else {
      // N:M: each group's mask is scored on the weights as updated by the columns before it, so column by column.
      const keep1 = new Uint8Array(rows * count).fill(1);
      for (let i = 0; i < count; i++) {
        if (i % o.pattern.m === 0) {
          const width = Math.min(o.pattern.m, count - i);
          const score = new Float32Array(rows * width);
          for (let r = 0; r < rows; r++) {
            for (let c = 0; c < width; c++) {
              const w = W1[r * count + i + c]!;
              const d = U[uAt(i + c) + i + c]!;
              score[r * width + c] = (w * w) / (d * d);
            }
          }
          const groupKeep = nmKeepMask(p, score, rows, width, o.pattern.n, o.pattern.m);
          for (let r = 0; r < rows; r++) keep1.set(groupKeep.subarray(r * width, (r + 1) * width), r * count + i);
        }
        for (let r = 0; r < rows; r++) {
          const at = r * count + i;
          if (keep1[at] === 0) Err1[at] = dropAndSpread(W1, at, i, count, U, uAt(i)); // kept: q = w, no error to spread
        }
      }
      for (let r = 0; r < rows; r++) keep.set(keep1.subarray(r * count, (r + 1) * count), r * cols + i1);
    }

    for (let r = 0; r < rows; r++) W.set(W1.subarray(r * count, (r + 1) * count), r * cols + i1);
    // Lazy batch update: W[:, i2:] −= Err1 · U[i1:i2, i2:]
    if (i2 < cols) p.subtractProduct64(rows, cols - i2, count, Err1, count, U.subarray(i1 * cols + i2), cols, W.subarray(i2), cols);
  }
  const out = buffers ? weight : new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) out[i] = keep[i] === 1 ? W[i]! : 0;
  return { weight: out, keep, deadInputs: prepared.deadInputs };
}
