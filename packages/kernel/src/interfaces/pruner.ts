/** Pruners: one method each, with a small lifecycle driven by a recipe stage. */
import type { CausalLM } from './model.js';
import type { Saliency } from './saliency.js';
import type { TensorBackend } from './backend.js';
import type { EventBus } from '../events.js';
import type { OptionsOf, OptionsSchema } from '../options.js';

export type Granularity = 'element' | 'n:m' | 'group' | 'block';

export interface PruneContext {
  backend: TensorBackend;
  events: EventBus;
  /** Calibration windows (token ids, each of the same length), when the method needs data. */
  calibration?: readonly Int32Array[];
  /** Resolve a saliency criterion by name (throws E_PLUGIN_UNKNOWN listing the known ones). */
  saliency(name: string): Saliency;
  signal?: AbortSignal;
  /**
   * Block-by-block methods call this once block i is final (pruned, and not touched again by this run): a streamed
   * run writes the block out and takes it off the heap here.
   */
  blockDone?(block: number): void | Promise<void>;
  /**
   * Blocks an interrupted run already pruned and wrote (their pruned weights are what the model holds now): a
   * block-by-block method runs them forward only, to get the inputs of the first block left, and prunes the rest.
   */
  resumedBlocks?: ReadonlySet<number>;
  /**
   * Bytes of calibration hidden states kept in host memory between blocks; the rest go to a temporary file in
   * `spillDir` (default: no limit).
   */
  activationBytes?: number;
  spillDir?: string;
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

export interface Pruner<Schema extends OptionsSchema = OptionsSchema> {
  readonly name: string;
  readonly description: string;
  readonly granularity: Granularity;
  /**
   * Whether it needs calibration data whatever its options say. When false, the pipeline still draws data when
   * the options name a saliency that needs it (`saliency: wanda`) or `needsCalibration(options)` says so.
   */
  readonly needsCalibration: boolean | ((options: OptionsOf<Schema>) => boolean);
  /**
   * The calibration its paper uses, applied when the user gives no `samples` / `seqlen` (e.g. LLM-Pruner: 10 × 64;
   * Wanda and SparseGPT: 128 × the model's context, the default when absent). `seqLen` absent: the model's context.
   */
  readonly calibrationDefaults?: CalibrationDefaults;
  /**
   * Its options, declared once: type, validation with paths, defaults, JSON Schema, `topiary prune` flags and help
   * all come from here. A field named `saliency` is the criterion the pipeline resolves and gathers data for.
   */
  readonly options: Schema;
  /**
   * Whether it works on a streamed model (one block on the heap at a time): it reads and writes one block's weights
   * at a time, in block order, and calls `ctx.blockDone` as each block is final — the sequential post-training
   * methods. Methods that need every weight at once (gradients through the whole model, slimming) leave it unset.
   */
  readonly streams?: boolean;
  /**
   * Whether a structured method (group or block granularity) works on a streamed model whose removal is a plan: it
   * reads weights and gradients block by block (never `parameters()`), and removes groups with `maskGroups` then
   * `slim()`, which a streamed model applies as it is written. Unset: the whole model is loaded for it.
   */
  readonly streamsBySlimPlan?: boolean;
  prune(model: CausalLM, options: OptionsOf<Schema>, ctx: PruneContext): Promise<PruneResult>;
}
