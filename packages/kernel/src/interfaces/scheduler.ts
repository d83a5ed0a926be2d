import type { OptionsOf, OptionsSchema } from '../options.js';

/** Schedules: a value as a function of the training step (sparsity/size targets, learning rates). */

export type ScheduleKind = 'sparsity' | 'lr';

export interface Schedule {
  (step: number): number;
}

export interface Scheduler<Schema extends OptionsSchema = OptionsSchema> {
  /** What recipes write: `linear`, `cubic`, `cosine`, `wsd`, `one-shot`. */
  readonly name: string;
  readonly kind: ScheduleKind;
  readonly description: string;
  /** Its options, declared once (see `Pruner.options`). */
  readonly options: Schema;
  create(options: OptionsOf<Schema>): Schedule;
}
