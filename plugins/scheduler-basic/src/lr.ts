/**
 * Learning-rate schedules. Steps are 0-based optimiser steps; warm-up is linear and reaches the peak at step
 * `warmup − 1` (so step 0 already trains, at lr/warmup).
 */
import { crossFieldIssue, z, type OptionsOf, type Schedule, type Scheduler } from '@topiary/kernel';

export type DecayShape = 'linear' | 'cosine' | 'sqrt';
export const DECAY_SHAPES: readonly DecayShape[] = ['linear', 'cosine', 'sqrt'];

const lr = () => z.number().positive().meta({ description: 'peak learning rate' });
const warmup = () => z.number().int().min(0).default(0).meta({ description: 'linear warm-up steps (step k < warmup uses lr·(k+1)/warmup)' });
const total = () => z.number().int().min(1).meta({ description: 'the step count the schedule spans; after it the rate stays at minLr' });
const minLr = () => z.number().min(0).default(0).meta({ description: 'the learning rate at `total` and after (at most lr)' });

type Ctx = z.core.$RefinementCtx;

function checkMinLr(o: { lr: number; minLr: number }, ctx: Ctx): void {
  if (o.minLr > o.lr) ctx.addIssue(crossFieldIssue(['minLr'], `must not exceed lr (${o.lr}), got ${o.minLr}`));
}

function checkWarmup(o: { warmup: number; total: number }, ctx: Ctx): void {
  if (o.warmup > o.total) ctx.addIssue(crossFieldIssue(['warmup'], `warmup (${o.warmup}) is longer than total (${o.total})`));
}

/** `constant`: lr after an optional linear warm-up. */
export const constantOptions = z.object({ lr: lr(), warmup: warmup() }).strict();

/** `cosine`: warm-up, then half a cosine from lr down to minLr at `total`. */
export const cosineOptions = z
  .object({ lr: lr(), warmup: warmup(), total: total(), minLr: minLr() })
  .strict()
  .superRefine((o, ctx) => {
    checkWarmup(o, ctx);
    checkMinLr(o, ctx);
  });

/** `wsd`: warm-up, a flat peak, then a decay over the last `decay` fraction of `total` (or `decaySteps`) to minLr. */
export const wsdOptions = z
  .object({
    lr: lr(),
    warmup: warmup(),
    total: total(),
    minLr: minLr(),
    decay: z.number().min(0).max(1).optional().meta({ description: 'the decay phase as a fraction of total (default 0.2); or give decaySteps' }),
    decaySteps: z.number().int().min(0).optional().meta({ description: 'length of the final decay phase in steps (instead of decay)' }),
    shape: z.enum(DECAY_SHAPES).default('linear').meta({ description: 'decay curve: linear, cosine or sqrt (1 − √p)' }),
  })
  .strict()
  .superRefine((o, ctx) => {
    checkWarmup(o, ctx);
    if (o.decay !== undefined && o.decaySteps !== undefined) {
      ctx.addIssue(crossFieldIssue(['decaySteps'], 'give decay (a fraction) or decaySteps, not both'));
    } else {
      const decaySteps = wsdDecaySteps(o);
      if (o.warmup + decaySteps > o.total) {
        ctx.addIssue(crossFieldIssue([o.decaySteps !== undefined ? 'decaySteps' : 'decay'], `warmup (${o.warmup}) + decay (${decaySteps}) steps exceed total (${o.total})`));
      }
    }
    checkMinLr(o, ctx);
  });

export type ConstantLrOptions = OptionsOf<typeof constantOptions>;
export type CosineLrOptions = OptionsOf<typeof cosineOptions>;
export type WsdOptions = OptionsOf<typeof wsdOptions>;

/** The closed form of `wsd`, its decay phase in steps. */
export interface WsdLrOptions {
  lr: number;
  warmup: number;
  total: number;
  /** Length of the final decay phase in steps. */
  decaySteps: number;
  minLr: number;
  shape: DecayShape;
}

/** The decay phase of `wsd` options in steps: `decaySteps`, or `decay` (default 0.2) of `total`, rounded. */
export function wsdDecaySteps(o: Pick<WsdOptions, 'total' | 'decay' | 'decaySteps'>): number {
  return o.decaySteps ?? Math.round(o.total * (o.decay ?? 0.2));
}

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

export const constantScheduler: Scheduler<typeof constantOptions> = {
  name: 'constant',
  kind: 'lr',
  description: 'a constant learning rate after an optional linear warm-up',
  options: constantOptions,
  create: constantLr,
};

export const cosineScheduler: Scheduler<typeof cosineOptions> = {
  name: 'cosine',
  kind: 'lr',
  description: 'linear warm-up, then cosine decay to minLr at `total`',
  options: cosineOptions,
  create: cosineLr,
};

export const wsdScheduler: Scheduler<typeof wsdOptions> = {
  name: 'wsd',
  kind: 'lr',
  description: 'warmup-stable-decay: warm-up, flat peak, decay over the last `decay` fraction (or decaySteps) to minLr',
  options: wsdOptions,
  create: (o) => wsdLr({ lr: o.lr, warmup: o.warmup, total: o.total, decaySteps: wsdDecaySteps(o), minLr: o.minLr, shape: o.shape }),
};
