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

/** H = 2·Σxxᵀ/n from an accumulated Gram matrix (new array). */
export function hessianFromGram(gram: Float64Array, tokens: number): Float64Array {
  const h = new Float64Array(gram.length);
  const scale = 2 / tokens;
  for (let i = 0; i < gram.length; i++) h[i] = gram[i]! * scale;
  return h;
}

export function sparsegptPrune(weight: Float32Array, hessian: Float64Array, o: SparseGPTLayerOptions, p: PruningPrimitives): SparseGPTLayerResult {
  const { rows, cols } = o;
  if (weight.length !== rows * cols || hessian.length !== cols * cols) {
    throw new TopiaryError('E_INTERNAL', `sparsegpt: weight ${weight.length} / hessian ${hessian.length} do not match ${rows}×${cols}`, { where: 'sparsegpt' });
  }
  if (o.pattern && o.blocksize % o.pattern.m !== 0) {
    throw new TopiaryError('E_USAGE', `blocksize ${o.blocksize} must be a multiple of M = ${o.pattern.m}`, { where: '--blocksize' });
  }
  const W = Float64Array.from(weight);
  const H = Float64Array.from(hessian);
  let deadInputs = 0;
  for (let j = 0; j < cols; j++) {
    if (H[j * cols + j] === 0) {
      deadInputs++;
      H[j * cols + j] = 1;
      for (let r = 0; r < rows; r++) W[r * cols + j] = 0;
    }
  }
  let meanDiag = 0;
  for (let j = 0; j < cols; j++) meanDiag += H[j * cols + j]!;
  const damp = (o.dampening * meanDiag) / cols;
  for (let j = 0; j < cols; j++) H[j * cols + j]! += damp;
  const U = p.upperCholeskyOfInverse(H, cols);

  const keep = new Uint8Array(rows * cols).fill(1);
  for (let i1 = 0; i1 < cols; i1 += o.blocksize) {
    const i2 = Math.min(i1 + o.blocksize, cols);
    const count = i2 - i1;
    const W1 = new Float64Array(rows * count);
    for (let r = 0; r < rows; r++) W1.set(W.subarray(r * cols + i1, r * cols + i2), r * count);
    const Err1 = new Float64Array(rows * count);
    const u = (a: number, b: number): number => U[(i1 + a) * cols + i1 + b]!;

    let keep1: Uint8Array;
    if (!o.pattern) {
      const score = new Float32Array(rows * count);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < count; c++) {
          const w = W1[r * count + c]!;
          const d = u(c, c);
          score[r * count + c] = (w * w) / (d * d);
        }
      }
      keep1 = p.lowestMask(score, Math.floor(rows * count * o.sparsity));
    } else {
      keep1 = new Uint8Array(rows * count).fill(1);
    }

    for (let i = 0; i < count; i++) {
      if (o.pattern && i % o.pattern.m === 0) {
        const width = Math.min(o.pattern.m, count - i);
        const score = new Float32Array(rows * width);
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < width; c++) {
            const w = W1[r * count + i + c]!;
            const d = u(i + c, i + c);
            score[r * width + c] = (w * w) / (d * d);
          }
        }
        const groupKeep = nmKeepMask(p, score, rows, width, o.pattern.n, o.pattern.m);
        for (let r = 0; r < rows; r++) keep1.set(groupKeep.subarray(r * width, (r + 1) * width), r * count + i);
      }
      const d = u(i, i);
      for (let r = 0; r < rows; r++) {
        const at = r * count + i;
        if (keep1[at] === 1) continue; // q = w: no error to spread
        const err = W1[at]! / d;
        W1[at] = 0;
        Err1[at] = err;
        for (let c = i + 1; c < count; c++) W1[r * count + c]! -= err * u(i, c);
      }
    }

    for (let r = 0; r < rows; r++) {
      W.set(W1.subarray(r * count, (r + 1) * count), r * cols + i1);
      keep.set(keep1.subarray(r * count, (r + 1) * count), r * cols + i1);
    }
    // Lazy batch update: W[:, i2:] −= Err1 · U[i1:i2, i2:]
    if (i2 < cols) p.subtractProduct64(rows, cols - i2, count, Err1, count, U.subarray(i1 * cols + i2), cols, W.subarray(i2), cols);
  }
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) out[i] = keep[i] === 1 ? W[i]! : 0;
  return { weight: out, keep, deadInputs };
}
