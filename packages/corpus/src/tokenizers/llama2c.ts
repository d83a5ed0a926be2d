/**
 * The llama2.c binary tokenizer (`tok512.bin`, `tokenizer.bin`) and an encoder that reproduces llama2.c's `encode`
 * exactly: a dummy-prefix space, one piece per UTF-8 character (or byte-fallback ids `byte + 3` when the character
 * is not a piece), then repeated merges of the adjacent pair whose concatenation is a piece with the highest score
 * (leftmost pair on ties). The merge loop runs on a heap with lazy invalidation, O(n log n) instead of llama2.c's
 * O(n²) scan, and picks the same pair at every step (highest score, then leftmost).
 *
 * File format (little-endian): int32 max_token_length, then per id: float32 score, int32 len, len bytes of the piece.
 * The vocabulary size is not stored; entries are read until the end of the file.
 */
import { readFile } from 'node:fs/promises';
import { ioError, TopiaryError, type EncodeOptions, type Tokenizer } from '@topiary/kernel';

export interface Llama2cVocab {
  maxTokenLength: number;
  /** Pieces as raw bytes; the SentencePiece "▁" is stored as an ordinary space. */
  pieces: Uint8Array[];
  scores: Float32Array;
}

/** Parse a llama2.c tokenizer file; throws E_FORMAT naming the file and the byte offset where it stops making sense. */
export function parseLlama2cTokenizer(bytes: Uint8Array, file = '<buffer>'): Llama2cVocab {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (message: string): never => {
    throw new TopiaryError('E_FORMAT', message, {
      file,
      hint: 'expected a llama2.c tokenizer .bin (int32 max_token_length, then float32 score, int32 len, len bytes per token)',
    });
  };
  if (bytes.byteLength < 4) fail(`too short for a llama2.c tokenizer (${bytes.byteLength} bytes)`);
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0 || maxTokenLength > 1024) fail(`implausible max_token_length ${maxTokenLength} at byte 0`);
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  let off = 4;
  while (off < bytes.byteLength) {
    if (off + 8 > bytes.byteLength) fail(`truncated entry for token ${pieces.length} at byte ${off}`);
    const score = view.getFloat32(off, true);
    const len = view.getInt32(off + 4, true);
    if (!Number.isFinite(score)) fail(`token ${pieces.length} has a non-finite score at byte ${off}`);
    if (len < 0 || len > maxTokenLength + 8 || off + 8 + len > bytes.byteLength) {
      fail(`token ${pieces.length} has an impossible length ${len} at byte ${off + 4}`);
    }
    pieces.push(bytes.slice(off + 8, off + 8 + len));
    scores.push(score);
    off += 8 + len;
  }
  if (pieces.length < 3) fail(`only ${pieces.length} tokens; a llama2.c tokenizer has at least <unk>, <s>, </s>`);
  return { maxTokenLength, pieces, scores: Float32Array.from(scores) };
}

const latin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

/** A binary min-heap of merge candidates ordered by (score desc, left position asc). */
class CandidateHeap {
  private readonly score: number[] = [];
  private readonly left: number[] = [];
  private readonly stamp: number[] = [];
  private readonly stamp2: number[] = [];
  get size(): number {
    return this.score.length;
  }
  private before(a: number, b: number): boolean {
    return this.score[a]! > this.score[b]! || (this.score[a] === this.score[b] && this.left[a]! < this.left[b]!);
  }
  private swap(a: number, b: number): void {
    [this.score[a], this.score[b]] = [this.score[b]!, this.score[a]!];
    [this.left[a], this.left[b]] = [this.left[b]!, this.left[a]!];
    [this.stamp[a], this.stamp[b]] = [this.stamp[b]!, this.stamp[a]!];
    [this.stamp2[a], this.stamp2[b]] = [this.stamp2[b]!, this.stamp2[a]!];
  }
  push(score: number, left: number, stamp: number, stamp2: number): void {
    this.score.push(score);
    this.left.push(left);
    this.stamp.push(stamp);
    this.stamp2.push(stamp2);
    let i = this.score.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): { score: number; left: number; stamp: number; stamp2: number } {
    const top = { score: this.score[0]!, left: this.left[0]!, stamp: this.stamp[0]!, stamp2: this.stamp2[0]! };
    const last = this.score.length - 1;
    this.swap(0, last);
    this.score.pop();
    this.left.pop();
    this.stamp.pop();
    this.stamp2.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.score.length && this.before(l, m)) m = l;
      if (r < this.score.length && this.before(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}

export class Llama2cTokenizer implements Tokenizer {
  readonly name: string;
  readonly vocabSize: number;
  readonly bosId = 1;
  readonly eosId = 2;
  readonly unkId = 0;
  readonly maxTokenLength: number;
  private readonly pieceKeys: string[];
  private readonly scores: Float32Array;
  /** Piece (latin1 view of its bytes) → id; on duplicate pieces the lowest id wins. */
  private readonly lookup = new Map<string, number>();
  /** id → byte for the `<0xHH>` byte-fallback pieces. */
  private readonly bytePiece = new Map<number, number>();

  constructor(vocab: Llama2cVocab, name = 'llama2c') {
    this.name = name;
    this.vocabSize = vocab.pieces.length;
    this.maxTokenLength = vocab.maxTokenLength;
    this.scores = vocab.scores;
    this.pieceKeys = vocab.pieces.map(latin1);
    this.pieceKeys.forEach((key, id) => {
      if (!this.lookup.has(key)) this.lookup.set(key, id);
      const m = BYTE_PIECE.exec(key);
      if (m) this.bytePiece.set(id, Number.parseInt(m[1]!, 16));
    });
  }

  /** The raw piece of an id as text (byte pieces stay `<0xHH>`); what llama2.c prints before its decode rules. */
  piece(id: number): string {
    const key = this.pieceKeys[id];
    if (key === undefined) throw new TopiaryError('E_DATA', `token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`, { where: 'token id' });
    return Buffer.from(key, 'latin1').toString('utf8');
  }

  score(id: number): number {
    return this.scores[id] ?? Number.NEGATIVE_INFINITY;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (options.bos) out.push(this.bosId);
    if (text.length > 0) {
      // Symbols: the dummy prefix " " then one per code point (or its byte-fallback ids).
      const ids: number[] = [];
      const space = this.lookup.get(' ');
      if (space !== undefined) ids.push(space);
      for (const ch of text) {
        const bytes = Buffer.from(ch, 'utf8');
        const id = this.lookup.get(bytes.toString('latin1'));
        if (id !== undefined) ids.push(id);
        // a vocabulary without the 256 byte pieces (damaged or custom) falls back to <unk>, never to an id it lacks
        else for (const b of bytes) ids.push(b + 3 < this.vocabSize ? b + 3 : this.unkId);
      }
      for (const id of this.merge(ids)) out.push(id); // no spread: a whole file can be millions of ids
    }
    if (options.eos) out.push(this.eosId);
    return out;
  }

  /** Greedy highest-score pair merging, in place on a linked list of symbols. */
  private merge(ids: number[]): number[] {
    const n = ids.length;
    const id = Int32Array.from(ids);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    // A candidate is valid while neither symbol has changed since it was pushed.
    const version = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new CandidateHeap();
    const consider = (i: number): void => {
      const j = next[i]!;
      if (i < 0 || j < 0) return;
      const merged = this.lookup.get(this.pieceKeys[id[i]!]! + this.pieceKeys[id[j]!]!);
      if (merged !== undefined) heap.push(this.scores[merged]!, i, version[i]!, version[j]!);
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    while (heap.size > 0) {
      const { left: i, stamp, stamp2 } = heap.pop();
      const j = next[i]!;
      if (!alive[i] || j < 0 || stamp !== version[i] || stamp2 !== version[j]) continue;
      const merged = this.lookup.get(this.pieceKeys[id[i]!]! + this.pieceKeys[id[j]!]!);
      if (merged === undefined) continue;
      id[i] = merged;
      version[i]! += 1;
      alive[j] = 0;
      next[i] = next[j]!;
      if (next[j]! >= 0) prev[next[j]!] = i;
      if (prev[i]! >= 0) consider(prev[i]!);
      consider(i);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0 && i < n; i = next[i]!) out.push(id[i]!);
    return out;
  }

  /**
   * Ids → text. BOS/EOS/UNK are skipped; `<0xHH>` pieces become that byte; the dummy-prefix space of the first
   * piece is removed (so `decode(encode(s)) === s`); bytes are joined before UTF-8 decoding, so a character split
   * over byte pieces comes back whole.
   */
  decode(ids: readonly number[]): string {
    const chunks: Buffer[] = [];
    let first = true;
    for (const tid of ids) {
      if (tid === this.bosId || tid === this.eosId || tid === this.unkId) continue;
      const key = this.pieceKeys[tid];
      if (key === undefined) throw new TopiaryError('E_DATA', `token id ${tid} is outside the vocabulary (0..${this.vocabSize - 1})`, { where: 'token id' });
      const byte = this.bytePiece.get(tid);
      let bytes = byte !== undefined ? Buffer.from([byte]) : Buffer.from(key, 'latin1');
      if (first && byte === undefined && bytes[0] === 0x20) bytes = bytes.subarray(1);
      first = false;
      chunks.push(bytes);
    }
    return Buffer.concat(chunks).toString('utf8');
  }
}

export async function loadLlama2cTokenizer(path: string): Promise<Llama2cTokenizer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw ioError(e, path, 'read the tokenizer');
  }
  return new Llama2cTokenizer(parseLlama2cTokenizer(bytes, path), 'llama2c');
}
