/**
 * Group saliency from the gradients the training step already computed.
 *
 * Built-in `taylor-fisher` (default): the loss change from removing a whole group G (setting its weights to 0,
 * δ = −w) by a second-order Taylor expansion with the diagonal empirical Fisher as Hessian (H_ii ≈ g_i²):
 *
 *     ΔL_G ≈ −Σ_{i∈G} w_i g_i + ½ Σ_{i∈G} w_i² g_i²         score_G = |ΔL_G|
 *
 * (LLM-Pruner's vector-level Taylor plus its second-order term.) g is the step's mean mini-batch gradient, so
 * g² is a one-batch Fisher estimate; the accumulator smooths it over steps. `taylor` keeps only the first-order term.
 *
 * Any kernel `Saliency` (element scores) also works: its element scores are summed over each group's members.
 */
import * as tf from '@tensorflow/tfjs';
import type { ParameterGroup, Saliency } from '@topiary/kernel';

export interface GroupScorer {
  readonly name: string;
  readonly description: string;
  /** One score per group (higher = more important). */
  score(groups: readonly ParameterGroup[], weights: ReadonlyMap<string, tf.Tensor>, grads: ReadonlyMap<string, tf.Tensor>): Map<string, number>;
}

/** Sums of a row-major array along each axis: sums[0][r] = Σ_c x[r,c], sums[1][c] = Σ_r x[r,c]; 1-D: the array. */
export function sliceSums(x: Float32Array, shape: readonly number[]): Float64Array[] {
  if (shape.length === 1) return [Float64Array.from(x)];
  const [rows, cols] = shape as [number, number];
  const byRow = new Float64Array(rows);
  const byCol = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const base = r * cols;
    for (let c = 0; c < cols; c++) {
      const v = x[base + c]!;
      s += v;
      byCol[c] += v;
    }
    byRow[r] = s;
  }
  return [byRow, byCol];
}

/** Σ over each group's members of an element quantity, from per-parameter slice sums. */
export function groupSums(groups: readonly ParameterGroup[], sums: ReadonlyMap<string, Float64Array[]>): Map<string, number> {
  const out = new Map<string, number>();
  for (const g of groups) {
    let s = 0;
    for (const m of g.members) {
      const axisSums = sums.get(m.param)?.[m.axis];
      if (!axisSums) continue;
      for (const i of m.indices) s += axisSums[i]!;
    }
    out.set(g.id, s);
  }
  return out;
}

function paramsOf(groups: readonly ParameterGroup[]): Set<string> {
  const names = new Set<string>();
  for (const g of groups) for (const m of g.members) names.add(m.param);
  return names;
}

function taylorScorer(name: string, secondOrder: boolean): GroupScorer {
  return {
    name,
    description: secondOrder
      ? '|−Σw·g + ½Σw²g²| per group: Taylor first order plus the diagonal Fisher second-order term'
      : '|Σw·g| per group: first-order Taylor (vector level)',
    score(groups, weights, grads) {
      const first = new Map<string, Float64Array[]>();
      const second = new Map<string, Float64Array[]>();
      for (const p of paramsOf(groups)) {
        const w = weights.get(p);
        const g = grads.get(p);
        if (!w || !g) continue;
        const wg = tf.tidy(() => tf.mul(w, g));
        const a = wg.dataSync() as Float32Array;
        first.set(p, sliceSums(a, w.shape));
        if (secondOrder) {
          const b = new Float32Array(a.length);
          for (let i = 0; i < a.length; i++) b[i] = a[i]! * a[i]!;
          second.set(p, sliceSums(b, w.shape));
        }
        wg.dispose();
      }
      const s1 = groupSums(groups, first);
      const s2 = secondOrder ? groupSums(groups, second) : null;
      const out = new Map<string, number>();
      for (const [id, v] of s1) out.set(id, Math.abs(-v + (s2 ? 0.5 * s2.get(id)! : 0)));
      return out;
    },
  };
}

export const taylorFisherScorer: GroupScorer = taylorScorer('taylor-fisher', true);
export const taylorScorerFirstOrder: GroupScorer = taylorScorer('taylor', false);
export const builtinScorers: readonly GroupScorer[] = [taylorFisherScorer, taylorScorerFirstOrder];

/** Turn an element-level kernel Saliency into a group scorer (group score = Σ of its element scores). */
export function scorerFromSaliency(saliency: Saliency): GroupScorer {
  return {
    name: saliency.name,
    description: `${saliency.description} (summed over each group)`,
    score(groups, weights, grads) {
      const sums = new Map<string, Float64Array[]>();
      for (const p of paramsOf(groups)) {
        const w = weights.get(p);
        if (!w) continue;
        const weight = w.dataSync() as Float32Array;
        const grad = grads.get(p)?.dataSync() as Float32Array | undefined;
        const gradSquared = grad ? Float32Array.from(grad, (x) => x * x) : undefined;
        const rows = w.shape[0]!;
        const cols = w.shape.length > 1 ? w.shape[1]! : 1;
        const scores = saliency.score({ param: p, rows, cols, weight, grad, gradSquared });
        sums.set(p, sliceSums(scores, w.shape));
      }
      return groupSums(groups, sums);
    },
  };
}
