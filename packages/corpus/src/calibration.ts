/**
 * Calibration windows as the Wanda and SparseGPT reference code draws them (their `get_c4`): pick a document
 * uniformly at random among those longer than `seqLen` tokens, then a start uniformly in [0, len − seqLen − 1]
 * (Python's inclusive `randint(0, len − seqLen − 1)`), and take `seqLen` tokens. Their rejection loop over all
 * documents draws uniformly among the long-enough ones, which is what we do directly. Draws are with replacement.
 *
 * When no document is long enough (e.g. TinyStories paragraphs vs seqLen 512), the documents are treated as one
 * concatenated stream, as their `get_wikitext2` does: a start uniform in [0, N − seqLen − 1]. `mode: 'documents'`
 * or `'stream'` forces one rule.
 */
import { SeededRandom, TopiaryError } from '@topiary/kernel';
import { documentCount, type TokenizedCorpus } from './tokens.js';

export interface CalibrationOptions {
  samples: number;
  seqLen: number;
  seed: number;
  /** `auto` (default): documents when any is long enough, else the stream. */
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
  const mode = options.mode === 'documents' || options.mode === 'stream' ? options.mode : eligible.length > 0 ? 'documents' : 'stream';
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
