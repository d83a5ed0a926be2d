/**
 * @topiary/structured-core — what every structured pruner shares: gradients over calibration batches, group
 * importance (member sums, vector-level |Σ|, LLM-Pruner's group aggregations), layer ranges and parameter-ratio
 * selection of groups. Pruner plugins depend on this package; they never depend on each other.
 */
export {
  GROUP_AGGREGATIONS,
  aggregate,
  checkAggregation,
  groupImportance,
  memberImportance,
  saliencyLevel,
  sliceSum,
  type ElementScores,
  type LeveledSaliency,
  type SaliencyLevel,
} from './aggregate.js';
export { batchWindows, calibrationBatchSize, DEFAULT_BATCH_TOKENS, collectGradients, elementScores, windowsTensor, type GradientOptions, type ParameterGradients } from './gradients.js';
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
export { aggregationField, calibrationBatchField, layerRangeField, saliencyField } from './options.js';
