/**
 * Perplexity over a text file.
 *
 * Tokenization: the whole file (CRLF → LF) is encoded as ONE text, tokenized once. By default NO BOS is put in
 * front, so a number does not depend on whether a tokenizer adds BOS. `bos: true` puts a single BOS in front, as a
 * Hugging Face LLaMA tokenizer does in the Wanda/SparseGPT scripts (`tokenizer("\n\n".join(test))`); that shifts
 * every window by one token and conditions the first on BOS (stories260K on the shipped TinyStories head, 512-token
 * windows: 5.0512 without, 5.0482 with).
 *
 * Windows over the N tokens, window length L (`seqLen`):
 * - `stride` absent or equal to L — non-overlapping: ⌊N/L⌋ windows [kL, kL+L); the partial tail is dropped; in each
 *   window every token but the first is scored (it is predicted from the tokens before it in the same window), so
 *   ⌊N/L⌋·(L−1) tokens are scored. This is the Wanda/SparseGPT `eval_ppl` protocol.
 * - `stride` S < L — strided sliding windows, the Hugging Face guide's semantics: windows start at 0, S, 2S, …;
 *   a window is [begin, min(begin+L, N)); only its tokens past the previous window's end are scored (all of them
 *   in the first window, except position 0 which has no context); the loop stops after the window that reaches N
 *   (that last window may be shorter than L). Every token but the first is scored exactly once: N−1 tokens, each
 *   with at least L−S tokens of context (except in the first window).
 *
 * Result: token-weighted mean NLL (nats) over all scored tokens, ppl = exp(mean NLL), and the number scored.
 *
 * Also lm-eval's per-document metrics of a loglikelihood_rolling task (lm_eval/api/task.py v0.4.8
 * `PerplexityTask.process_results` / `count_words` / `count_bytes`; aggregations in lm_eval/api/metrics.py
 * `weighted_perplexity`, `bits_per_byte`), with the file as the one document and L = −(NLL sum):
 * word_perplexity = exp(−L / words), words = len(re.split(r"\s+", text)) (empty pieces at the ends count, as in
 * Python); byte_perplexity = exp(−L / bytes), bytes = UTF-8 bytes of the text (after CRLF → LF);
 * bits_per_byte = −L / bytes / ln 2. lm-eval's rolling windows score every token of the document (the first after
 * the prefix token); here that holds with `bos: true` and a stride (N−1 scored tokens of BOS + text) —
 * `allTokensScored` says whether it did.
 */
import { TopiaryError, type CausalLM, type EvalContext, type PerplexityResult, type Tokenizer } from '@topiary/kernel';
import { tokenizeCached } from '@topiary/corpus';
import { readText } from './data.js';
import { scoreBatches } from './scoring.js';

export interface PerplexitySpec {
  /** The text file to score. */
  file: string;
  /** Window length L; default the model's maxSeqLen. */
  seqLen?: number;
  /** Stride S ≤ L for sliding windows; absent (or = L) for non-overlapping windows. */
  stride?: number;
  /** Put one BOS in front of the text. Default false (see above). */
  bos?: boolean;
  /** Pre-tokenized ids (skips reading and encoding the file; `file` still names the source). */
  ids?: readonly number[] | Int32Array;
}

export interface PerplexityReport extends PerplexityResult {
  seqLen: number;
  stride: number;
  mode: 'non-overlapping' | 'strided';
  windows: number;
  /** Tokens in the encoded file. */
  totalTokens: number;
  /** Whether a BOS was put in front of the text. */
  bos: boolean;
  /** Σ NLL over the scored tokens (nats) = −loglikelihood. */
  nllSum: number;
  /** lm-eval's word/byte counts of the text and the metrics from them (absent when only ids were given). */
  words?: number;
  bytes?: number;
  wordPerplexity?: number;
  bytePerplexity?: number;
  bitsPerByte?: number;
  /** Every token of the text was scored (as lm-eval's rolling loglikelihood does). */
  allTokensScored: boolean;
}

/** lm-eval's `count_words`: len(re.split(r"\s+", doc)). */
export function countWords(text: string): number {
  return text.split(/\s+/u).length;
}

/** lm-eval's `count_bytes`: len(doc.encode("utf-8")). */
export function countBytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

export interface Window {
  begin: number;
  end: number;
  /** First window position (0-based, ≥ 1) whose token is scored. */
  scoreFrom: number;
}

/** The windows (and which of their tokens are scored) for N tokens, window L and stride S (see above). */
export function perplexityWindows(n: number, seqLen: number, stride = seqLen): Window[] {
  const windows: Window[] = [];
  if (stride === seqLen) {
    for (let k = 0; (k + 1) * seqLen <= n; k++) windows.push({ begin: k * seqLen, end: (k + 1) * seqLen, scoreFrom: 1 });
    return windows;
  }
  let prevEnd = 0;
  for (let begin = 0; begin < n; begin += stride) {
    const end = Math.min(begin + seqLen, n);
    const trgLen = end - prevEnd;
    windows.push({ begin, end, scoreFrom: Math.max(1, end - begin - trgLen) });
    prevEnd = end;
    if (end === n) break;
  }
  return windows;
}

export async function evaluatePerplexity(model: CausalLM, tokenizer: Tokenizer, spec: PerplexitySpec, ctx: EvalContext): Promise<PerplexityReport> {
  const seqLen = spec.seqLen ?? model.config.maxSeqLen;
  const stride = spec.stride ?? seqLen;
  if (!Number.isInteger(seqLen) || seqLen < 2) throw new TopiaryError('E_USAGE', `must be an integer ≥ 2, got ${seqLen}`, { where: '--seqlen' });
  if (seqLen > model.config.maxSeqLen) {
    throw new TopiaryError('E_USAGE', `${seqLen} is longer than the model's context (${model.config.maxSeqLen})`, { where: '--seqlen' });
  }
  if (!Number.isInteger(stride) || stride < 1 || stride > seqLen) {
    throw new TopiaryError('E_USAGE', `must be an integer in [1, --seqlen ${seqLen}], got ${stride}`, { where: '--stride' });
  }
  let ids: readonly number[] | Int32Array;
  if (spec.ids) ids = spec.ids;
  else {
    // The whole file as one document (a BOS in front only when asked), tokenized once and cached on disk:
    // re-evaluating after every pruning stage must not pay for tokenization again.
    try {
      ids = (await tokenizeCached(spec.file, tokenizer, { split: 'file', bos: spec.bos ?? false })).tokens;
    } catch (e) {
      if (e instanceof TopiaryError && e.code === 'E_DATA' && /empty/.test(e.message)) {
        throw new TopiaryError('E_DATA', 'the file is empty: nothing to score', { file: spec.file, where: '--perplexity' });
      }
      throw e;
    }
  }
  if (ids.length < seqLen) {
    throw new TopiaryError('E_DATA', `the file has ${ids.length} tokens, shorter than one window of --seqlen ${seqLen}`, {
      file: spec.file,
      where: '--seqlen',
      hint: 'use a longer file or a smaller --seqlen',
    });
  }
  let windows = perplexityWindows(ids.length, seqLen, stride);
  if (ctx.limit !== undefined) windows = windows.slice(0, Math.max(1, ctx.limit));
  const batchSize = Math.max(1, ctx.batchSize ?? 8);
  const task = `eval:perplexity`;
  let nll = 0;
  let tokens = 0;
  ctx.events.progress(task, 0, windows.length, spec.file, 'windows');
  const batches: Window[][] = [];
  for (let i = 0; i < windows.length; i += batchSize) batches.push(windows.slice(i, i + batchSize));
  const slice = (w: Window) => (ids instanceof Int32Array ? ids.subarray(w.begin, w.end) : ids.slice(w.begin, w.end));
  let done = 0;
  await scoreBatches(
    model,
    batches.map((batch) => batch.map(slice)),
    {
      activationBytes: ctx.activationBytes,
      onBlock: (block, pass, passes) => ctx.events.progress(`${task}:blocks`, block + 1, model.numBlocks, `pass ${pass + 1}/${passes}`, 'blocks'),
      onBatch: async (k, { logProbs }) => {
        if (ctx.signal?.aborted) throw new TopiaryError('E_INTERNAL', 'evaluation aborted');
        batches[k]!.forEach((w, j) => {
          const lp = logProbs[j]!;
          for (let q = w.scoreFrom; q < w.end - w.begin; q++) nll -= lp[q - 1]!;
          tokens += w.end - w.begin - w.scoreFrom;
        });
        done += batches[k]!.length;
        ctx.events.progress(task, done, windows.length, `ppl ${Math.exp(nll / tokens).toFixed(3)}`, 'windows');
        await new Promise((r) => setImmediate(r)); // let progress render and signals arrive
      },
    },
  );
  const mean = nll / tokens;
  if (!Number.isFinite(mean)) throw new TopiaryError('E_NUMERIC', `perplexity is not finite (mean NLL ${mean})`, { file: spec.file });
  ctx.events.metric('eval/ppl', Math.exp(mean), undefined, { file: spec.file });
  const bos = spec.ids ? false : (spec.bos ?? false);
  let textStats: Pick<PerplexityReport, 'words' | 'bytes' | 'wordPerplexity' | 'bytePerplexity' | 'bitsPerByte'> = {};
  if (!spec.ids) {
    const text = await readText(spec.file);
    const words = countWords(text);
    const bytes = countBytes(text);
    textStats = { words, bytes, wordPerplexity: Math.exp(nll / words), bytePerplexity: Math.exp(nll / bytes), bitsPerByte: nll / bytes / Math.LN2 };
  }
  return {
    kind: 'perplexity',
    source: spec.file,
    ppl: Math.exp(mean),
    nll: mean,
    tokens,
    seqLen,
    stride,
    mode: stride === seqLen ? 'non-overlapping' : 'strided',
    windows: windows.length,
    totalTokens: ids.length,
    bos,
    nllSum: nll,
    ...textStats,
    allTokensScored: bos && tokens === ids.length - 1,
  };
}
