/**
 * Learning-rate schedules. Steps are 0-based optimiser steps; warm-up is linear and reaches the peak at step
 * `warmup − 1` (so step 0 already trains, at lr/warmup).
 */
import {
  fieldPath,
  optionalNumber,
  optionalOneOf,
  rejectUnknownKeys,
  requiredNumber,
  TopiaryError,
  type Raw,
  type Schedule,
  type Scheduler,
} from '@topiary/kernel';

export interface ConstantLrOptions {
  lr: number;
  warmup: number;
}

export interface CosineLrOptions {
  lr: number;
  warmup: number;
  /** The step count the schedule spans; after it the rate stays at minLr. */
  total: number;
  minLr: number;
}

export type DecayShape = 'linear' | 'cosine' | 'sqrt';

export interface WsdLrOptions {
  lr: number;
  warmup: number;
  total: number;
  /** Length of the final decay phase in steps. */
  decaySteps: number;
  minLr: number;
  shape: DecayShape;
}

const LR = { above: 0 } as const;

function warmupFactor(step: number, warmup: number): number {
  return warmup > 0 && step < warmup ? (step + 1) / warmup : 1;
}

export function constantLr(o: ConstantLrOptions): Schedule {
  return (step) => o.lr * warmupFactor(step, o.warmup);
}

/** Linear warm-up, then half a cosine from lr down to minLr at `total`. */
export function cosineLr(o: CosineLrOptions): Schedule {
  return (step) => {
    if (step < o.warmup) return o.lr * warmupFactor(step, o.warmup);
    const span = Math.max(1, o.total - o.warmup);
    const p = Math.min(1, (step - o.warmup) / span);
    return o.minLr + (o.lr - o.minLr) * 0.5 * (1 + Math.cos(Math.PI * p));
  };
}

/** Warmup-stable-decay: warm-up, a flat peak, then a decay over the last `decaySteps` steps to minLr. */
export function wsdLr(o: WsdLrOptions): Schedule {
  const decayStart = o.total - o.decaySteps;
  return (step) => {
    if (step < o.warmup) return o.lr * warmupFactor(step, o.warmup);
    if (step < decayStart) return o.lr;
    const p = Math.min(1, (step - decayStart) / Math.max(1, o.decaySteps));
    const f = o.shape === 'linear' ? 1 - p : o.shape === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * p)) : 1 - Math.sqrt(p);
    return o.minLr + (o.lr - o.minLr) * f;
  };
}

function validateCommon(raw: Raw, where: string): { lr: number; warmup: number } {
  return {
    lr: requiredNumber(raw, 'lr', where, LR),
    warmup: optionalNumber(raw, 'warmup', where, 0, { integer: true, min: 0 }),
  };
}

function checkMinLr(raw: Raw, where: string, lr: number): number {
  const minLr = optionalNumber(raw, 'minLr', where, 0, { min: 0 });
  if (minLr > lr) throw new TopiaryError('E_RECIPE', `must not exceed lr (${lr}), got ${minLr}`, { where: fieldPath(where, 'minLr') });
  return minLr;
}

function checkTotal(raw: Raw, where: string, warmup: number): number {
  const total = requiredNumber(raw, 'total', where, { integer: true, min: 1 });
  if (warmup > total) throw new TopiaryError('E_RECIPE', `warmup (${warmup}) is longer than total (${total})`, { where: fieldPath(where, 'warmup') });
  return total;
}

export const constantScheduler: Scheduler<ConstantLrOptions> = {
  name: 'constant',
  kind: 'lr',
  description: 'a constant learning rate after an optional linear warm-up',
  validate(raw, where) {
    rejectUnknownKeys(raw, where, ['lr', 'warmup']);
    return validateCommon(raw, where);
  },
  create: constantLr,
};

export const cosineScheduler: Scheduler<CosineLrOptions> = {
  name: 'cosine',
  kind: 'lr',
  description: 'linear warm-up, then cosine decay to minLr at `total`',
  validate(raw, where) {
    rejectUnknownKeys(raw, where, ['lr', 'warmup', 'total', 'minLr']);
    const { lr, warmup } = validateCommon(raw, where);
    return { lr, warmup, total: checkTotal(raw, where, warmup), minLr: checkMinLr(raw, where, lr) };
  },
  create: cosineLr,
};

export const wsdScheduler: Scheduler<WsdLrOptions> = {
  name: 'wsd',
  kind: 'lr',
  description: 'warmup-stable-decay: warm-up, flat peak, decay over the last `decay` fraction (or decaySteps) to minLr',
  validate(raw, where) {
    rejectUnknownKeys(raw, where, ['lr', 'warmup', 'total', 'minLr', 'decay', 'decaySteps', 'shape']);
    const { lr, warmup } = validateCommon(raw, where);
    const total = checkTotal(raw, where, warmup);
    if (raw.decay !== undefined && raw.decaySteps !== undefined) {
      throw new TopiaryError('E_RECIPE', 'give decay (a fraction) or decaySteps, not both', { where: fieldPath(where, 'decaySteps') });
    }
    const decaySteps =
      raw.decaySteps !== undefined
        ? requiredNumber(raw, 'decaySteps', where, { integer: true, min: 0 })
        : Math.round(total * optionalNumber(raw, 'decay', where, 0.2, { min: 0, max: 1 }));
    if (warmup + decaySteps > total) {
      throw new TopiaryError('E_RECIPE', `warmup (${warmup}) + decay (${decaySteps}) steps exceed total (${total})`, {
        where: fieldPath(where, raw.decaySteps !== undefined ? 'decaySteps' : 'decay'),
      });
    }
    return {
      lr,
      warmup,
      total,
      decaySteps,
      minLr: checkMinLr(raw, where, lr),
      shape: optionalOneOf(raw, 'shape', where, ['linear', 'cosine', 'sqrt'] as const, 'linear'),
    };
  },
  create: wsdLr,
};
