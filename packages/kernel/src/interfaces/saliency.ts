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
}

export interface Saliency {
  /** What recipes write: `magnitude`, `wanda`, `taylor-element`, ... */
  readonly name: string;
  readonly description: string;
  /** Which statistics the pruner or trainer must collect before calling score(). */
  readonly needs: readonly SaliencyNeed[];
  /** One score per element of the weight, same layout. */
  score(stats: SaliencyStats): Float32Array;
}

/** How element scores become one group score (LLM-Pruner's aggregations). */
export type GroupAggregation = 'sum' | 'mean' | 'max' | 'prod' | 'last';
