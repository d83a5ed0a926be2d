/**
 * Sparsity / size schedules: the fraction of the source model's parameters that should be gone at a step.
 * The trainer turns the fraction into a parameter budget (`P_t = P_source · (1 − s_t)`), so one schedule serves
 * unstructured sparsity and structured size reduction alike.
 */
import { crossFieldIssue, z, type OptionsOf, type Schedule, type Scheduler } from '@topiary/kernel';

const fraction = () => z.number().min(0).max(1);
const step = () => z.number().int().min(0);

/** The options of `linear` and `cubic`: the two end points, the steps they are reached at and the update interval. */
export const gradualOptions = z
  .object({
    from: fraction().default(0).meta({ description: 's_i: the fraction already removed when the schedule starts' }),
    to: fraction().meta({ description: 's_f: the fraction removed at the end' }),
    start: step().default(0).meta({ description: 't₀: the step pruning starts at' }),
    end: step().meta({ description: 't₀ + nΔt: the step the final fraction is reached at (after start)' }),
    every: z.number().int().min(1).default(1).meta({ description: 'Δt: masks change only every this many steps (the value is held between)' }),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.end <= o.start) ctx.addIssue(crossFieldIssue(['end'], `must be after start (${o.start}), got ${o.end}`, 'end is the step at which the final size is reached'));
  });

export type GradualOptions = OptionsOf<typeof gradualOptions>;

/** The options of `one-shot`: the whole fraction at one step. */
export const oneShotOptions = z
  .object({
    from: fraction().default(0).meta({ description: 'the fraction removed before `at`' }),
    to: fraction().meta({ description: 'the fraction removed from step `at` on' }),
    at: step().default(0).meta({ description: 'the step at which the whole fraction goes at once' }),
  })
  .strict();

export type OneShotOptions = OptionsOf<typeof oneShotOptions>;

/** Progress in [0, 1] at step t, held constant between mask updates (every Δt steps from t₀). */
export function gradualProgress(o: GradualOptions, step: number): number {
  if (step <= o.start) return 0;
  if (step >= o.end) return 1;
  const quantised = o.start + Math.floor((step - o.start) / o.every) * o.every;
  return Math.min(1, (quantised - o.start) / (o.end - o.start));
}

/** Zhu & Gupta (2017): s_t = s_f + (s_i − s_f)·(1 − (t − t₀)/(nΔt))³. */
export function cubicSparsity(o: GradualOptions): Schedule {
  return (step: number) => {
    const p = gradualProgress(o, step);
    if (p === 0) return o.from; // exact end points, no rounding
    if (p === 1) return o.to;
    return o.to + (o.from - o.to) * (1 - p) ** 3;
  };
}

/** The straight line between the same end points. */
export function linearSparsity(o: GradualOptions): Schedule {
  return (step: number) => o.from + (o.to - o.from) * gradualProgress(o, step);
}

export function oneShotSparsity(o: OneShotOptions): Schedule {
  return (step: number) => (step >= o.at ? o.to : o.from);
}

export const cubicScheduler: Scheduler<typeof gradualOptions> = {
  name: 'cubic',
  kind: 'sparsity',
  description: 'Zhu & Gupta cubic: fast early, slow near the target; masks change every `every` steps',
  options: gradualOptions,
  create: cubicSparsity,
};

export const linearScheduler: Scheduler<typeof gradualOptions> = {
  name: 'linear',
  kind: 'sparsity',
  description: 'linear from `from` at `start` to `to` at `end`; masks change every `every` steps',
  options: gradualOptions,
  create: linearSparsity,
};

export const oneShotScheduler: Scheduler<typeof oneShotOptions> = {
  name: 'one-shot',
  kind: 'sparsity',
  description: 'the whole fraction at step `at` (prune once, then train)',
  options: oneShotOptions,
  create: oneShotSparsity,
};
