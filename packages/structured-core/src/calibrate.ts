/**
 * Putting group kinds on one measured scale. A Taylor estimate of a group's loss change is good within a kind and
 * biased across kinds: on stories260K (`bench/experiment/saliency-check.mjs`) the true loss increase of removing a
 * hidden channel is 2.5× its estimate, of a head 1.3×, of an FFN channel 1.1× — a hidden channel runs through every
 * layer and the norms, which a diagonal expansion does not see — so a per-parameter ranking of raw estimates
 * removes hidden channels first.
 *
 * `kindScales` measures the bias where it matters, at the margin: for each kind it takes the `perKind` live groups
 * ranked cheapest per parameter, removes each one alone from a copy of the model, measures the loss change on a
 * probe batch, and returns Σ measured / Σ estimated for the kind. Multiplying a kind's estimates by its scale puts
 * every kind in measured loss units; the per-parameter ranking then compares like with like.
 */
import type { CausalLM, GroupKind, ParameterGroup } from '@topiary/kernel';

export interface KindScales {
  /** Measured / estimated loss change, per kind (1 where nothing could be measured). */
  scales: Map<GroupKind, number>;
  /** What was measured, for the run's metrics. */
  samples: { kind: GroupKind; id: string; estimated: number; measured: number }[];
}

export function kindScales(
  model: CausalLM,
  candidates: readonly ParameterGroup[],
  importance: (id: string) => number | undefined,
  loss: (m: CausalLM) => number,
  perKind: number,
): KindScales {
  const base = loss(model);
  const scales = new Map<GroupKind, number>();
  const samples: KindScales['samples'] = [];
  const kinds = [...new Set(candidates.map((g) => g.kind))];
  for (const kind of kinds) {
    const cheapest = candidates
      .filter((g) => g.kind === kind && importance(g.id) !== undefined)
      .map((g) => ({ g, s: importance(g.id)! / Math.max(1, g.size) }))
      .sort((a, b) => a.s - b.s)
      .slice(0, perKind);
    let estimated = 0;
    let measured = 0;
    for (const { g } of cheapest) {
      const copy = model.clone();
      try {
        copy.maskGroups([g.id]);
        const m = loss(copy) - base;
        const e = importance(g.id)!;
        samples.push({ kind, id: g.id, estimated: e, measured: m });
        estimated += e;
        measured += m;
      } finally {
        copy.dispose();
      }
    }
    // a kind whose removals measured no loss at all keeps its estimates (scale 1): no evidence either way
    scales.set(kind, estimated > 0 && measured > 0 ? measured / estimated : 1);
  }
  return { scales, samples };
}
