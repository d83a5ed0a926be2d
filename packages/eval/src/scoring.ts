/**
 * The one place that turns a model's logits into log-probabilities of given next tokens. Sequences of unequal
 * length are right-padded in a batch: attention is causal, so padding after a position never changes its logits.
 * Only `log p(target)` and `log Σ exp(logits)` per position come back to the host (not the [b, t, vocab] logits).
 */
import { TopiaryError, type CausalLM, type TargetScores } from '@topiary/kernel';
import { Activations, passes, type Batch } from '@topiary/block-executor';

/** Log-probabilities of each sequence's next tokens, and whether each was the argmax. */
export interface SequenceScores {
  logProbs: Float64Array[];
  greedy: Uint8Array[];
}

interface PaddedBatch extends Batch {
  sequences: readonly (readonly number[] | Int32Array)[];
  targets: Int32Array;
}

/** The padded ids of s[0..n−2] and the targets s[1..n−1] of one batch (padding targets are 0). */
function padBatch(model: CausalLM, sequences: readonly (readonly number[] | Int32Array)[], padId: number): PaddedBatch {
  const b = sequences.length;
  const t = Math.max(...sequences.map((s) => s.length));
  const vocab = model.config.vocabSize;
  if (t < 2) throw new TopiaryError('E_INTERNAL', 'scoring needs sequences of at least 2 tokens');
  // The last token of each sequence is only a target: the model sees positions 0..t−2.
  const w = t - 1;
  const ids = new Int32Array(b * w).fill(padId);
  const targets = new Int32Array(b * w);
  for (let i = 0; i < b; i++) {
    const s = sequences[i]!;
    for (let p = 0; p < s.length; p++) {
      const id = s[p]!;
      if (!(id >= 0 && id < vocab)) throw new TopiaryError('E_DATA', `token id ${id} is outside the model's vocabulary (${vocab})`, { hint: 'use the tokenizer the model was trained with (--tokenizer)' });
      if (p < w) ids[i * w + p] = id;
      if (p >= 1) targets[i * w + p - 1] = id;
    }
  }
  return { ids, b, t: w, sequences, targets };
}

function toScores(batch: PaddedBatch, scores: TargetScores): SequenceScores {
  const logProbs: Float64Array[] = [];
  const greedy: Uint8Array[] = [];
  batch.sequences.forEach((s, i) => {
    const n = s.length - 1;
    const lp = new Float64Array(n);
    const g = new Uint8Array(n);
    for (let p = 0; p < n; p++) {
      const k = i * batch.t + p;
      lp[p] = scores.target[k]! - scores.lse[k]!;
      g[p] = scores.target[k]! >= scores.max[k]! ? 1 : 0;
    }
    logProbs.push(lp);
    greedy.push(g);
  });
  return { logProbs, greedy };
}

export interface ScoreOptions {
  padId?: number;
  /** Host bytes of hidden states one block-by-block pass may keep (streamed models group batches up to it). */
  activationBytes?: number;
  /** Called with each batch's scores as soon as its pass is done (batches in order). */
  onBatch?: (k: number, scores: SequenceScores) => void | Promise<void>;
  /** Called after each block of a pass of several batches (streamed models: progress inside a long pass). */
  onBlock?: (block: number, pass: number, passes: number) => void;
}

/**
 * Score many batches of sequences, block by block (the block executor): a pass embeds its batches, runs block 0 over
 * all of them, then block 1, …, then scores the targets. A streamed model groups as many batches into a pass as
 * their hidden states fit the activation budget, so each block is read once per pass; an in-memory model runs a
 * pass per batch. Each batch goes through the same operations either way, so the scores do not depend on grouping.
 */
export async function scoreBatches(model: CausalLM, batches: readonly (readonly (readonly number[] | Int32Array)[])[], options: ScoreOptions = {}): Promise<SequenceScores[]> {
  const padded = batches.map((seqs) => padBatch(model, seqs, options.padId ?? 0));
  const groups = passes(padded.length, (k) => padded[k]!.ids.length * model.config.dim * 4, { streamed: model.streamed, budget: options.activationBytes });
  const out: SequenceScores[] = [];
  for (const [p, group] of groups.entries()) {
    const batches = group.map((k) => padded[k]!);
    const scores = passScores(model, batches, group.length > 1 ? (i) => options.onBlock?.(i, p, groups.length) : undefined);
    for (const [j, k] of group.entries()) {
      out[k] = toScores(batches[j]!, scores[j]!);
      await options.onBatch?.(k, out[k]);
    }
  }
  return out;
}

/** One pass of the block executor: embed the batches, run every block over all of them, score their targets. */
function passScores(model: CausalLM, batches: readonly PaddedBatch[], onBlock?: (block: number) => void): TargetScores[] {
  const acts = Activations.embed(model, batches);
  try {
    for (let i = 0; i < model.numBlocks; i++) {
      acts.advance(model, i);
      onBlock?.(i);
    }
    return batches.map((batch, j) => acts.withBatch(j, (h) => model.scoreTargets(h, batch.targets)));
  } finally {
    acts.dispose();
  }
}

/**
 * For each sequence s (length n ≥ 2), the natural-log probability of s[p+1] given s[0..p], for p = 0..n−2, and
 * whether s[p+1] is the argmax (greedy) token there. One pass over the padded batch of s[0..n−2].
 */
export function nextTokenLogProbs(model: CausalLM, sequences: readonly (readonly number[] | Int32Array)[], padId = 0): SequenceScores {
  if (sequences.length === 0) return { logProbs: [], greedy: [] };
  const batch = padBatch(model, sequences, padId);
  return toScores(batch, passScores(model, [batch])[0]!);
}
