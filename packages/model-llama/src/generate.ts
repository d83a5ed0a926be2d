/**
 * Autoregressive generation with a key/value cache: the prompt is fed once, then one token per step.
 * Sampling: greedy (temperature 0), temperature, top-k, top-p (nucleus), from a seeded generator.
 */
import * as tf from '@tensorflow/tfjs';
import { TopiaryError } from '@topiary/kernel';
import { SeededRandom } from '@topiary/linalg';
import type { LlamaModel } from './model.js';

export interface GenerateOptions {
  /** Tokens to generate at most (default 128). */
  maxTokens?: number;
  /** 0 = greedy (default); otherwise logits are divided by it before sampling. */
  temperature?: number;
  /** Sample only among the k most likely tokens (0 = all). */
  topK?: number;
  /** Sample only among the smallest set of tokens whose probability reaches p (1 = all). */
  topP?: number;
  seed?: number;
  /** Stop after the EOS token (default true; the EOS id is included in the output). */
  stopAtEos?: boolean;
  /** Called with each new token id as it is produced. */
  onToken?: (id: number) => void;
}

/** Pick the next token from one row of logits. */
export function sampleToken(logits: Float32Array, options: Pick<GenerateOptions, 'temperature' | 'topK' | 'topP'>, rng: SeededRandom): number {
  const temperature = options.temperature ?? 0;
  if (temperature <= 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  let order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
  const topK = options.topK ?? 0;
  if (topK > 0) order = order.slice(0, topK);
  const max = logits[order[0]!]!;
  let probs = order.map((i) => Math.exp((logits[i]! - max) / temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  const topP = options.topP ?? 1;
  if (topP < 1) {
    let cum = 0;
    let keep = 0;
    while (keep < probs.length) {
      cum += probs[keep]! / total;
      keep++;
      if (cum >= topP) break;
    }
    order = order.slice(0, keep);
    probs = probs.slice(0, keep);
    total = probs.reduce((a, b) => a + b, 0);
  }
  let r = rng.next() * total;
  for (let i = 0; i < probs.length; i++) {
    r -= probs[i]!;
    if (r < 0) return order[i]!;
  }
  return order[order.length - 1]!;
}

/** Generate up to maxTokens new ids after `prompt` (which must be non-empty, e.g. [bosId, ...]). */
export function generate(model: LlamaModel, prompt: readonly number[], options: GenerateOptions = {}): number[] {
  if (prompt.length === 0) throw new TopiaryError('E_USAGE', 'generate needs at least one prompt token (e.g. BOS)', { where: 'prompt' });
  const maxTokens = options.maxTokens ?? 128;
  const { temperature = 0, topK = 0, topP = 1 } = options;
  if (!(temperature >= 0)) throw new TopiaryError('E_USAGE', `temperature must be >= 0, got ${temperature}`, { where: '--temperature' });
  if (!(topP > 0 && topP <= 1)) throw new TopiaryError('E_USAGE', `top-p must be in (0, 1], got ${topP}`, { where: '--top-p' });
  if (!(Number.isInteger(topK) && topK >= 0)) throw new TopiaryError('E_USAGE', `top-k must be a non-negative integer, got ${topK}`, { where: '--top-k' });
  const limit = Math.min(maxTokens, model.config.maxSeqLen - prompt.length);
  if (limit < 0) throw new TopiaryError('E_USAGE', `prompt of ${prompt.length} tokens exceeds maxSeqLen ${model.config.maxSeqLen}`, { where: 'prompt' });
  const rng = new SeededRandom(options.seed ?? 0);
  const cache = model.newCache();
  const out: number[] = [];
  try {
    let input = [...prompt];
    for (let step = 0; step < limit; step++) {
      const ids = tf.tensor2d(input, [1, input.length], 'int32');
      const logits = model.decode(ids, cache);
      ids.dispose();
      const row = logits.dataSync() as Float32Array;
      logits.dispose();
      const next = sampleToken(row, { temperature, topK, topP }, rng);
      out.push(next);
      options.onToken?.(next);
      if (next === model.config.eosId && (options.stopAtEos ?? true)) break;
      input = [next];
    }
  } finally {
    model.disposeCache(cache);
  }
  return out;
}
