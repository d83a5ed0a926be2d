/**
 * @topiary/structured-core — the one group-scoring stack, shared by the structured pruners and the pruning-aware
 * trainer: gradients over calibration batches, group importance (member sums, vector-level |Σ|, group-level |Σ|,
 * LLM-Pruner's aggregations), the training criteria (taylor-fisher, taylor), normalisation across kinds, global
 * selection, the prune tracker, layer ranges and parameter-ratio selection. Pruner plugins and the trainer depend on
 * this package; they never depend on each other.
 */
export {
  GROUP_AGGREGATIONS,
  aggregate,
  checkAggregation,
  groupImportance,
  groupSums,
  memberImportance,
  saliencyLevel,
  sliceSum,
  type ElementScores,
  type LeveledSaliency,
  type SaliencyLevel,
} from './aggregate.js';
export { batchWindows, calibrationBatchSize, DEFAULT_BATCH_TOKENS, elementScores, windowsTensor, type GradientOptions, type ParameterGradients } from './gradients.js';
export { collectGradients, forEachBlockGradient, headGradient, type BlockGradientOptions } from './block-gradients.js';
export {
  checkLayerRange,
  defaultLayerRange,
  parseLayerRange,
  parseLayerSpec,
  resolveLayerRange,
  type LayerSpec,
  selectGroups,
  type LayerRange,
  type Ranking,
  type ScoredGroup,
  type Selection,
  type SelectionRequest,
} from './plan.js';
export { taylorFisher, taylorGroup, taylorTerms, trainingCriteria } from './criteria.js';
export { kindScales, type KindScales } from './calibrate.js';
export { NORMALISATIONS, normaliseScores, selectGlobal, type GlobalSelection, type Normalisation } from './ranking.js';
export { PruneTracker, type ArchitectureSnapshot, type LayerSnapshot, type MinKeep } from './tracker.js';
export { aggregationField, calibrationBatchField, layerRangeField, saliencyField } from './options.js';
