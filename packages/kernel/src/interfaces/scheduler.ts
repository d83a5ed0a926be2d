/** Schedules: a value as a function of the training step (sparsity/size targets, learning rates). */

export type ScheduleKind = 'sparsity' | 'lr';

export interface Schedule {
  (step: number): number;
}

export interface Scheduler<Options = Record<string, unknown>> {
  /** What recipes write: `linear`, `cubic`, `cosine`, `wsd`, `one-shot`. */
  readonly name: string;
  readonly kind: ScheduleKind;
  readonly description: string;
  validate(raw: Record<string, unknown>, where: string): Options;
  create(options: Options): Schedule;
}
