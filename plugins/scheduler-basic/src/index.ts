/**
 * @topiary/scheduler-basic — the built-in schedules, bound to `Tokens.Scheduler` by name:
 * sparsity/size (`one-shot`, `linear`, `cubic`) and learning rate (`constant`, `cosine`, `wsd`).
 */
import { definePlugin, provide, Tokens, type Scheduler } from '@topiary/kernel';
import { cubicScheduler, linearScheduler, oneShotScheduler } from './size.js';
import { constantScheduler, cosineScheduler, wsdScheduler } from './lr.js';

export * from './size.js';
export * from './lr.js';

/** Every scheduler this package provides (sparsity first, then learning rate). */
export const basicSchedulers: readonly Scheduler[] = [
  oneShotScheduler,
  linearScheduler,
  cubicScheduler,
  constantScheduler,
  cosineScheduler,
  wsdScheduler,
].map((s) => s as unknown as Scheduler);

export default definePlugin({
  name: 'scheduler-basic',
  description: 'sparsity/size schedules (one-shot, linear, cubic) and LR schedules (constant, cosine, wsd)',
  register(container) {
    for (const s of basicSchedulers) provide(container, Tokens.Scheduler, s);
  },
});
