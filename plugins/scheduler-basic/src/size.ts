/**
 * Sparsity / size schedules: the fraction of the source model's parameters that should be gone at a step.
 * The trainer turns the fraction into a parameter budget (`P_t = P_source · (1 − s_t)`), so one schedule serves
 * unstructured sparsity and structured size reduction alike.
 */
import {
  checkNumber,
  fieldPath,
  optionalNumber,
  rejectUnknownKeys,
  requiredNumber,
  TopiaryError,
  type Raw,
  type Schedule,
  type Scheduler,
} from '@topiary/kernel';

export interface GradualOptions {
  /** s_i: the fraction already removed when the schedule starts. */
  from: number;
  /** s_f: the fraction removed at the end. */
  to: number;
  /** t₀: the step pruning starts at. */
  start: number;
  /** t₀ + nΔt: the step the final fraction is reached at. */
  end: number;
  /** Δt: masks change only every `every` steps (the value is held between). */
  every: number;
}

export interface OneShotOptions {
  from: number;
  to: number;
  /** The step at which the whole fraction goes at once. */
  at: number;
}

const FRACTION = { min: 0, max: 1 } as const;

function validateGradual(raw: Raw, where: string): GradualOptions {
  rejectUnknownKeys(raw, where, ['from', 'to', 'start', 'end', 'every']);
  const from = optionalNumber(raw, 'from', where, 0, FRACTION);
  const to = requiredNumber(raw, 'to', where, FRACTION);
  const start = optionalNumber(raw, 'start', where, 0, { integer: true, min: 0 });
  const end = requiredNumber(raw, 'end', where, { integer: true, min: 0 });
  const every = optionalNumber(raw, 'every', where, 1, { integer: true, min: 1 });
  if (end <= start) {
    throw new TopiaryError('E_RECIPE', `must be after start (${start}), got ${end}`, {
      where: fieldPath(where, 'end'),
      hint: 'end is the step at which the final size is reached',
    });
  }
  return { from, to, start, end, every };
}

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

export const cubicScheduler: Scheduler<GradualOptions> = {
  name: 'cubic',
  kind: 'sparsity',
  description: 'Zhu & Gupta cubic: fast early, slow near the target; masks change every `every` steps',
  validate: validateGradual,
  create: cubicSparsity,
};

export const linearScheduler: Scheduler<GradualOptions> = {
  name: 'linear',
  kind: 'sparsity',
  description: 'linear from `from` at `start` to `to` at `end`; masks change every `every` steps',
  validate: validateGradual,
  create: linearSparsity,
};

export const oneShotScheduler: Scheduler<OneShotOptions> = {
  name: 'one-shot',
  kind: 'sparsity',
  description: 'the whole fraction at step `at` (prune once, then train)',
  validate(raw, where) {
    rejectUnknownKeys(raw, where, ['from', 'to', 'at']);
    return {
      from: optionalNumber(raw, 'from', where, 0, FRACTION),
      to: requiredNumber(raw, 'to', where, FRACTION),
      at: checkNumber(raw.at ?? 0, fieldPath(where, 'at'), { integer: true, min: 0 }),
    };
  },
  create: oneShotSparsity,
};
