/**
 * Which weights to drop, given one score per weight: per output row, per layer, or N:M. The selection itself is
 * the kernel's (`PruningPrimitives`); this file only decides which primitive applies and handles the one case the
 * kernel leaves out — a trailing partial group when the column count is not a multiple of M.
 */
import type { PruningPrimitives } from '@topiary/kernel';

export type NMPattern = {
  n: number;
  m: number;
};

/** How scores are compared: within each output row (Wanda's default) or across the whole layer. */
export type ComparisonScope = 'row' | 'layer';

export interface MaskRule {
  /** Fraction of weights to drop (ignored when a pattern is given: N:M fixes it at N/M). */
  sparsity: number;
  pattern?: NMPattern;
  scope: ComparisonScope;
}

/**
 * How many of a trailing group of `r < m` columns an N:M pattern drops: floor(n·r/m), so the layer keeps the
 * pattern's ratio as closely as whole weights allow (the papers' code would drop min(n, r) — all four of the last
 * four columns of a 172-wide layer under 4:8).
 */
export function nmPruneCount(n: number, m: number, r: number): number {
  return r === m ? n : Math.floor((n * r) / m);
}

/** Copy columns [c0, c0 + width) of a row-major [rows, cols] array. */
function sliceColumns(a: Float32Array, rows: number, cols: number, c0: number, width: number): Float32Array {
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) out.set(a.subarray(r * cols + c0, r * cols + c0 + width), r * width);
  return out;
}

/**
 * N:M keep-mask: in every row, the `n` lowest of each `m` consecutive columns are dropped. Columns past the last
 * whole group form one partial group that drops `nmPruneCount(n, m, r)`.
 */
export function nmKeepMask(p: PruningPrimitives, scores: Float32Array, rows: number, cols: number, n: number, m: number): Uint8Array {
  const tail = cols % m;
  if (tail === 0) return p.nmMask(scores, rows, cols, n, m);
  const whole = cols - tail;
  const keep = new Uint8Array(rows * cols);
  const head = whole > 0 ? p.nmMask(sliceColumns(scores, rows, cols, 0, whole), rows, whole, n, m) : new Uint8Array(0);
  const dropTail = nmPruneCount(n, m, tail);
  const rest = p.rowwiseMask(sliceColumns(scores, rows, cols, whole, tail), rows, tail, (dropTail + 0.5) / tail); // +0.5: floor(tail·s) must be exactly dropTail
  for (let r = 0; r < rows; r++) {
    keep.set(head.subarray(r * whole, (r + 1) * whole), r * cols);
    keep.set(rest.subarray(r * tail, (r + 1) * tail), r * cols + whole);
  }
  return keep;
}

/** The keep-mask (1 keep, 0 drop) a rule selects from scores of a [rows, cols] weight. */
export function selectKeepMask(p: PruningPrimitives, scores: Float32Array, rows: number, cols: number, rule: MaskRule): Uint8Array {
  if (rule.pattern) return nmKeepMask(p, scores, rows, cols, rule.pattern.n, rule.pattern.m);
  if (rule.scope === 'layer') return p.lowestMask(scores, Math.floor(rows * cols * rule.sparsity));
  return p.rowwiseMask(scores, rows, cols, rule.sparsity);
}

/** Whether every row's every M-column group keeps exactly M − N (partial tail: r − floor(n·r/m)). */
export function isExactNM(keep: Uint8Array, rows: number, cols: number, n: number, m: number): boolean {
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < cols; g += m) {
      const width = Math.min(m, cols - g);
      let kept = 0;
      for (let j = 0; j < width; j++) kept += keep[r * cols + g + j]!;
      if (kept !== width - nmPruneCount(n, m, width)) return false;
    }
  }
  return true;
}

/** Weight ⊙ mask, in place. */
export function applyKeepMask(weight: Float32Array, keep: Uint8Array): Float32Array {
  for (let i = 0; i < weight.length; i++) if (keep[i] === 0) weight[i] = 0;
  return weight;
}
