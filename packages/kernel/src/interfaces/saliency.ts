/** Saliency criteria: one function from statistics of a weight to a score per element. Higher = more important. */

export type SaliencyNeed = 'weights' | 'grads' | 'activations' | 'hessian';

export interface SaliencyStats {
  /** The parameter's name and shape; W is row-major [rows, cols] (rows = outputs for linear layers). */
  param: string;
  rows: number;
  cols: number;
  weight: Float32Array;
  /** Gradient of the loss (summed or averaged over calibration batches), same layout as weight. */
  grad?: Float32Array;
  /** Accumulated squared gradient (empirical Fisher diagonal), same layout as weight. */
  gradSquared?: Float32Array;
  /** Σ over tokens of the squared input feature, per column (Wanda's ‖X_j‖²). */
  activationSquares?: Float64Array;
  /** Number of tokens behind activationSquares. */
  tokens?: number;
  /**
   * Where the scores may go: a buffer of at least rows·cols floats the caller reuses from layer to layer (a fresh
   * weight-sized array per layer costs more to fault in than to fill). A criterion may ignore it and return a new
   * array; it returns the scores either way (`into.subarray(0, rows·cols)` when it used it).
   */
  into?: Float32Array;
}

/**
 * How a criterion's element scores become the score of a slice (a head's rows, an FFN channel's column ...) and of
 * a group: `element` scores are non-negative and summed; `vector` scores are signed and each slice scores |Σ|
 * (taylor-vector: LLM-Pruner's member importance); `group` scores are signed and the whole group scores |Σ| over all
 * its members — the Taylor estimate of the loss change when the group is removed at once (EfficientLLM's saliency).
 */
export type SaliencyLevel = 'element' | 'vector' | 'group';

export interface Saliency {
  /** What recipes write: `magnitude`, `wanda`, `taylor-element`, ... */
  readonly name: string;
  readonly description: string;
  /**
   * Which statistics the pruner or trainer must collect before calling score(): `weights` alone needs no
   * calibration data; `activations`, `grads` and `hessian` do. The pipeline draws calibration data exactly then.
   */
  readonly needs: readonly SaliencyNeed[];
  /** Element level when absent. */
  readonly level?: SaliencyLevel;
  /**
   * True when a row's scores depend on that row's statistics alone (magnitude, Wanda): a pruner may then score a
   * large weight a chunk of rows at a time, and get the same scores. Absent: the whole weight is scored at once.
   */
  readonly rowwise?: boolean;
  /** One score per element of the weight, same layout. */
  score(stats: SaliencyStats): Float32Array;
}

/** Whether a criterion needs calibration data (anything beyond the weights themselves). */
export function needsData(saliency: Pick<Saliency, 'needs'>): boolean {
  return saliency.needs.some((need) => need !== 'weights');
}

/** How element scores become one group score (LLM-Pruner's aggregations). */
export type GroupAggregation = 'sum' | 'mean' | 'max' | 'prod' | 'last';
