/**
 * Autoregressive generation with a key/value cache: the prompt is fed once, then one token per step.
 * Sampling: greedy (temperature 0), temperature, top-k, top-p (nucleus), from a seeded generator.
 */
import * as tf from '@tensorflow/tfjs-core';
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
  /** Called with each new token id as it is produced, and the index of its prompt (0 for a single prompt). */
  onToken?: (id: number, sequence: number) => void;
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

/**
 * Generate up to maxTokens new ids after `prompt` (which must be non-empty, e.g. [bosId, ...]).
 *
 * Given several prompts (all of one length), the sequences are decoded together: one decode step feeds one token of
 * every sequence ([n, 1] ids), so per-step dispatch — which dominates small models — is paid once for all of them.
 * Sequence i samples from its own generator seeded `seed + i`, so each result equals what a call with that prompt and
 * seed alone gives (greedy: the same tokens). A sequence that reaches EOS stops (with stopAtEos); the step loop
 * ends when every sequence has stopped.
 */
export function generate(model: LlamaModel, prompt: readonly number[], options?: GenerateOptions): number[];
export function generate(model: LlamaModel, prompts: readonly (readonly number[])[], options?: GenerateOptions): number[][];
export function generate(model: LlamaModel, prompt: readonly number[] | readonly (readonly number[])[], options: GenerateOptions = {}): number[] | number[][] {
  const many = prompt.length > 0 && Array.isArray(prompt[0]);
  const prompts = (many ? prompt : [prompt]) as readonly (readonly number[])[];
  const out = generateMany(model, prompts, options);
  return many ? out : out[0]!;
}

function generateMany(model: LlamaModel, prompts: readonly (readonly number[])[], options: GenerateOptions): number[][] {
  if (prompts.length === 0) throw new TopiaryError('E_USAGE', 'generate needs at least one prompt', { where: 'prompt' });
  const length = prompts[0]!.length;
  if (length === 0) throw new TopiaryError('E_USAGE', 'generate needs at least one prompt token (e.g. BOS)', { where: 'prompt' });
  // one cache position per step for every sequence: prompts of other lengths would need padding and per-row masks
  if (prompts.some((p) => p.length !== length)) {
    throw new TopiaryError('E_USAGE', `prompts decoded together must have one length, got ${[...new Set(prompts.map((p) => p.length))].join(', ')}`, { where: 'prompt' });
  }
  const maxTokens = options.maxTokens ?? 128;
  const { temperature = 0, topK = 0, topP = 1 } = options;
  if (!(temperature >= 0)) throw new TopiaryError('E_USAGE', `temperature must be >= 0, got ${temperature}`, { where: '--temperature' });
  if (!(topP > 0 && topP <= 1)) throw new TopiaryError('E_USAGE', `top-p must be in (0, 1], got ${topP}`, { where: '--top-p' });
  if (!(Number.isInteger(topK) && topK >= 0)) throw new TopiaryError('E_USAGE', `top-k must be a non-negative integer, got ${topK}`, { where: '--top-k' });
  const limit = Math.min(maxTokens, model.config.maxSeqLen - length);
  if (limit < 0) throw new TopiaryError('E_USAGE', `prompt of ${length} tokens exceeds maxSeqLen ${model.config.maxSeqLen}`, { where: 'prompt' });
  const n = prompts.length;
  const vocab = model.config.vocabSize;
  const stopAtEos = options.stopAtEos ?? true;
  const seed = options.seed ?? 0;
  const rngs = prompts.map((_, i) => new SeededRandom(seed + i));
  const out: number[][] = prompts.map(() => []);
  const done = new Array<boolean>(n).fill(false);
  let running = n;
  const cache = model.newCache();
  // the prompt through the model's forward, then one token per step through the backend's fused decode step when
  // it has one (one dispatch per step instead of ~20 per block; the cache is then sized for this call's tokens)
  const fused = model.canDecodeStep;
  const capacity = length + limit;
  try {
    let input = Int32Array.from(prompts.flat());
    let t = length;
    for (let step = 0; step < limit && running > 0; step++) {
      let logits: tf.Tensor2D;
      if (fused && t === 1) {
        logits = model.decodeStep(input, cache, capacity);
      } else {
        const ids = tf.tensor2d(input, [n, t], 'int32');
        logits = model.decode(ids, cache);
        ids.dispose();
      }
      // a view of the engine's memory where it allows (a fresh 128 KB copy per step faults its pages in: ~0.3 ms
      // of a 4 ms step at 15M), read up before anything else can run a tensor operation
      const rows = model.hostValues(logits);
      const next = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        // a stopped sequence is fed its last token again (the batch keeps its shape); its logits are not read
        next[i] = done[i] ? out[i]!.at(-1)! : sampleToken(rows.subarray(i * vocab, (i + 1) * vocab), { temperature, topK, topP }, rngs[i]!);
      }
      logits.dispose();
      for (let i = 0; i < n; i++) {
        if (done[i]) continue;
        const id = next[i]!;
        out[i]!.push(id);
        options.onToken?.(id, i);
        if (id === model.config.eosId && stopAtEos) {
          done[i] = true;
          running--;
        }
      }
      input = next;
      t = 1;
    }
  } finally {
    model.disposeCache(cache);
  }
  return out;
}
