/**
 * The sequential layer-wise driver Wanda, SparseGPT and magnitude share (llm-compressor's lifecycle: a method only
 * says which statistics it needs and how to *apply* them to one layer).
 *
 * The papers' procedure: calibration windows are embedded once; then for each block i
 *   1. run block i on the current hidden states with capture hooks on its linear layers → statistics per layer;
 *   2. prune every linear layer of block i from its statistics (weights and masks written into the model);
 *   3. run the now pruned block i again → the hidden states block i + 1 sees.
 * So every block is calibrated on the outputs of the *already pruned* blocks before it, and memory holds only one
 * block boundary of activations (all windows × seq × dim) plus one block's statistics.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  TopiaryError,
  type CausalLM,
  type LayerReport,
  type LinearLayer,
  type PruneContext,
  type PruneReport,
  type Saliency,
  type SaliencyStats,
} from '@topiary/kernel';
import { outlierRatio, owlSparsities, type OwlOptions } from './owl.js';
import { layerReport, layerReports, overallSparsity } from './report.js';
import { Activations, windowBatches } from '@topiary/block-executor';
import { releaseHostMemory } from '@topiary/files';

/** What calibration told us about one linear layer's inputs. */
export interface LayerStatistics {
  linear: LinearLayer;
  /** Tokens behind the sums. */
  tokens: number;
  /** Σ_t x_tj² per input feature (Wanda's ‖X_j‖²). */
  activationSquares: Float64Array;
  /** Σ_t x_t x_tᵀ, [in, in] float64 row-major (SparseGPT's H = 2·gram/tokens), when the method needs it. Valid while the block is applied: the array is reused for a later block. */
  gram?: Float64Array;
}

export interface ApplyInput {
  linear: LinearLayer;
  /** The current weight [out, in] (a copy the method may modify). */
  weight: Float32Array;
  /** Present when the method asked for calibration statistics. */
  stats?: LayerStatistics;
  /** The sparsity for this layer (the target, or its OWL share). */
  sparsity: number;
}

export interface ApplyOutput {
  /** The new weight (zeros where pruned, and any reconstruction update). */
  weight: Float32Array;
  /** 1 keep, 0 pruned. */
  keep: Uint8Array;
}

/** One post-training method, seen by the driver. */
export interface LayerwiseMethod {
  readonly name: string;
  /** Statistics to collect: none (magnitude), input-feature squares (Wanda), or the full Gram matrix (SparseGPT). */
  readonly collect: 'none' | 'activations' | 'gram';
  apply(input: ApplyInput, ctx: PruneContext): ApplyOutput;
  /**
   * Whether `apply` only modifies `weight` in place and runs no tensor operation: the driver may then hand it the
   * engine's own memory (`CausalLM.editWeight`) instead of a copy.
   */
  readonly inPlace?: boolean;
}

export interface LayerwiseOptions {
  sparsity: number;
  owl?: OwlOptions;
  /** Blocks to prune; all when absent. */
  layers?: readonly number[];
  /** Calibration windows per forward call (memory/speed trade-off); 0 or absent: `defaultBatchSize`. */
  batchSize?: number;
  /** Saliency used for OWL's outlier ratios (`wanda` in the paper). */
  owlSaliency?: string;
  /** Extra fields for the report's details. */
  details?: Record<string, unknown>;
}

/** Check the requested blocks exist; the error names the flag. */
export function checkLayers(model: CausalLM, layers: readonly number[] | undefined): number[] {
  const all = Array.from({ length: model.numBlocks }, (_, i) => i);
  if (!layers) return all;
  const missing = layers.filter((l) => !Number.isInteger(l) || l < 0 || l >= model.numBlocks);
  if (missing.length > 0) {
    throw new TopiaryError('E_USAGE', `the model has blocks 0–${model.numBlocks - 1}; no block ${missing.join(', ')}`, {
      where: '--layers',
      hint: `choose block indices below ${model.numBlocks}`,
    });
  }
  return [...layers];
}

function needCalibration(ctx: PruneContext, why: string): readonly Int32Array[] {
  const windows = ctx.calibration;
  if (!windows || windows.length === 0) {
    throw new TopiaryError('E_USAGE', `${why} needs calibration data`, { where: '--calibration', hint: 'pass --calibration FILE (a text file)' });
  }
  const len = windows[0]!.length;
  if (windows.some((w) => w.length !== len)) {
    throw new TopiaryError('E_DATA', 'calibration windows must all have the same length', { where: '--calibration' });
  }
  return windows;
}

/** Temporaries one forward call of a block may take by default (the tensor heap keeps its high-water mark). */
const FORWARD_BYTES = 64 * 2 ** 20;

/**
 * Windows per forward call when the options give none: 8, fewer when 8 windows of length t would need more than
 * `FORWARD_BYTES` of one block's temporaries — four [t, hidden] feed-forward arrays (gate, up, SiLU, their product)
 * and two [heads, t, t] attention score arrays, float32. At Llama-2-7B and t = 128 that
 * is 2 windows (8 took 203 MB of heap beside the 809 MB block); small models keep 8.
 */
export function defaultBatchSize(model: CausalLM, windows: readonly Int32Array[]): number {
  const t = windows[0]?.length ?? 1;
  const c = model.config;
  const widest = Math.max(c.hiddenDim, c.dim, ...(c.layers ?? []).map((l) => l.hiddenDim));
  const heads = Math.max(c.nHeads, ...(c.layers ?? []).map((l) => l.nHeads));
  const perWindow = 4 * (4 * t * widest + 2 * heads * t * t);
  return Math.max(1, Math.min(8, Math.floor(FORWARD_BYTES / perWindow)));
}

/** The calibration windows at block 0, held off the heap (spilled past the context's activation budget). */
function calibrationActivations(model: CausalLM, windows: readonly Int32Array[], batchSize: number | undefined, ctx: PruneContext): Activations {
  const batch = batchSize !== undefined && batchSize > 0 ? batchSize : defaultBatchSize(model, windows);
  return Activations.embed(model, windowBatches(windows, batch), { budget: ctx.activationBytes, spillDir: ctx.spillDir });
}

/**
 * Gram matrices reused from block to block. Why: each block needs one d×d float64 sum per distinct layer input
 * (15 MB at d = 1368), and a fresh array that size costs ~120 ms to fault in on the machines measured, against ~1 ms
 * to zero a resident one. Arrays taken for a block go back when the block is done (its statistics are dropped then).
 */
class GramPool {
  private readonly free = new Map<number, Float64Array[]>();
  private readonly taken: Float64Array[] = [];

  take(d: number): Float64Array {
    const g = this.free.get(d * d)?.pop();
    this.taken.push(g ? g.fill(0) : new Float64Array(d * d));
    return this.taken[this.taken.length - 1]!;
  }

  /** The block is done: every array taken since the last call may be handed out again. */
  releaseAll(): void {
    for (const g of this.taken.splice(0)) {
      const list = this.free.get(g.length) ?? [];
      list.push(g);
      this.free.set(g.length, list);
    }
  }
}

/**
 * Collect statistics of every linear layer of block `block` over one pass. Linear layers fed the very same input
 * tensor (q/k/v, gate/up) share one accumulator, so each distinct input is read and summed once.
 */
function collectBlock(model: CausalLM, boundary: Activations, block: number, grams: GramPool | undefined, ctx: PruneContext): Map<string, LayerStatistics> {
  const p = ctx.backend.primitives;
  const stats = new Map<string, LayerStatistics>();
  const shared = new Map<string, LayerStatistics>(); // param → the accumulator it aliases
  let seen: { input: tf.Tensor; owner: LayerStatistics }[] = [];
  const remove = model.capture((linear, input) => {
    if (linear.layer !== block) return;
    const same = seen.find((s) => s.input === input);
    if (same) {
      if (!stats.has(linear.param)) shared.set(linear.param, same.owner);
      return;
    }
    if (shared.has(linear.param)) return; // already summed through the layer it shares its input with
    const [n, d] = input.shape;
    let s = stats.get(linear.param);
    if (!s) {
      s = { linear, tokens: 0, activationSquares: new Float64Array(d), gram: grams?.take(d) };
      stats.set(linear.param, s);
    }
    const x = model.hostValues?.(input) ?? (input.dataSync() as Float32Array); // a view: read before the next tensor op
    p.accumulateColumnSquares(x, n, d, s.activationSquares);
    if (s.gram) p.accumulateGram(x, n, d, s.gram);
    s.tokens += n;
    seen.push({ input, owner: s });
  });
  try {
    for (let k = 0; k < boundary.batches; k++) {
      seen = [];
      // the block's output is not needed here (the next block reads the pruned block's): capture only
      boundary.withBatch(k, (h) => tf.tidy(() => (model.captureBlock ? model.captureBlock(block, h) : void model.block(block, h))));
      // the captured inputs' host copies (a batch's feed-forward product alone is 11 MB at Llama-2-7B)
      if (model.streamed) releaseHostMemory();
    }
  } finally {
    remove();
  }
  for (const [param, owner] of shared) stats.set(param, { ...owner, linear: model.linears(block).find((l) => l.param === param)! });
  return stats;
}

/** Scores of every linear layer of one block, for OWL. */
function blockScores(model: CausalLM, stats: Map<string, LayerStatistics>, saliency: Saliency): Float32Array[] {
  return [...stats.values()].map((s) => {
    const input: SaliencyStats = {
      param: s.linear.param,
      rows: s.linear.outFeatures,
      cols: s.linear.inFeatures,
      weight: model.readWeight(s.linear.param, { copy: true }),
      activationSquares: s.activationSquares,
      tokens: s.tokens,
    };
    return saliency.score(input);
  });
}

/** OWL's dense pass: per-block outlier ratios of the saliency scores on the unpruned model, then per-block sparsities. */
export function owlBlockSparsities(
  model: CausalLM,
  ctx: PruneContext,
  options: { sparsity: number; owl: OwlOptions; batchSize?: number; saliency: string; blocks: readonly number[] },
): { ratios: number[]; sparsities: number[] } {
  const windows = needCalibration(ctx, 'OWL');
  const saliency = ctx.saliency(options.saliency);
  const ratios: number[] = [];
  const boundary = calibrationActivations(model, windows, options.batchSize, ctx);
  try {
    for (let i = 0; i < model.numBlocks; i++) {
      if (options.blocks.includes(i)) {
        ratios.push(outlierRatio(blockScores(model, collectBlock(model, boundary, i, undefined, ctx), saliency), options.owl.M));
        ctx.events.progress('prune:owl', ratios.length, options.blocks.length, `block ${i}`, 'blocks');
      }
      if (i < Math.max(...options.blocks)) boundary.advance(model, i);
    }
  } finally {
    boundary.dispose();
  }
  return { ratios, sparsities: owlSparsities(ratios, options.sparsity, options.owl.lambda) };
}

/** Prune one linear layer with the method and write the result into the model. */
function pruneLinear(model: CausalLM, method: LayerwiseMethod, input: Omit<ApplyInput, 'weight'>, ctx: PruneContext): LayerReport {
  if (method.inPlace && model.editWeight) {
    let report: LayerReport | undefined;
    model.editWeight(input.linear.param, (weight) => {
      const out = method.apply({ ...input, weight }, ctx);
      if (out.weight !== weight) weight.set(out.weight);
      report = layerReport(input.linear, weight, out.keep);
      return out.keep;
    });
    return report!;
  }
  // a copy: the method may modify it in place
  const out = method.apply({ ...input, weight: model.readWeight(input.linear.param, { copy: true }) }, ctx);
  model.writeWeight(input.linear.param, out.weight, out.keep);
  return layerReport(input.linear, out.weight, out.keep);
}

/** Prune a model block by block with one method; returns the report (the model is modified in place). */
export async function pruneLayerwise(model: CausalLM, method: LayerwiseMethod, options: LayerwiseOptions, ctx: PruneContext): Promise<PruneReport> {
  const started = performance.now();
  const blocks = checkLayers(model, options.layers);
  const resumed = ctx.resumedBlocks ?? new Set<number>();
  const before = model.parameterCount();
  let blockSparsity = new Map(blocks.map((b) => [b, options.sparsity]));
  const details: Record<string, unknown> = { ...options.details, blocks };
  if (options.owl) {
    if (resumed.size > 0) {
      throw new TopiaryError('E_USAGE', 'an OWL run cannot resume: its layer sparsities come from the unpruned model', { where: '--resume', hint: 'run it again from the start (without --resume)' });
    }
    const owl = owlBlockSparsities(model, ctx, {
      sparsity: options.sparsity,
      owl: options.owl,
      batchSize: options.batchSize,
      saliency: options.owlSaliency ?? 'wanda',
      blocks,
    });
    blockSparsity = new Map(blocks.map((b, k) => [b, owl.sparsities[k]!]));
    details.owl = { ...options.owl, outlierRatios: owl.ratios, blockSparsity: owl.sparsities };
  }
  const calibrated = method.collect !== 'none';
  const windows = calibrated ? needCalibration(ctx, `${method.name}`) : undefined;
  const boundary = windows ? calibrationActivations(model, windows, options.batchSize, ctx) : undefined;
  const last = Math.max(...blocks);
  const layers: LayerReport[] = [];
  const grams = method.collect === 'gram' ? new GramPool() : undefined;
  try {
    for (let i = 0; i <= last; i++) {
      if (ctx.signal?.aborted) throw new TopiaryError('E_INTERNAL', 'pruning was cancelled', { where: method.name });
      const sparsity = blockSparsity.get(i);
      if (sparsity !== undefined && resumed.has(i)) {
        // pruned and written by the interrupted run: only its report is read back
        layers.push(...layerReports(model, model.linears(i)));
      } else if (sparsity !== undefined) {
        const stats = boundary ? collectBlock(model, boundary, i, grams, ctx) : undefined;
        for (const linear of model.linears(i)) {
          const layerStats = stats?.get(linear.param);
          if (calibrated && !layerStats) {
            throw new TopiaryError('E_INTERNAL', `no calibration input reached ${linear.param}`, { where: method.name });
          }
          layers.push(pruneLinear(model, method, { linear, stats: layerStats, sparsity }, ctx));
          // the layer's host arrays (out of scope now), before the next layer takes as many
          if (model.streamed) releaseHostMemory();
        }
        grams?.releaseAll(); // this block's statistics are spent
      }
      // The next block sees the outputs of this (now pruned) block.
      if (boundary && i < last) boundary.advance(model, i);
      if (sparsity !== undefined) {
        if (!resumed.has(i)) await ctx.blockDone?.(i);
        if (model.streamed) releaseHostMemory(); // the written block's host copies
        ctx.events.progress(`prune:${method.name}`, blocks.indexOf(i) + 1, blocks.length, `block ${i}`, 'blocks');
      }
      await Promise.resolve();
    }
  } finally {
    boundary?.dispose();
  }
  return {
    method: method.name,
    sparsity: overallSparsity(layers),
    parametersBefore: before,
    parametersAfter: before - layers.reduce((a, l) => a + (l.total - l.kept), 0),
    seconds: (performance.now() - started) / 1000,
    layers,
    details,
  };
}
