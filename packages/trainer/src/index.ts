/**
 * @topiary/trainer — plain and pruning-aware pretraining of LLaMA models, with crash-safe checkpoints, exact
 * resume, NaN/Inf guards and export of the auto-designed architecture.
 */
export { train, heldOutLoss, type TrainDeps, type TrainHooks, type TrainResult } from './trainer.js';
export { TrainingLoop, numericError, type BatchSource, type LoopControl, type LoopEnd, type LoopParts, type StepOutcome, type Teacher } from './loop.js';
export { PruningPlan, findCriterion, scoreLiveGroups, slimWithState, type PruneEvent, type PruneState } from './pruning.js';
export {
  resolveTrainOptions,
  trainOptions,
  ESTIMATES,
  GROUP_KINDS,
  type Estimate,
  type TrainSpec,
  type TrainDefaults,
  type TrainOptions,
  type TrainOptionsInput,
  type PruneSpec,
  type DataSpec,
  type DistillSpec,
  type ModelSpec,
  type NamedOptions,
  type ScheduleSpec,
} from './options.js';
export { AdamW, defaultAdamW, gradientNorm, firstNonFinite, type AdamWOptions, type AdamWState } from './optimizer.js';
export {
  AccumulatorToken,
  EmaAccumulator,
  SumAccumulator,
  builtinAccumulators,
  createAccumulator,
  emaAccumulator,
  sumAccumulator,
  type AccumulatorFactory,
  type SaliencyAccumulator,
} from './accumulators.js';
export { BatchSampler, blocksFromTokens, encodeText, loadTokenBlocks, loadTrainingBlocks, type TokenBlocks } from './data.js';
export {
  writeCheckpoint,
  loadCheckpoint,
  loadLatestCheckpoint,
  listCheckpoints,
  pruneOldCheckpoints,
  cleanCheckpointLeftovers,
  checkpointName,
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  type CheckpointData,
  type CheckpointRef,
} from './checkpoint.js';
