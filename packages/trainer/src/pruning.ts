/**
 * Pruning-aware pretraining's decisions, on top of the one training loop. Everything about groups — scoring from
 * element criteria (`groupImportance`, which honours a criterion's level), normalisation across kinds, the global
 * selection under minimum widths (`PruneTracker.select`) — is @topiary/structured-core's, shared with LLM-Pruner;
 * group ids and where they go when the model is slimmed are the model's (`groups()`, `slimMapping()`).
 *
 *   every `saliencyEvery` steps   group scores from this step's gradients fold into the accumulator (with
 *                                 `estimate: expected`, a group-level criterion's signed terms: the score is
 *                                 |accumulated|, the expected loss change)
 *   before a step                 the size schedule says how many parameters may remain; the least salient live
 *                                 groups are masked until the live count is at or just below it; their optimiser
 *                                 state is zeroed; once `slimAt` of the model is masked (or the target is reached)
 *                                 the model is slimmed and the optimiser moments and the accumulator follow the kept
 *                                 units. With `normalise: calibrated`, each kind's scores are first scaled to the
 *                                 loss changes measured at the margin (`kindScales`), so kinds compare per parameter
 */
import * as tf from '@tensorflow/tfjs-core';
import { resolveAllOrNone, Tokens, TopiaryError, type CausalLM, type DependencyContainer, type GroupAggregation, type Saliency, type Schedule } from '@topiary/kernel';
import { slimWeights } from '@topiary/model-llama';
import { elementScores, groupImportance, groupSums, kindScales, PruneTracker, saliencyLevel, trainingCriteria, type ArchitectureSnapshot, type ParameterGradients } from '@topiary/structured-core';
import type { SaliencyAccumulator } from './accumulators.js';
import type { TrainingLoop } from './loop.js';
import { AdamW, type AdamWOptions } from './optimizer.js';
import type { PruneSpec } from './options.js';

/** The group criterion called `name`: an installed `Saliency`, else one of the training criteria built in. */
export function findCriterion(container: DependencyContainer | undefined, name: string, where: string): Saliency {
  const installed = container ? resolveAllOrNone(container, Tokens.Saliency) : [];
  const found = installed.find((s) => s.name === name) ?? trainingCriteria.find((s) => s.name === name);
  if (!found) {
    const known = [...new Set([...trainingCriteria.map((s) => s.name), ...installed.map((s) => s.name)])];
    throw new TopiaryError('E_PLUGIN_UNKNOWN', `unknown saliency "${name}"`, { where, hint: `known: ${known.join(', ')}` });
  }
  const unsupported = found.needs.filter((n) => n !== 'weights' && n !== 'grads');
  if (unsupported.length) {
    throw new TopiaryError('E_RECIPE', `saliency "${name}" needs ${unsupported.join(', ')}, which training steps do not collect`, {
      where,
      hint: 'during training only weights and gradients (and their squares) are available',
    });
  }
  return found;
}

/**
 * One importance per live group of `kinds` from one step's gradients: the criterion's element scores (H ≈ g², the
 * one-batch Fisher, for second-order criteria), combined per group by its level and `aggregation` — or, `signed`,
 * the signed Σ over each group (a group-level criterion's terms before the |·|, for `estimate: expected`).
 */
export function scoreLiveGroups(
  tracker: PruneTracker,
  kinds: PruneSpec['kinds'],
  criterion: Saliency,
  aggregation: GroupAggregation,
  grads: ReadonlyMap<string, tf.Tensor>,
  signed = false,
): Map<string, number> {
  const live = tracker.liveGroups(kinds);
  const params = new Set(live.flatMap((g) => g.members.map((m) => m.param)));
  const gradients = new Map<string, ParameterGradients>();
  for (const p of params) {
    const g = grads.get(p);
    if (!g) continue;
    const grad = g.dataSync() as Float32Array;
    gradients.set(p, { grad, gradSquared: Float32Array.from(grad, (x) => x * x), shape: g.shape });
  }
  const scores = elementScores(tracker.model, criterion, gradients);
  const importance = signed ? groupSums(live, scores) : groupImportance(live, scores, saliencyLevel(criterion), aggregation);
  return new Map(live.map((g, i) => [g.id, importance[i]!] as const));
}

/**
 * Physically remove the masked groups and carry the optimiser moments to the smaller shapes by kept indices (the
 * model's own slimming rules). Returns the new model and optimiser and where group ids went; the caller disposes
 * the old ones.
 */
export function slimWithState(model: CausalLM, opt: AdamW, options: AdamWOptions): { model: CausalLM; opt: AdamW; mapping: ReadonlyMap<string, string> } {
  const masked = new Set(model.maskedGroups());
  const state = opt.exportState(model.parameters());
  const mapping = model.slimMapping();
  const m = slimWeights(model.config, state.m, masked, new Map()).weights;
  const v = slimWeights(model.config, state.v, masked, new Map()).weights;
  const slimmed = model.slim();
  return { model: slimmed, opt: new AdamW(options, { t: state.t, m, v }), mapping };
}

/** What the trainer persists about pruning (in its checkpoints' run state). */
export interface PruneState {
  sourceParams: number;
  targetParams: number;
  pruneEvents: number;
  targetReached: boolean;
}

export interface PruneEvent {
  step: number;
  scheduleTarget: number;
  params: number;
  removed: number;
  groups: number;
  byKind: Record<string, number>;
  /** With `normalise: calibrated`: the measured / estimated scale of each kind at this step. */
  kindScales?: Record<string, number>;
}

export class PruningPlan {
  tracker: PruneTracker;

  constructor(
    private readonly spec: PruneSpec,
    private readonly criterion: Saliency,
    private readonly accumulator: SaliencyAccumulator,
    private readonly sizeSchedule: Schedule,
    readonly state: PruneState,
    private readonly optimizerOptions: AdamWOptions,
    model: CausalLM,
    /** The loss of a model on a fixed held-out batch (for `normalise: calibrated`). */
    private readonly probeLoss: (m: CausalLM) => number,
  ) {
    this.tracker = new PruneTracker(model);
  }

  architecture(): ArchitectureSnapshot {
    return this.tracker.architecture();
  }

  /** Fold this step's group scores into the accumulator (every `saliencyEvery` steps, until the target). */
  observe(step: number, grads: ReadonlyMap<string, tf.Tensor>): void {
    if (this.state.targetReached || step % this.spec.saliencyEvery !== 0) return;
    this.accumulator.fold(scoreLiveGroups(this.tracker, this.spec.kinds, this.criterion, this.spec.aggregation, grads, this.signed));
  }

  /** Whether the accumulator holds signed Taylor terms (their |·| is the score). */
  private get signed(): boolean {
    return this.spec.estimate === 'expected' && saliencyLevel(this.criterion) === 'group';
  }

  /** A group's accumulated score (undefined: never observed). */
  importance(id: string): number | undefined {
    const v = this.accumulator.value(id);
    return v === undefined ? undefined : this.signed ? Math.abs(v) : v;
  }

  /** Keep masks for the loop (1 live); the caller disposes the previous ones. */
  keepTensors(): Map<string, tf.Tensor> {
    return this.tracker.keepTensors();
  }

  /**
   * Mask what the schedule says must go before `step`, and slim when due. Returns what was masked (null: nothing)
   * and whether the model was slimmed; `loop.model`, `loop.optimizer` and `loop.keep` are updated in place.
   */
  beforeStep(step: number, loop: TrainingLoop): { event: PruneEvent | null; slimmed: boolean } {
    const st = this.state;
    if (st.targetReached) return { event: null, slimmed: false };
    const scheduleTarget = Math.max(st.targetParams, Math.round(st.sourceParams * (1 - this.sizeSchedule(step))));
    const need = this.tracker.effectiveCount() - scheduleTarget;
    let event: PruneEvent | null = null;
    if (need > 0) {
      let importance = (id: string): number | undefined => this.importance(id);
      let scales: Record<string, number> | undefined;
      if (this.spec.normalise === 'calibrated') {
        const candidates = this.tracker.liveGroups(this.spec.kinds).filter((g) => g.kind !== 'block');
        const measured = kindScales(loop.model, candidates, importance, this.probeLoss, this.spec.calibrationGroups).scales;
        const raw = importance;
        importance = (id) => {
          const v = raw(id);
          return v === undefined ? undefined : v * (measured.get(this.tracker.group(id).kind) ?? 1);
        };
        scales = Object.fromEntries(measured);
      }
      const { ids, removed } = this.tracker.select({
        kinds: this.spec.kinds,
        normalise: this.spec.normalise === 'calibrated' ? 'per-param' : this.spec.normalise,
        minKeep: this.spec.minKeep,
        need,
        importance,
      });
      if (ids.length === 0) {
        throw new TopiaryError('E_RECIPE', `cannot remove ${need} more parameters: every remaining group is at its minimum`, {
          where: this.spec.schedule.where.replace(/\.schedule$/, '.minKeep'),
          hint: 'lower minKeep, add group kinds, or choose a larger target',
        });
      }
      loop.model.maskGroups(ids);
      this.replaceKeep(loop);
      loop.optimizer.maskState(loop.keep);
      st.pruneEvents++;
      const byKind: Record<string, number> = {};
      for (const id of ids) {
        const kind = this.tracker.group(id).kind;
        byKind[kind] = (byKind[kind] ?? 0) + 1;
      }
      event = { step, scheduleTarget, params: this.tracker.effectiveCount(), removed, groups: ids.length, byKind, ...(scales ? { kindScales: scales } : {}) };
    }
    if (this.tracker.effectiveCount() <= st.targetParams) st.targetReached = true;
    const maskedFraction = 1 - this.tracker.effectiveCount() / this.tracker.total;
    const slimmed = (st.targetReached || (need > 0 && maskedFraction >= this.spec.slimAt)) && this.slim(loop);
    return { event, slimmed };
  }

  /** Remove every masked group physically now (at the end of a run too). Returns whether anything was removed. */
  slim(loop: TrainingLoop): boolean {
    if (loop.model.maskedGroups().length === 0) return false;
    const next = slimWithState(loop.model, loop.optimizer, this.optimizerOptions);
    loop.optimizer.dispose();
    loop.model.dispose();
    loop.model = next.model;
    loop.optimizer = next.opt;
    this.accumulator.remap(next.mapping);
    this.tracker = new PruneTracker(next.model);
    this.replaceKeep(loop);
    return true;
  }

  private replaceKeep(loop: TrainingLoop): void {
    for (const k of loop.keep.values()) k.dispose();
    loop.keep = this.tracker.keepTensors();
  }
}
