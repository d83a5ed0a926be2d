/**
 * The one place that turns a model's logits into log-probabilities of given next tokens. Sequences of unequal
 * length are right-padded in a batch: attention is causal, so padding after a position never changes its logits.
 * Only `log p(target)` and `log Σ exp(logits)` per position come back to the host (not the [b, t, vocab] logits).
 */
import * as tf from '@tensorflow/tfjs';
import { TopiaryError, type CausalLM } from '@topiary/kernel';

/**
 * For each sequence s (length n ≥ 2), the natural-log probability of s[p+1] given s[0..p], for p = 0..n−2, and
 * whether s[p+1] is the argmax (greedy) token there. One forward pass over the padded batch of s[0..n−2].
 */
export function nextTokenLogProbs(model: CausalLM, sequences: readonly (readonly number[] | Int32Array)[], padId = 0): { logProbs: Float64Array[]; greedy: Uint8Array[] } {
  if (sequences.length === 0) return { logProbs: [], greedy: [] };
  const b = sequences.length;
  const t = Math.max(...sequences.map((s) => s.length));
  const vocab = model.config.vocabSize;
  if (t < 2) throw new TopiaryError('E_INTERNAL', 'scoring needs sequences of at least 2 tokens');
  // The last token of each sequence is only a target: the model sees positions 0..t−2.
  const w = t - 1;
  const ids = new Int32Array(b * w).fill(padId);
  const gatherIdx = new Int32Array(b * w);
  for (let i = 0; i < b; i++) {
    const s = sequences[i]!;
    for (let p = 0; p < s.length; p++) {
      const id = s[p]!;
      if (!(id >= 0 && id < vocab)) throw new TopiaryError('E_DATA', `token id ${id} is outside the model's vocabulary (${vocab})`, { hint: 'use the tokenizer the model was trained with (--tokenizer)' });
      if (p < w) ids[i * w + p] = id;
    }
    for (let p = 0; p < t - 1; p++) gatherIdx[i * (t - 1) + p] = (i * (t - 1) + p) * vocab + (p + 1 < s.length ? s[p + 1]! : 0);
  }
  const [target, lse, max] = tf.tidy(() => {
    const shifted = model.forward(tf.tensor2d(ids, [b, w], 'int32'));
    const flat = shifted.reshape([-1]);
    return [
      tf.gather(flat, tf.tensor1d(gatherIdx, 'int32')),
      tf.logSumExp(shifted, -1).reshape([-1]),
      tf.max(shifted, -1).reshape([-1]),
    ] as const;
  });
  const targetV = target.dataSync();
  const lseV = lse.dataSync();
  const maxV = max.dataSync();
  tf.dispose([target, lse, max]);
  const logProbs: Float64Array[] = [];
  const greedy: Uint8Array[] = [];
  for (let i = 0; i < b; i++) {
    const n = sequences[i]!.length - 1;
    const lp = new Float64Array(n);
    const g = new Uint8Array(n);
    for (let p = 0; p < n; p++) {
      const k = i * (t - 1) + p;
      lp[p] = targetV[k]! - lseV[k]!;
      g[p] = targetV[k]! >= maxV[k]! ? 1 : 0;
    }
    logProbs.push(lp);
    greedy.push(g);
  }
  return { logProbs, greedy };
}
