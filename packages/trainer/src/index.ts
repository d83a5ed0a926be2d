/**
 * @topiary/trainer — plain and pruning-aware pretraining of LLaMA models, with crash-safe checkpoints, exact
 * resume, NaN/Inf guards and export of the auto-designed architecture.
 */
export { train, heldOutLoss, slimWithState, type TrainDeps, type TrainHooks, type TrainResult } from './trainer.js';
export {
  resolveTrainOptions,
  trainOptions,
  GROUP_KINDS,
  type TrainSpec,
  type TrainDefaults,
  type TrainOptions,
  type TrainOptionsInput,
  type PruneSpec,
  type DataSpec,
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
export { builtinScorers, scorerFromSaliency, taylorFisherScorer, taylorScorerFirstOrder, sliceSums, groupSums, type GroupScorer } from './saliency.js';
export { PruneTracker, selectGroups, normaliseScores, slimIdMapping, NORMALISATIONS, type Normalisation, type MinKeep, type ArchitectureSnapshot } from './prune.js';
export { BatchSampler, blocksFromTokens, encodeText, loadTokenBlocks, type TokenBlocks } from './data.js';
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
