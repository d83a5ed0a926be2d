/**
 * Block scores for depth pruning. Lower = less important = removed first.
 *
 * - `block-influence` (ShortGPT, Men et al. 2024): BI_i = 1 − mean_t cos(x_i,t, x_{i+1},t), the mean over every
 *   calibration token t of the cosine similarity between block i's input and output hidden states.
 * - `ppl` (Shortened LLaMA, Kim et al. 2024): the calibration loss of the model with block i dropped (reported as
 *   its perplexity exp(loss)); the block whose removal hurts least goes first.
 *
 * All three run block by block (the block executor), so a streamed model holds one block at a time.
 * - `taylor` (Shortened LLaMA): Σ over every weight of the block of |w·∂L/∂w| — the block group's importance with
 *   an element-level saliency (default `taylor-element`) and `sum` aggregation, computed by structured-core.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CausalLM, Saliency } from '@topiary/kernel';
import { Activations, StateStore, windowBatches, type Batch } from '@topiary/block-executor';
import { batchWindows, elementScores, forEachBlockGradient, groupImportance, saliencyLevel } from '@topiary/structured-core';

export type BlockScore = 'block-influence' | 'ppl' | 'taylor';
export const BLOCK_SCORES: readonly BlockScore[] = ['block-influence', 'ppl', 'taylor'];

/** Where the hidden states between blocks go beyond `budget` bytes (the block executor's options). */
export interface SpillOptions {
  budget?: number;
  spillDir?: string;
}

/**
 * Block Influence of every block, block by block over all calibration batches (the block executor: a streamed model
 * reads each block once).
 */
export async function blockInfluence(model: CausalLM, windows: readonly Int32Array[], batchSize: number, spill: SpillOptions = {}): Promise<Float64Array> {
  const n = model.numBlocks;
  const cosSum = new Float64Array(n);
  const batches = windowBatches(windows, batchSize);
  const tokens = batches.reduce((a, b) => a + b.b * b.t, 0);
  const acts = Activations.embed(model, batches, spill);
  try {
    for (let i = 0; i < n; i++) {
      acts.advance(model, i, (_k, h, next) => {
        const cos = tf.tidy(() => {
          const dot = tf.sum(tf.mul(h, next), -1);
          const norms = tf.mul(tf.norm(h, 'euclidean', -1), tf.norm(next, 'euclidean', -1));
          return tf.sum(tf.div(dot, tf.maximum(norms, 1e-12)));
        });
        cosSum[i]! += cos.dataSync()[0]!;
        cos.dispose();
      });
      await Promise.resolve();
    }
  } finally {
    acts.dispose();
  }
  return cosSum.map((s) => 1 - s / tokens);
}

/** Each batch's inputs (every window but its last token) and targets (every window but its first). */
function nextTokenBatches(windows: readonly Int32Array[], batchSize: number): { batches: Batch[]; targets: Int32Array[] } {
  const t = windows[0]!.length;
  const batches = windowBatches(
    windows.map((w) => w.subarray(0, t - 1)),
    batchSize,
  );
  const targets = batchWindows(windows, batchSize).map((batch) => {
    const out = new Int32Array(batch.length * (t - 1));
    batch.forEach((w, i) => out.set(w.subarray(1), i * (t - 1)));
    return out;
  });
  return { batches, targets };
}

/**
 * Σ of the next-token losses of one batch from its hidden states after the last block: log Σ exp(logits) − the
 * target's logit per position, by `scoreTargets` (vocabulary chunks: the logits never exist whole).
 */
function batchLossSum(model: CausalLM, hidden: tf.Tensor3D, targets: Int32Array): number {
  const { target, lse } = model.scoreTargets(hidden, targets);
  let sum = 0;
  for (let p = 0; p < target.length; p++) sum += lse[p]! - target[p]!;
  return sum;
}

/** Mean next-token loss with block `skip` dropped (−1: none), over all windows. */
export async function lossWithout(model: CausalLM, windows: readonly Int32Array[], batchSize: number, skip: number): Promise<number> {
  const { batches, targets } = nextTokenBatches(windows, batchSize);
  const acts = Activations.embed(model, batches);
  try {
    for (let i = 0; i < model.numBlocks; i++) if (i !== skip) acts.advance(model, i);
    let total = 0;
    let count = 0;
    for (let k = 0; k < batches.length; k++) {
      total += acts.withBatch(k, (h) => batchLossSum(model, h, targets[k]!));
      count += targets[k]!.length;
    }
    return total / count;
  } finally {
    acts.dispose();
  }
}

/**
 * The mean calibration loss with each block dropped in turn — in one pass over the blocks, each block read once:
 * beside the full model's hidden states, one "tail" per dropped block s (its hidden states, which skipped block s)
 * goes through every block after s. Tail s starts from block s's input. Each tail computes, batch by batch, exactly
 * what a forward pass without block s computes. Memory: B + (L + 1) × H, the tails spilled beyond `spill.budget`.
 */
export async function droppedLoss(model: CausalLM, windows: readonly Int32Array[], batchSize: number, spill: SpillOptions = {}): Promise<Float64Array> {
  const n = model.numBlocks;
  const { batches, targets } = nextTokenBatches(windows, batchSize);
  const acts = Activations.embed(model, batches, spill);
  const tails = new StateStore(spill);
  try {
    for (let j = 0; j < n; j++) {
      for (let s = 0; s < j; s++) {
        for (let k = 0; k < batches.length; k++) {
          const h = tails.tensor(s, k);
          const next = tf.tidy(() => model.block(j, h));
          tails.putTensor(s, k, next);
          tf.dispose([h, next]);
        }
      }
      for (let k = 0; k < batches.length; k++) acts.withBatch(k, (h) => tails.putTensor(j, k, h));
      acts.advance(model, j);
      await Promise.resolve();
    }
    const count = targets.reduce((a, t) => a + t.length, 0);
    const out = new Float64Array(n);
    for (let s = 0; s < n; s++) {
      let total = 0;
      for (let k = 0; k < batches.length; k++) {
        const h = tails.tensor(s, k);
        try {
          total += batchLossSum(model, h, targets[k]!);
        } finally {
          h.dispose();
        }
        tails.delete(s, k);
      }
      out[s] = total / count;
    }
    return out;
  } finally {
    tails.dispose();
    acts.dispose();
  }
}

/**
 * Σ |w·g| (or another element-level saliency) over every parameter of each block, the gradients taken block by
 * block in reverse (structured-core's per-block recomputation: one block and its gradients on the heap).
 */
export async function blockTaylor(model: CausalLM, windows: readonly Int32Array[], batchSize: number, saliency: Saliency, spill: SpillOptions = {}): Promise<Float64Array> {
  const blocks = model.groups(['block']);
  const out = new Float64Array(model.numBlocks);
  const level = saliencyLevel(saliency);
  await forEachBlockGradient(
    model,
    windows,
    { batchSize, ...(spill.budget !== undefined ? { activationBytes: spill.budget } : {}), ...(spill.spillDir !== undefined ? { spillDir: spill.spillDir } : {}) },
    (layer, grads) => {
      const block = blocks.find((g) => g.layer === layer)!;
      out[layer] = groupImportance([block], elementScores(model, saliency, grads), level, 'sum')[0]!;
    },
  );
  return out;
}
