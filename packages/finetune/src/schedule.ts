/**
 * The short learning-rate schedule of recovery fine-tuning: linear warmup from 0 to `lr` over `warmup` steps, then
 * cosine (or linear) decay to `minLr` at the last step. Steps count from 0; step `steps − 1` gets `minLr`.
 * The curves themselves are the scheduler plugin's (one implementation of each LR shape in the project).
 */
import { TopiaryError, type Schedule } from '@topiary/kernel';
import { constantLr, cosineLr, wsdLr } from '@topiary/scheduler-basic';

export type DecayKind = 'cosine' | 'linear' | 'constant';
export const DECAY_KINDS: readonly DecayKind[] = ['cosine', 'linear', 'constant'];

export interface LrSchedule {
  lr: number;
  steps: number;
  warmup: number;
  decay: DecayKind;
  minLr: number;
}

export function checkSchedule(s: LrSchedule, where = 'finetune'): LrSchedule {
  if (!Number.isInteger(s.steps) || s.steps < 1) throw new TopiaryError('E_USAGE', `steps must be a positive integer, got ${s.steps}`, { where: `${where}.steps` });
  if (!Number.isInteger(s.warmup) || s.warmup < 0 || s.warmup > s.steps) {
    throw new TopiaryError('E_USAGE', `warmup must be an integer in [0, steps], got ${s.warmup}`, { where: `${where}.warmup` });
  }
  if (!(s.lr > 0) || !Number.isFinite(s.lr)) throw new TopiaryError('E_USAGE', `learning rate must be > 0, got ${s.lr}`, { where: `${where}.lr` });
  if (!(s.minLr >= 0) || s.minLr > s.lr) throw new TopiaryError('E_USAGE', `minimum learning rate must be in [0, lr], got ${s.minLr}`, { where: `${where}.minLr` });
  if (!DECAY_KINDS.includes(s.decay)) {
    throw new TopiaryError('E_USAGE', `unknown decay ${JSON.stringify(s.decay)}`, { where: `${where}.decay`, hint: `known: ${DECAY_KINDS.join(', ')}` });
  }
  return s;
}

/** The schedule as a function of the 0-based step; the decay ends (at minLr) on the last step, `steps − 1`. */
export function lrSchedule(s: LrSchedule): Schedule {
  const last = s.steps - 1;
  if (s.decay === 'constant' || s.steps - s.warmup <= 1) return constantLr({ lr: s.lr, warmup: s.warmup });
  if (s.decay === 'cosine') return cosineLr({ lr: s.lr, warmup: s.warmup, total: last, minLr: s.minLr });
  return wsdLr({ lr: s.lr, warmup: s.warmup, total: last, decaySteps: last - s.warmup, minLr: s.minLr, shape: 'linear' });
}

/** Learning rate at `step` (0-based). */
export function learningRate(s: LrSchedule, step: number): number {
  return lrSchedule(s)(step);
}
