/**
 * Calibration windows drawn the way the Wanda and SparseGPT reference code draws them.
 *
 * - **A plain text file** (their `get_wikitext2`: Wanda `lib/data.py` lines 19–35, SparseGPT `datautils.py` lines
 *   10–31): the corpus is joined and tokenized ONCE — here the file's text is the joined text, encoded as one
 *   document `[BOS] + encode(text)` exactly as a Hugging Face LLaMA tokenizer encodes it (one BOS in front, newlines
 *   kept as tokens) — and every window starts uniformly in [0, N − seqLen − 1] (Python's inclusive
 *   `random.randint(0, N − seqLen − 1)`). No BOS inside a window, no paragraph boundaries. `calibrationCorpus()`
 *   tokenizes a text file that way; `sampleCalibrationSet` then uses the `stream` rule.
 * - **Separate documents** (JSON lines, a folder; their `get_c4`, Wanda `lib/data.py` lines 38–58): pick a document
 *   uniformly among those longer than `seqLen` tokens, then a start uniformly in [0, len − seqLen − 1]. The original
 *   draws from C4's ~356,000 documents, so its windows come from 128 different documents; `auto` uses this rule only
 *   when at least `samples` documents are long enough, and otherwise treats the documents as one stream (each keeps
 *   its BOS, as in packed pretraining) — so a corpus with a handful of long documents can never collapse onto them.
 * Draws are with replacement, from the kernel's SeededRandom (not Python's Mersenne Twister: the same rule, other
 * windows).
 */
import { TopiaryError } from '@topiary/kernel';
import { SeededRandom } from '@topiary/linalg';
import type { Tokenizer } from '@topiary/kernel';
import { documentCount, tokenizeCached, type CachedTokenized, type CachedTokenizeOptions, type TokenizedCorpus } from './tokens.js';

export interface CalibrationOptions {
  samples: number;
  seqLen: number;
  seed: number;
  /** `auto` (default): documents when at least `samples` are longer than `seqLen`, else the stream. */
  mode?: 'auto' | 'documents' | 'stream';
  /** Named in errors. */
  file?: string;
}

export interface CalibrationSet {
  windows: Int32Array[];
  mode: 'documents' | 'stream';
  /** For each window: its document (−1 in stream mode) and its start offset in the whole stream. */
  origins: { doc: number; start: number }[];
}

export function sampleCalibrationSet(source: TokenizedCorpus | Int32Array, options: CalibrationOptions): CalibrationSet {
  const corpus: TokenizedCorpus = source instanceof Int32Array ? { source: options.file ?? '<tokens>', tokens: source, docStarts: Int32Array.from([0, source.length]) } : source;
  const file = options.file ?? corpus.source;
  const { samples, seqLen } = options;
  if (!Number.isInteger(samples) || samples < 1) throw new TopiaryError('E_USAGE', `must be a positive integer, got ${samples}`, { where: '--samples' });
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new TopiaryError('E_USAGE', `must be a positive integer, got ${seqLen}`, { where: '--seqlen' });
  const total = corpus.tokens.length;
  if (total <= seqLen) {
    throw new TopiaryError('E_DATA', `the calibration corpus has ${total} tokens, fewer than one window of --seqlen ${seqLen} plus one`, {
      file,
      where: '--seqlen',
      hint: 'use a longer corpus or a smaller --seqlen',
    });
  }
  if (total < samples * seqLen) {
    throw new TopiaryError('E_DATA', `the calibration corpus has ${total} tokens, fewer than --samples ${samples} × --seqlen ${seqLen} = ${samples * seqLen}`, {
      file,
      where: '--samples',
      hint: 'use a longer corpus, fewer --samples or a smaller --seqlen',
    });
  }
  const eligible: number[] = [];
  for (let d = 0; d < documentCount(corpus); d++) if (corpus.docStarts[d + 1]! - corpus.docStarts[d]! > seqLen) eligible.push(d);
  // one document (a plain text file) is the joined-corpus rule, whatever `samples` is
  const auto = documentCount(corpus) > 1 && eligible.length >= samples ? 'documents' : 'stream';
  const mode = options.mode === 'documents' || options.mode === 'stream' ? options.mode : auto;
  if (mode === 'documents' && eligible.length === 0) {
    throw new TopiaryError('E_DATA', `no document is longer than --seqlen ${seqLen} tokens`, { file, where: '--seqlen', hint: "use mode 'stream' or a smaller --seqlen" });
  }
  const rng = new SeededRandom(options.seed);
  const windows: Int32Array[] = [];
  const origins: { doc: number; start: number }[] = [];
  for (let s = 0; s < samples; s++) {
    let start: number;
    let doc = -1;
    if (mode === 'documents') {
      doc = eligible[rng.int(eligible.length)]!;
      const len = corpus.docStarts[doc + 1]! - corpus.docStarts[doc]!;
      start = corpus.docStarts[doc]! + rng.int(len - seqLen);
    } else {
      start = rng.int(total - seqLen);
    }
    windows.push(corpus.tokens.slice(start, start + seqLen));
    origins.push({ doc, start });
  }
  return { windows, mode, origins };
}

/** `samples` windows of `seqLen` token ids (the rule above), deterministic for a seed. */
export function sampleCalibration(source: TokenizedCorpus | Int32Array, options: CalibrationOptions): Int32Array[] {
  return sampleCalibrationSet(source, options).windows;
}

/**
 * Tokenize a calibration source the way the rule above reads it: every text file is ONE document with one BOS in
 * front (a plain file: the joined-corpus rule; a folder: one document per file, as C4's documents are), every JSON
 * line one document with its BOS. Cached on disk like any corpus.
 */
export async function calibrationCorpus(path: string, tokenizer: Tokenizer, options: Omit<CachedTokenizeOptions, 'split' | 'bos' | 'eos'> = {}): Promise<CachedTokenized> {
  return tokenizeCached(path, tokenizer, { ...options, split: 'file', bos: true, eos: false });
}
