/**
 * Tokenized corpora, packing, shuffling, splits and the on-disk token cache.
 *
 * Document rule: each document is encoded on its own as `[BOS] + encode(doc) + [EOS]`, BOS on by default and EOS off
 * by default (the llama2.c / TinyStories convention: every story starts with BOS, none ends with EOS). Documents are
 * then concatenated into one token stream; `docStarts` keeps where each begins.
 *
 * Packing rule: the stream is cut into consecutive non-overlapping blocks of exactly `blockSize` tokens, in
 * document order; documents are not padded and may span two blocks (a BOS inside a block marks the next
 * document); the final partial block is dropped. Shuffling happens on blocks (or documents), never on tokens.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { ioError, TopiaryError, type Corpus, type Tokenizer } from '@topiary/kernel';
import { SeededRandom } from '@topiary/linalg';
import { writeFileAtomic } from '@topiary/files';
import { openCorpus, type SourceOptions } from './sources.js';

export interface DocumentRules {
  /** Prepend BOS to every document. Default true. */
  bos?: boolean;
  /** Append EOS to every document. Default false. */
  eos?: boolean;
}

export interface TokenizedCorpus {
  /** Where it came from (a path, for error messages). */
  source: string;
  /** All documents' tokens back to back. */
  tokens: Int32Array;
  /** Start offset of each document in `tokens`, plus one final entry equal to tokens.length. */
  docStarts: Int32Array;
}

export function documentCount(corpus: TokenizedCorpus): number {
  return corpus.docStarts.length - 1;
}

export function documentTokens(corpus: TokenizedCorpus, index: number): Int32Array {
  return corpus.tokens.subarray(corpus.docStarts[index]!, corpus.docStarts[index + 1]!);
}

/** A growable Int32 buffer. */
class IntBuffer {
  private data = new Int32Array(1024);
  length = 0;
  push(values: readonly number[]): void {
    if (this.length + values.length > this.data.length) {
      let size = this.data.length * 2;
      while (size < this.length + values.length) size *= 2;
      const grown = new Int32Array(size);
      grown.set(this.data.subarray(0, this.length));
      this.data = grown;
    }
    for (let i = 0; i < values.length; i++) this.data[this.length + i] = values[i]!;
    this.length += values.length;
  }
  take(): Int32Array {
    return this.data.slice(0, this.length);
  }
}

/** Stream each document's token ids (for corpora too big to hold tokenized). */
export async function* tokenStream(corpus: Corpus, tokenizer: Tokenizer, rules: DocumentRules = {}): AsyncGenerator<number[]> {
  for await (const doc of corpus.documents()) yield tokenizer.encode(doc, { bos: rules.bos ?? true, eos: rules.eos ?? false });
}

/** Stream packed blocks of `blockSize` tokens (packing rule above) without holding the whole stream. */
export async function* packStream(docs: AsyncIterable<readonly number[]>, blockSize: number): AsyncGenerator<Int32Array> {
  let block = new Int32Array(blockSize);
  let fill = 0;
  for await (const ids of docs) {
    for (const id of ids) {
      block[fill++] = id;
      if (fill === blockSize) {
        yield block;
        block = new Int32Array(blockSize);
        fill = 0;
      }
    }
  }
}

export async function tokenizeCorpus(corpus: Corpus, tokenizer: Tokenizer, rules: DocumentRules = {}): Promise<TokenizedCorpus> {
  const tokens = new IntBuffer();
  const starts: number[] = [0];
  for await (const ids of tokenStream(corpus, tokenizer, rules)) {
    tokens.push(ids);
    starts.push(tokens.length);
  }
  return { source: corpus.name, tokens: tokens.take(), docStarts: Int32Array.from(starts) };
}

/** Non-overlapping blocks of exactly `blockSize` tokens (views into the stream); the partial tail is dropped. */
export function packBlocks(corpus: TokenizedCorpus | Int32Array, blockSize: number): Int32Array[] {
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new TopiaryError('E_USAGE', `block size must be a positive integer, got ${blockSize}`);
  const tokens = corpus instanceof Int32Array ? corpus : corpus.tokens;
  const out: Int32Array[] = [];
  for (let start = 0; start + blockSize <= tokens.length; start += blockSize) out.push(tokens.subarray(start, start + blockSize));
  return out;
}

/** A deterministic permutation of 0..n-1 (Fisher–Yates with the kernel's SeededRandom). */
export function seededPermutation(n: number, seed: number): number[] {
  return new SeededRandom(seed).shuffle(Array.from({ length: n }, (_, i) => i));
}

/** A shuffled copy; the same seed gives the same order on every machine. */
export function seededShuffle<T>(items: readonly T[], seed: number): T[] {
  return seededPermutation(items.length, seed).map((i) => items[i]!);
}

/**
 * Split documents into train and valid: documents are permuted with `seed`, the first
 * `round(validFraction · n)` (at least 1 when validFraction > 0 and n ≥ 2) go to valid, the rest to train; each part
 * keeps the original document order. Splitting by document keeps text of one document out of both parts.
 */
export function splitTrainValid(corpus: TokenizedCorpus, validFraction: number, seed: number): { train: TokenizedCorpus; valid: TokenizedCorpus } {
  if (!(validFraction >= 0 && validFraction < 1)) throw new TopiaryError('E_USAGE', `valid fraction must be in [0, 1), got ${validFraction}`);
  const n = documentCount(corpus);
  let nValid = Math.round(validFraction * n);
  if (validFraction > 0 && n >= 2) nValid = Math.max(1, Math.min(n - 1, nValid));
  const perm = seededPermutation(n, seed);
  const isValid = new Uint8Array(n);
  for (let i = 0; i < nValid; i++) isValid[perm[i]!] = 1;
  const pick = (want: number): TokenizedCorpus => {
    const tokens = new IntBuffer();
    const starts = [0];
    for (let d = 0; d < n; d++) {
      if (isValid[d] !== want) continue;
      tokens.push(Array.from(documentTokens(corpus, d)));
      starts.push(tokens.length);
    }
    return { source: `${corpus.source}#${want ? 'valid' : 'train'}`, tokens: tokens.take(), docStarts: Int32Array.from(starts) };
  };
  return { train: pick(0), valid: pick(1) };
}

// ---- cache -------------------------------------------------------------------------------------------------

const MAGIC = 'TPTOKv1\n';

/** A stable fingerprint of a tokenizer's behaviour: its identity plus the encoding of a probe text. */
export function tokenizerFingerprint(tokenizer: Tokenizer): string {
  const probe = ' Once upon a time, 3 Ünïcödé 🙂 words\n\ttabs  spaces. The end.';
  return createHash('sha256')
    .update(JSON.stringify([tokenizer.name, tokenizer.vocabSize, tokenizer.bosId, tokenizer.eosId, tokenizer.encode(probe)]))
    .digest('hex');
}

/** sha256 of a file or of every file in a folder (paths and contents), streamed. */
export async function sha256OfSource(path: string): Promise<string> {
  const { statSync, readdirSync } = await import('node:fs');
  const hash = createHash('sha256');
  const walk = async (p: string, rel: string): Promise<void> => {
    if (statSync(p).isDirectory()) {
      for (const name of readdirSync(p).sort()) if (!name.startsWith('.')) await walk(join(p, name), `${rel}/${name}`);
      return;
    }
    hash.update(`${rel}\0`);
    for await (const chunk of createReadStream(p)) hash.update(chunk as Buffer);
  };
  try {
    await walk(path, '');
  } catch (e) {
    throw ioError(e, path, 'read the corpus');
  }
  return hash.digest('hex');
}

export function defaultCacheDir(): string {
  return process.env.TOPIARY_CACHE ?? join(homedir(), '.cache', 'topiary', 'tokens');
}

export interface CachedTokenizeOptions extends SourceOptions, DocumentRules {
  /** Where `.tokens` files live. Default `$TOPIARY_CACHE` or `~/.cache/topiary/tokens`. */
  cacheDir?: string;
  /** Set false to skip the cache entirely. */
  cache?: boolean;
}

export interface CachedTokenized extends TokenizedCorpus {
  /** The cache file (written or read). */
  cacheFile?: string;
  fromCache: boolean;
  key: string;
}

function encodeCache(key: string, corpus: TokenizedCorpus): Uint8Array[] {
  const header = Buffer.from(JSON.stringify({ key, docs: documentCount(corpus), tokens: corpus.tokens.length }), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length, 0);
  const pad = Buffer.alloc((4 - ((MAGIC.length + 4 + header.length) % 4)) % 4, 0x20);
  const bytes = (a: Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return [Buffer.from(MAGIC, 'latin1'), len, header, pad, bytes(corpus.docStarts), bytes(corpus.tokens)];
}

function decodeCache(file: string, key: string, source: string): TokenizedCorpus | undefined {
  try {
    const buf = readFileSync(file);
    if (buf.subarray(0, MAGIC.length).toString('latin1') !== MAGIC) return undefined;
    const hlen = buf.readUInt32LE(MAGIC.length);
    const headerEnd = MAGIC.length + 4 + hlen;
    const header = JSON.parse(buf.subarray(MAGIC.length + 4, headerEnd).toString('utf8')) as { key: string; docs: number; tokens: number };
    if (header.key !== key) return undefined;
    const start = headerEnd + ((4 - (headerEnd % 4)) % 4);
    if (buf.length !== start + 4 * (header.docs + 1 + header.tokens)) return undefined;
    const all = new Int32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length));
    return { source, docStarts: all.slice(0, header.docs + 1), tokens: all.slice(header.docs + 1) };
  } catch {
    return undefined; // a damaged cache is rebuilt, never trusted
  }
}

/**
 * Tokenize a corpus file or folder once: the result is cached in `<cacheDir>/<name>.<key>.tokens`, keyed by the
 * sha256 of the source bytes, the tokenizer's fingerprint and the document/source rules, and written atomically.
 */
export async function tokenizeCached(path: string, tokenizer: Tokenizer, options: CachedTokenizeOptions = {}): Promise<CachedTokenized> {
  const rules = { bos: options.bos ?? true, eos: options.eos ?? false, split: options.split ?? 'blank-lines', field: options.field ?? 'text' };
  const key = createHash('sha256')
    .update(JSON.stringify({ source: await sha256OfSource(path), tokenizer: tokenizerFingerprint(tokenizer), rules, extensions: options.extensions ?? null }))
    .digest('hex');
  const file = join(options.cacheDir ?? defaultCacheDir(), `${basename(path)}.${key.slice(0, 16)}.tokens`);
  if (options.cache !== false && existsSync(file)) {
    const hit = decodeCache(file, key, path);
    if (hit) return { ...hit, cacheFile: file, fromCache: true, key };
  }
  const corpus = await tokenizeCorpus(openCorpus(path, options), tokenizer, rules);
  if (corpus.tokens.length === 0) throw new TopiaryError('E_DATA', 'the corpus is empty (no non-blank documents)', { file: path });
  if (options.cache === false) return { ...corpus, fromCache: false, key };
  writeFileAtomic(file, encodeCache(key, corpus));
  return { ...corpus, cacheFile: file, fromCache: false, key };
}
