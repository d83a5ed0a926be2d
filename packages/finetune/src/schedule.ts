/**
 * The short learning-rate schedule of recovery fine-tuning: linear warmup from 0 to `lr` over `warmup` steps, then
 * cosine (or linear) decay to `minLr` at the last step. Steps count from 0; step `steps − 1` gets `minLr`.
 */
import { TopiaryError } from '@topiary/kernel';

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

/** Learning rate at `step` (0-based). */
export function learningRate(s: LrSchedule, step: number): number {
  if (step < s.warmup) return (s.lr * (step + 1)) / s.warmup;
  const decaySteps = s.steps - s.warmup;
  if (s.decay === 'constant' || decaySteps <= 1) return s.lr;
  const progress = Math.min(1, (step - s.warmup) / (decaySteps - 1));
  const factor = s.decay === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return s.minLr + (s.lr - s.minLr) * factor;
}
