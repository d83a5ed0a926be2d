/**
 * @topiary/finetune — recovery fine-tuning after pruning: full fine-tuning with a short warmup + cosine/linear
 * schedule, optionally distilling the dense model's logits (KL with temperature, mixed with CE), run in the
 * trainer's one training loop.
 */
export {
  DECAY_KINDS,
  DECAY_SCHEDULERS,
  checkSchedule,
  defaultWarmup,
  lrSchedule,
  lrScheduleFields,
  lrScheduleOptions,
  refineLrSchedule,
  type DecayKind,
  type LrSchedule,
  type LrScheduleInput,
} from './schedule.js';
export { finetuneOptions, resolveFinetuneOptions, type FinetuneDefaults, type FinetuneOptionsInput, type ResolvedFinetuneOptions } from './options.js';
export { finetune, type FinetuneOptions, type FinetuneReport } from './finetune.js';
