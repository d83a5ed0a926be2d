/**
 * @topiary/scheduler-basic — the built-in schedules, bound to `Tokens.Scheduler` by name:
 * sparsity/size (`one-shot`, `linear`, `cubic`) and learning rate (`constant`, `cosine`, `wsd`).
 */
import { createRequire } from 'node:module';
import { definePlugin, provide, Tokens, type Scheduler } from '@topiary/kernel';
import { cubicScheduler, linearScheduler, oneShotScheduler } from './size.js';
import { constantScheduler, cosineScheduler, wsdScheduler } from './lr.js';

export * from './size.js';
export * from './lr.js';

const pkg = createRequire(import.meta.url)('../package.json') as { version: string };

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
  version: pkg.version,
  kernel: '^0.1.0',
  description: 'sparsity/size schedules (one-shot, linear, cubic) and LR schedules (constant, cosine, wsd)',
  provides: { schedulers: basicSchedulers.map((s) => s.name) },
  register(container) {
    for (const s of basicSchedulers) provide(container, Tokens.Scheduler, s);
  },
});
