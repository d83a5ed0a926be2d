/**
 * @topiary/finetune — recovery fine-tuning after pruning: full fine-tuning with a short warmup + cosine/linear
 * schedule, optionally distilling the dense model's logits (KL with temperature, mixed with CE).
 */
export { DECAY_KINDS, checkSchedule, learningRate, type DecayKind, type LrSchedule } from './schedule.js';
export { crossEntropyLoss, distillationKl, recoveryLoss, type DistillOptions } from './distill.js';
export { finetune, type FinetuneOptions, type FinetuneReport, type RecoveryOptimizer } from './finetune.js';
