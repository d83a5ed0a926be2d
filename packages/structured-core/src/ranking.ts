/**
 * Ranking groups of different kinds on one scale, and the greedy global selection every structured method uses
 * (LLM-Pruner's `--ranking global`, the pruning-aware trainer's size schedule).
 *
 * `normalise` puts group importances on a common scale:
 *  - `per-param` (default): importance divided by the parameters the group removes. An importance that estimates the
 *    loss increase of removing the group is in loss units for every kind; what differs is the price. Removing P
 *    parameters at the least loss is a knapsack whose greedy solution takes groups by ΔL per parameter.
 *  - `zscore`: standardise within each kind; it forces every kind to lose a similar share, which undoes the point of
 *    a global ranking — kept for comparison.
 *  - `none`: raw importances.
 */
import type { GroupKind, ParameterGroup } from '@topiary/kernel';

export type Normalisation = 'per-param' | 'zscore' | 'none';
export const NORMALISATIONS: readonly Normalisation[] = ['per-param', 'zscore', 'none'];

/** Importances on the common scale used for the global ranking (groups with no importance count as 0). */
export function normaliseScores(groups: readonly ParameterGroup[], importance: (id: string) => number | undefined, mode: Normalisation): Map<string, number> {
  const out = new Map<string, number>();
  if (mode === 'zscore') {
    const byKind = new Map<GroupKind, ParameterGroup[]>();
    for (const g of groups) byKind.set(g.kind, [...(byKind.get(g.kind) ?? []), g]);
    for (const list of byKind.values()) {
      const xs = list.map((g) => importance(g.id) ?? 0);
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length) || 1;
      list.forEach((g, i) => out.set(g.id, (xs[i]! - mean) / sd));
    }
    return out;
  }
  for (const g of groups) {
    const s = importance(g.id) ?? 0;
    out.set(g.id, mode === 'per-param' ? s / Math.max(1, g.size) : s);
  }
  return out;
}

export interface GlobalSelection {
  /** Candidate groups, in the model's order (which breaks ties, so the choice is deterministic). */
  candidates: readonly ParameterGroup[];
  importance: (id: string) => number | undefined;
  normalise: Normalisation;
  /** Parameters that must go. */
  need: number;
  /**
   * Remove `g` if the caller's constraints allow (minimum widths, never an empty layer): returns the parameters it
   * took away, or null to skip it.
   */
  take(g: ParameterGroup): number | null;
}

/**
 * Take the least important candidates on the common scale, lowest first, until at least `need` parameters are gone
 * (the last group may overshoot by less than its own size). Returns the ids taken, in order, and what they removed.
 */
export function selectGlobal(o: GlobalSelection): { ids: string[]; removed: number } {
  if (o.need <= 0) return { ids: [], removed: 0 };
  const scores = normaliseScores(o.candidates, o.importance, o.normalise);
  const order = o.candidates.map((g, i) => ({ g, s: scores.get(g.id)!, i })).sort((a, b) => a.s - b.s || a.i - b.i);
  const ids: string[] = [];
  let removed = 0;
  for (const { g } of order) {
    if (removed >= o.need) break;
    const n = o.take(g);
    if (n === null) continue;
    removed += n;
    ids.push(g.id);
  }
  return { ids, removed };
}
