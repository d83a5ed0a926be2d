/**
 * Block scores for depth pruning. Lower = less important = removed first.
 *
 * - `block-influence` (ShortGPT, Men et al. 2024): BI_i = 1 − mean_t cos(x_i,t, x_{i+1},t), the mean over every
 *   calibration token t of the cosine similarity between block i's input and output hidden states.
 * - `ppl` (Shortened LLaMA, Kim et al. 2024): the calibration loss of the model with block i dropped (reported as
 *   its perplexity exp(loss)); the block whose removal hurts least goes first.
 * - `taylor` (Shortened LLaMA): Σ over every weight of the block of |w·∂L/∂w| — the block group's importance with
 *   an element-level saliency (default `taylor-element`) and `sum` aggregation, computed by structured-core.
 */
import * as tf from '@tensorflow/tfjs';
import type { CausalLM, Saliency } from '@topiary/kernel';
import { Activations, windowBatches } from '@topiary/block-executor';
import { batchWindows, collectGradients, elementScores, groupImportance, saliencyLevel, windowsTensor } from '@topiary/structured-core';

export type BlockScore = 'block-influence' | 'ppl' | 'taylor';
export const BLOCK_SCORES: readonly BlockScore[] = ['block-influence', 'ppl', 'taylor'];

/**
 * Block Influence of every block, block by block over all calibration batches (the block executor: a streamed model
 * reads each block once).
 */
export async function blockInfluence(model: CausalLM, windows: readonly Int32Array[], batchSize: number): Promise<Float64Array> {
  const n = model.numBlocks;
  const cosSum = new Float64Array(n);
  const batches = windowBatches(windows, batchSize);
  const tokens = batches.reduce((a, b) => a + b.b * b.t, 0);
  const acts = Activations.embed(model, batches);
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

/** Mean next-token loss with block `skip` dropped (−1: none), over all windows. */
export async function lossWithout(model: CausalLM, windows: readonly Int32Array[], batchSize: number, skip: number): Promise<number> {
  let total = 0;
  let count = 0;
  for (const batch of batchWindows(windows, batchSize)) {
    const ids = windowsTensor(batch);
    const [b, t] = ids.shape;
    const loss = tf.tidy(() => {
      let h = model.embed(tf.slice(ids, [0, 0], [b, t - 1]));
      for (let i = 0; i < model.numBlocks; i++) if (i !== skip) h = model.block(i, h);
      const logits = model.head(h);
      const v = logits.shape[2];
      const logp = tf.logSoftmax(tf.reshape(logits, [b * (t - 1), v]));
      const targets = tf.reshape(tf.slice(ids, [0, 1], [b, t - 1]), [b * (t - 1)]) as tf.Tensor1D;
      return tf.neg(tf.sum(tf.mul(logp, tf.oneHot(targets, v))));
    });
    total += (await loss.data())[0]!;
    count += b * (t - 1);
    loss.dispose();
    ids.dispose();
  }
  return total / count;
}

export async function droppedLoss(model: CausalLM, windows: readonly Int32Array[], batchSize: number): Promise<Float64Array> {
  const out = new Float64Array(model.numBlocks);
  for (let i = 0; i < model.numBlocks; i++) out[i] = await lossWithout(model, windows, batchSize, i);
  return out;
}

/** Σ |w·g| (or another element-level saliency) over every parameter of each block. */
export async function blockTaylor(model: CausalLM, windows: readonly Int32Array[], batchSize: number, saliency: Saliency): Promise<Float64Array> {
  const blocks = model.groups(['block']).sort((a, b) => a.layer! - b.layer!);
  const params = new Set(blocks.flatMap((g) => g.members.map((m) => m.param)));
  const grads = await collectGradients(model, windows, { batchSize, params });
  return groupImportance(blocks, elementScores(model, saliency, grads), saliencyLevel(saliency), 'sum');
}
