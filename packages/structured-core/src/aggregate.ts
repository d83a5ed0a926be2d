/**
 * Group importance: from per-element saliency scores to one number per coupled group.
 *
 * Two stages, as LLM-Pruner describes them:
 *  1. member importance — a group member is one slice `{param, axis, indices}` of one parameter (the rows of a head
 *     in q_proj, the column of an FFN channel in down_proj, ...). Element-level criteria (`|w·g|`, the second-order
 *     variant) sum their non-negative element scores over the slice. Vector-level criteria (`taylor-vector`) score
 *     each element by the signed product `w·g` and the member importance is `|Σ_slice w·g|`: the first-order loss
 *     change when the whole slice is zeroed at once.
 *  2. group aggregation — the member importances are combined by `sum` (default), `mean`, `max`, `prod` or `last`
 *     (only the last member, i.e. the projection the group writes through: o_proj for heads, down_proj for FFN
 *     channels, in the member order `CausalLM.groups()` lists).
 *
 * A third, `group` level (EfficientLLM's saliency during training) takes |Σ| over every member of the group at once.
 *
 * This file is the one place that logic lives; pruners and trainers call `groupImportance`.
 */
import { TopiaryError, type GroupAggregation, type GroupMember, type ParameterGroup, type Saliency, type SaliencyLevel } from '@topiary/kernel';

export const GROUP_AGGREGATIONS: readonly GroupAggregation[] = ['sum', 'mean', 'max', 'prod', 'last'];

/**
 * Element-level criteria sum their scores over a member; vector-level ones take |Σ| of signed scores. The level is
 * the kernel's `Saliency.level` now; this alias stays for code that imported it from here.
 */
export type { SaliencyLevel } from '@topiary/kernel';

/** @deprecated every kernel `Saliency` may say its `level`; use `Saliency`. */
export type LeveledSaliency = Saliency;

/** A criterion's level (`element` when it says none). */
export function saliencyLevel(s: Pick<Saliency, 'level'>): SaliencyLevel {
  return s.level ?? 'element';
}

export function checkAggregation(value: unknown, where: string): GroupAggregation {
  if (typeof value === 'string' && (GROUP_AGGREGATIONS as readonly string[]).includes(value)) return value as GroupAggregation;
  throw new TopiaryError('E_USAGE', `unknown group aggregation ${JSON.stringify(value)}`, {
    where,
    hint: `known aggregations: ${GROUP_AGGREGATIONS.join(', ')}`,
  });
}

/** Combine member importances into one group importance. */
export function aggregate(values: readonly number[], how: GroupAggregation): number {
  if (values.length === 0) return 0;
  switch (how) {
    case 'sum':
      return values.reduce((a, b) => a + b, 0);
    case 'mean':
      return values.reduce((a, b) => a + b, 0) / values.length;
    case 'max':
      return Math.max(...values);
    case 'prod':
      return values.reduce((a, b) => a * b, 1);
    case 'last':
      return values[values.length - 1]!;
  }
}

/** Σ of `values` over one member's slice; `shape` is the parameter's shape (1-D or 2-D row-major). */
export function sliceSum(values: Float32Array, shape: readonly number[], member: GroupMember): number {
  let s = 0;
  if (shape.length === 1) {
    for (const i of member.indices) s += values[i]!;
    return s;
  }
  if (shape.length !== 2) {
    throw new TopiaryError('E_INTERNAL', `parameter ${member.param} has rank ${shape.length}; groups expect 1-D or 2-D parameters`, {
      where: member.param,
    });
  }
  const [rows, cols] = shape as [number, number];
  if (member.axis === 0) {
    for (const r of member.indices) {
      const base = r * cols;
      for (let c = 0; c < cols; c++) s += values[base + c]!;
    }
  } else {
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      for (const c of member.indices) s += values[base + c]!;
    }
  }
  return s;
}

/**
 * Member importance: Σ of element scores (element level), |Σ| of signed scores (vector level), or the signed Σ
 * (group level: the |·| is taken over the whole group, in `groupImportance`).
 */
export function memberImportance(scores: Float32Array, shape: readonly number[], member: GroupMember, level: SaliencyLevel): number {
  const s = sliceSum(scores, shape, member);
  return level === 'vector' ? Math.abs(s) : s;
}

/** Where group scoring reads per-parameter element scores and shapes. */
export interface ElementScores {
  scores: ReadonlyMap<string, Float32Array>;
  shapes: ReadonlyMap<string, readonly number[]>;
}

/**
 * The signed Σ of element scores over each whole group (a group-level criterion's |·| is taken from this): what a
 * trainer accumulates over steps when it estimates the expected loss change (`estimate: expected`).
 */
export function groupSums(groups: readonly ParameterGroup[], elements: ElementScores): Float64Array {
  return groupImportance(groups, elements, 'element', 'sum');
}

/**
 * One importance per group, in the order given. Element and vector levels combine member importances by
 * `aggregation`; the group level sums its members' signed sums and takes |Σ| (the loss change of removing the whole
 * group at once is one number: a sum over its elements), so it takes `sum` only.
 */
export function groupImportance(
  groups: readonly ParameterGroup[],
  elements: ElementScores,
  level: SaliencyLevel,
  aggregation: GroupAggregation,
): Float64Array {
  if (level === 'group' && aggregation !== 'sum') {
    throw new TopiaryError('E_USAGE', `a group-level criterion takes |Σ| over the whole group; aggregation "${aggregation}" does not apply`, {
      where: 'aggregation',
      hint: 'use aggregation: sum (the default) with group-level criteria',
    });
  }
  const out = new Float64Array(groups.length);
  groups.forEach((g, i) => {
    const members = g.members.map((m) => {
      const scores = elements.scores.get(m.param);
      const shape = elements.shapes.get(m.param);
      if (!scores || !shape) {
        throw new TopiaryError('E_INTERNAL', `no scores for parameter ${m.param} of group ${g.id}`, { where: g.id });
      }
      return memberImportance(scores, shape, m, level);
    });
    out[i] = level === 'group' ? Math.abs(aggregate(members, 'sum')) : aggregate(members, aggregation);
  });
  return out;
}
