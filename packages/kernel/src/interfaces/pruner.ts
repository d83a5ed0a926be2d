/** Pruners: one method each, with a small lifecycle driven by a recipe stage. */
import type { CausalLM } from './model.js';
import type { Saliency } from './saliency.js';
import type { TensorBackend } from './backend.js';
import type { EventBus } from '../events.js';

export type Granularity = 'element' | 'n:m' | 'group' | 'block';

export interface PruneContext {
  backend: TensorBackend;
  events: EventBus;
  /** Calibration windows (token ids, each of the same length), when the method needs data. */
  calibration?: readonly Int32Array[];
  /** Resolve a saliency criterion by name (throws E_PLUGIN_UNKNOWN listing the known ones). */
  saliency(name: string): Saliency;
  signal?: AbortSignal;
}

export interface LayerReport {
  param: string;
  layer: number;
  sparsity: number;
  kept: number;
  total: number;
}

export interface PruneReport {
  method: string;
  /** Fraction of zeros over the pruned linear layers (element/N:M methods). */
  sparsity?: number;
  parametersBefore: number;
  parametersAfter: number;
  seconds: number;
  layers: LayerReport[];
  /** Method-specific extras (per-layer ratios from OWL, removed blocks, group counts ...). */
  details?: Record<string, unknown>;
}

export interface PruneResult {
  model: CausalLM;
  report: PruneReport;
}

/** How many calibration windows of how many tokens a method uses by default. */
export interface CalibrationDefaults {
  samples: number;
  seqLen?: number;
  /** Where the numbers come from (shown in --help). */
  source: string;
}

export interface Pruner<Options = Record<string, unknown>> {
  readonly name: string;
  readonly description: string;
  readonly granularity: Granularity;
  /** Whether it needs calibration data. */
  readonly needsCalibration: boolean;
  /**
   * The calibration its paper uses, applied when the user gives no `samples` / `seqlen` (e.g. LLM-Pruner: 10 × 64;
   * Wanda and SparseGPT: 128 × the model's context, the default when absent). `seqLen` absent: the model's context.
   */
  readonly calibrationDefaults?: CalibrationDefaults;
  /** Validate raw options (from a recipe or flags); errors name `where` + the field. */
  validate(raw: Record<string, unknown>, where: string): Options;
  prune(model: CausalLM, options: Options, ctx: PruneContext): Promise<PruneResult>;
}
