/**
 * The short learning-rate schedule of recovery fine-tuning: linear warmup from 0 to `lr` over `warmup` steps, then
 * cosine (or linear) decay to `minLr` at the last step. Steps count from 0; step `steps − 1` gets `minLr`.
 *
 * The curves themselves are scheduler plugins' (one implementation of each LR shape in the project): this package
 * never imports a plugin, it resolves the schedule by name from the run's container (`cosine` → `cosine`,
 * `linear` → `wsd` with a linear decay over everything after the warm-up, `constant` → `constant`), where the
 * plugin host registered @topiary/scheduler-basic (or any plugin binding those names).
 */
import {
  crossFieldIssue,
  parseOptions,
  resolveNamed,
  Tokens,
  TopiaryError,
  z,
  type DependencyContainer,
  type OptionsOf,
  type Schedule,
  type Scheduler,
} from '@topiary/kernel';

export const DECAY_KINDS = ['cosine', 'linear', 'constant'] as const;
export type DecayKind = (typeof DECAY_KINDS)[number];

/** The scheduler each decay kind is made by (resolved by name under `Tokens.Scheduler`). */
export const DECAY_SCHEDULERS: Readonly<Record<DecayKind, string>> = { cosine: 'cosine', linear: 'wsd', constant: 'constant' };

/** The schedule's fields, declared once: shared by `lrScheduleOptions` and `finetuneOptions`. */
export const lrScheduleFields = {
  steps: z.number().int().min(1).meta({ description: 'optimiser steps' }),
  lr: z.number().positive().default(1e-4).meta({ description: 'peak learning rate' }),
  minLr: z.number().min(0).default(0).meta({ description: 'learning rate at the last step (at most lr)' }),
  warmup: z.number().int().min(0).optional().meta({ description: 'linear warm-up steps, at most steps (default: 10% of steps)' }),
  decay: z.enum(DECAY_KINDS).default('cosine').meta({ description: `decay after the warm-up: ${DECAY_KINDS.join(', ')}` }),
};

/** The checks across the schedule's fields (minLr ≤ lr, warmup ≤ steps), for any object holding them. */
export function refineLrSchedule(o: { steps: number; lr: number; minLr: number; warmup?: number }, ctx: z.core.$RefinementCtx): void {
  if (o.minLr > o.lr) ctx.addIssue(crossFieldIssue(['minLr'], `must be in [0,${o.lr}], got ${o.minLr}`, 'the learning rate decays from lr down to minLr'));
  if (o.warmup !== undefined && o.warmup > o.steps) ctx.addIssue(crossFieldIssue(['warmup'], `must be in [0,${o.steps}], got ${o.warmup}`, 'the warm-up cannot be longer than the run'));
}

/** A fine-tuning LR schedule as options: `{ steps, lr, minLr, warmup, decay }`. */
export const lrScheduleOptions = z.object(lrScheduleFields).strict().superRefine(refineLrSchedule);

/** A schedule as given: only `steps` is required. */
export type LrScheduleInput = z.input<typeof lrScheduleOptions>;

/** A checked schedule: defaults and warmup filled in. */
export interface LrSchedule {
  lr: number;
  steps: number;
  warmup: number;
  decay: DecayKind;
  minLr: number;
}

/** The default warm-up: 10 % of the steps. */
export function defaultWarmup(steps: number): number {
  return Math.floor(steps / 10);
}

/**
 * Check a schedule (`lrScheduleOptions`; errors are E_RECIPE naming `where` + the field) and fill its defaults.
 * Only the schedule's own fields are read, so a whole set of resolved fine-tuning options can be passed.
 */
export function checkSchedule(s: LrScheduleInput, where = 'finetune'): LrSchedule {
  const { steps, lr, minLr, warmup, decay } = s;
  const o: OptionsOf<typeof lrScheduleOptions> = parseOptions(lrScheduleOptions, { steps, lr, minLr, warmup, decay }, where);
  return { ...o, warmup: o.warmup ?? defaultWarmup(o.steps) };
}

function lrScheduler(container: DependencyContainer, name: string, where: string): Scheduler {
  const scheduler = resolveNamed(container, Tokens.Scheduler, name, 'scheduler', where);
  if (scheduler.kind !== 'lr') {
    throw new TopiaryError('E_PLUGIN_INVALID', `scheduler "${name}" is a ${scheduler.kind} schedule, not a learning-rate one`, { where });
  }
  return scheduler;
}

/**
 * The schedule as a function of the 0-based step; the decay ends (at minLr) on the last step, `steps − 1`.
 * The scheduler is resolved from `container` (E_PLUGIN_UNKNOWN at `where.decay` when it is not installed) and its
 * options are validated by its own schema.
 */
export function lrSchedule(container: DependencyContainer, schedule: LrScheduleInput, where = 'finetune'): Schedule {
  const s = checkSchedule(schedule, where);
  const at = `${where}.decay`;
  const named = lrScheduler(container, DECAY_SCHEDULERS[s.decay], at);
  const last = s.steps - 1;
  const build = (scheduler: Scheduler, options: Record<string, unknown>): Schedule => scheduler.create(parseOptions(scheduler.options, options, at));
  if (s.decay === 'constant' || s.steps - s.warmup <= 1) {
    const constant = s.decay === 'constant' ? named : lrScheduler(container, DECAY_SCHEDULERS.constant, at);
    return build(constant, { lr: s.lr, warmup: s.warmup });
  }
  if (s.decay === 'cosine') return build(named, { lr: s.lr, warmup: s.warmup, total: last, minLr: s.minLr });
  return build(named, { lr: s.lr, warmup: s.warmup, total: last, decaySteps: last - s.warmup, minLr: s.minLr, shape: 'linear' });
}
