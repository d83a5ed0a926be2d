/**
 * llama2.c checkpoints (`.bin`), three header versions:
 *  - legacy v0: seven int32 `dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len` (negative vocab
 *    ⇒ a separate classifier at the end), then float32 tensors kind by kind, plus two unused RoPE tables;
 *  - v1: uint32 magic 0x616b3432 ("ak42"), int32 version 1, the same seven int32, a byte `shared_classifier`,
 *    zero padding to 256 bytes; float32 tensors: norms first, then embedding and the matrices;
 *  - v2: as v1 with version 2 and an int32 `group_size` after the flag; norms float32, the matrices as symmetric
 *    int8 (Q8_0) — all int8 values first, then all float32 scales, one per group of `group_size` values.
 * llama2.c rotates adjacent pairs (2i, 2i+1) of each head; our model (like Hugging Face) rotates i with i + d/2, so
 * q and k rows are permuted at load time: within each head the even rows first, then the odd ones.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { TopiaryError, type ModelConfig } from '@topiary/kernel';
import { makeConfig, parameterShapes, type LlamaConfig } from '../config.js';
import { OpenFiles, readAll, type WeightSource } from './source.js';
import { EMBED, FINAL_NORM, LM_HEAD, inputNormName, linearName, postNormName } from '../names.js';

export const LLAMA2C_MAGIC = 0x616b3432;

export interface Llama2cHeader {
  version: 0 | 1 | 2;
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
  groupSize: number;
  /** Byte offset of the first tensor. */
  dataStart: number;
}

function fail(file: string, where: string, message: string, hint?: string): TopiaryError {
  return new TopiaryError('E_FORMAT', message, { file, where, ...(hint ? { hint } : {}) });
}

function readAt(fd: number, length: number, position: number, file: string, what: string): Buffer {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) throw fail(file, what, `file ends inside ${what}`, 'the file is truncated');
    got += n;
  }
  return buf;
}

export function readLlama2cHeader(fd: number, size: number, file: string): Llama2cHeader {
  if (size < 28) throw fail(file, 'header', `file has ${size} bytes, less than a llama2.c header (28)`, 'the file is truncated');
  const first = readAt(fd, Math.min(size, 256), 0, file, 'header');
  const magic = first.readUInt32LE(0);
  let version: 0 | 1 | 2 = 0;
  let p = 0;
  if (magic === LLAMA2C_MAGIC) {
    if (size < 256) throw fail(file, 'header', `a versioned llama2.c header needs 256 bytes, the file has ${size}`, 'the file is truncated');
    const v = first.readInt32LE(4);
    if (v !== 1 && v !== 2) throw fail(file, 'version', `unknown llama2.c format version ${v} (known: 1, 2)`);
    version = v;
    p = 8;
  }
  const fields = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'] as const;
  const values = fields.map((_, i) => first.readInt32LE(p + 4 * i));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabRaw, seqLen] = values as [number, number, number, number, number, number, number];
  fields.forEach((name, i) => {
    const v = values[i]!;
    const ok = name === 'vocab_size' ? v !== 0 : v > 0;
    if (!ok) throw fail(file, name, `header field ${name} = ${v} is not valid`, 'this is not a llama2.c checkpoint, or it is damaged');
  });
  if (dim % nHeads !== 0) throw fail(file, 'n_heads', `dim ${dim} is not divisible by n_heads ${nHeads}`);
  if (nHeads % nKvHeads !== 0) throw fail(file, 'n_kv_heads', `n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`);
  if ((dim / nHeads) % 2 !== 0) throw fail(file, 'n_heads', `head size ${dim / nHeads} must be even`);
  let sharedClassifier = vocabRaw > 0;
  let groupSize = 0;
  if (version >= 1) {
    if (vocabRaw < 0) throw fail(file, 'vocab_size', `vocab_size ${vocabRaw} must be positive in a version ${version} file`);
    sharedClassifier = first.readUInt8(p + 28) !== 0;
    if (version === 2) {
      groupSize = first.readInt32LE(p + 29);
      if (groupSize <= 0 || dim % groupSize !== 0) throw fail(file, 'group_size', `group_size ${groupSize} must be a positive divisor of dim ${dim}`);
    }
  }
  return {
    version,
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    vocabSize: Math.abs(vocabRaw),
    seqLen,
    sharedClassifier,
    groupSize,
    dataStart: version === 0 ? 28 : 256,
  };
}

export function configFromLlama2c(h: Llama2cHeader): LlamaConfig {
  return makeConfig({
    vocabSize: h.vocabSize,
    dim: h.dim,
    nLayers: h.nLayers,
    nHeads: h.nHeads,
    nKvHeads: h.nKvHeads,
    hiddenDim: h.hiddenDim,
    maxSeqLen: h.seqLen,
    normEps: 1e-5,
    ropeTheta: 10000,
    tiedEmbeddings: h.sharedClassifier,
    bosId: 1,
    eosId: 2,
  });
}

interface Piece {
  /** HF name, or null for skipped data (legacy RoPE tables). */
  name: string | null;
  count: number;
  quantized: boolean;
}

/** The tensors in file order, with their element counts. */
function layout(h: Llama2cHeader): Piece[] {
  const hd = h.dim / h.nHeads;
  const kv = h.nKvHeads * hd;
  const L = [...Array(h.nLayers).keys()];
  const per = (name: (i: number) => string, count: number, quantized: boolean): Piece[] => L.map((i) => ({ name: name(i), count, quantized }));
  const q = h.version === 2;
  const emb: Piece = { name: EMBED, count: h.vocabSize * h.dim, quantized: q };
  const matrices = [
    ...per((i) => linearName(i, 'q'), h.dim * h.dim, q),
    ...per((i) => linearName(i, 'k'), kv * h.dim, q),
    ...per((i) => linearName(i, 'v'), kv * h.dim, q),
    ...per((i) => linearName(i, 'o'), h.dim * h.dim, q),
  ];
  const ffn = [
    ...per((i) => linearName(i, 'gate'), h.hiddenDim * h.dim, q),
    ...per((i) => linearName(i, 'down'), h.dim * h.hiddenDim, q),
    ...per((i) => linearName(i, 'up'), h.hiddenDim * h.dim, q),
  ];
  const cls: Piece[] = h.sharedClassifier ? [] : [{ name: LM_HEAD, count: h.vocabSize * h.dim, quantized: q }];
  if (h.version === 0) {
    return [
      emb,
      ...per(inputNormName, h.dim, false),
      ...matrices,
      ...per(postNormName, h.dim, false),
      ...ffn,
      { name: FINAL_NORM, count: h.dim, quantized: false },
      { name: null, count: h.seqLen * (hd / 2) * 2, quantized: false },
      ...cls,
    ];
  }
  const norms = [...per(inputNormName, h.dim, false), ...per(postNormName, h.dim, false), { name: FINAL_NORM, count: h.dim, quantized: false }];
  return [...norms, emb, ...matrices, ...ffn, ...cls];
}

/**
 * The file size the header implies, computed from the header fields alone (no per-tensor list): a damaged
 * `n_layers` of 16 million must be refused before `layout` builds a list with an entry per layer and tensor.
 */
export function impliedSize(h: Llama2cHeader): number {
  const hd = h.dim / h.nHeads;
  const kv = h.nKvHeads * hd;
  const q = h.version === 2;
  const matrix = (count: number): number => (q ? count + (count / h.groupSize) * 4 : count * 4);
  const perLayer = 2 * h.dim * 4 + matrix(h.dim * h.dim) * 2 + matrix(kv * h.dim) * 2 + matrix(h.hiddenDim * h.dim) * 3;
  const embeddings = matrix(h.vocabSize * h.dim) * (h.sharedClassifier ? 1 : 2);
  const rope = h.version === 0 ? h.seqLen * (hd / 2) * 2 * 4 : 0;
  return h.dataStart + h.nLayers * perLayer + embeddings + h.dim * 4 + rope;
}

function expectedSize(h: Llama2cHeader, pieces: Piece[]): number {
  let bytes = h.dataStart;
  for (const p of pieces) bytes += p.quantized ? p.count + (p.count / h.groupSize) * 4 : p.count * 4;
  return bytes;
}

/** Permute the rows of q or k [nHeads·hd, dim] from interleaved pairs to rotate-half order. */
export function interleavedToRotateHalf(w: Float32Array, nHeads: number, headDim: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let j = 0; j < half; j++) {
      const base = h * headDim;
      out.set(w.subarray((base + 2 * j) * cols, (base + 2 * j + 1) * cols), (base + j) * cols);
      out.set(w.subarray((base + 2 * j + 1) * cols, (base + 2 * j + 2) * cols), (base + half + j) * cols);
    }
  }
  return out;
}

export interface Llama2cCheckpoint {
  header: Llama2cHeader;
  config: ModelConfig;
  weights: Map<string, Float32Array>;
}

/** Where one tensor is: float32 at `offset`, or int8 values at `offset` with float32 scales at `scales`. */
interface Placed {
  count: number;
  offset: number;
  scales?: number;
}

/**
 * A llama2.c checkpoint read on demand: the header is checked against the file size, every tensor placed by byte
 * offset; `read` converts one tensor (dequantising v2's int8 groups, permuting q/k rows to rotate-half order).
 */
export class Llama2cSource implements WeightSource {
  readonly dtype = 'float32' as const;
  private readonly files = new OpenFiles();
  /** Tensor shapes by name, for reads by rows. */
  private shapes: Map<string, number[]> | undefined;

  private constructor(
    readonly path: string,
    readonly header: Llama2cHeader,
    readonly config: LlamaConfig,
    private readonly placed: ReadonlyMap<string, Placed>,
  ) {}

  static open(file: string): Llama2cSource {
    const files = new OpenFiles();
    const fd = files.fd(file);
    try {
      const size = fstatSync(fd).size;
      const header = readLlama2cHeader(fd, size, file);
      // Checked before the tensor list is built: a damaged header cannot make us build a list of millions of entries.
      const implied = impliedSize(header);
      if (size < implied) {
        throw fail(file, 'size', `file has ${size} bytes but its header (dim ${header.dim}, ${header.nLayers} layers, vocab ${header.vocabSize}) needs ${implied}`, 'the file is truncated');
      }
      const pieces = layout(header);
      const expected = expectedSize(header, pieces);
      if (size < expected) {
        throw fail(file, 'size', `file has ${size} bytes but its header (dim ${header.dim}, ${header.nLayers} layers, vocab ${header.vocabSize}) needs ${expected}`, 'the file is truncated');
      }
      if (size > expected) {
        throw fail(file, 'size', `file has ${size - expected} bytes more than its header (v${header.version}) describes`, 'the header does not match the weights');
      }
      // v2 stores every quantized tensor's int8 values first, in file order, then all their scales in the same order
      const placed = new Map<string, Placed>();
      let pos = header.dataStart;
      const quantized: { name: string; placed: Placed }[] = [];
      for (const p of pieces) {
        if (p.quantized) {
          const at: Placed = { count: p.count, offset: pos };
          quantized.push({ name: p.name!, placed: at });
          pos += p.count;
          continue;
        }
        if (p.name !== null) placed.set(p.name, { count: p.count, offset: pos });
        pos += p.count * 4;
      }
      for (const q of quantized) {
        q.placed.scales = pos;
        pos += (q.placed.count / header.groupSize) * 4;
        placed.set(q.name, q.placed);
      }
      return new Llama2cSource(file, header, configFromLlama2c(header), placed);
    } finally {
      files.close();
    }
  }

  private at(name: string): Placed {
    const at = this.placed.get(name);
    if (!at) throw fail(this.path, name, `missing tensor "${name}"`);
    return at;
  }

  /** Elements [first, first + count) of a tensor, dequantised. */
  private readRange(name: string, at: Placed, first: number, count: number): Float32Array {
    const fd = this.files.fd(this.path);
    const out = new Float32Array(count);
    if (at.scales === undefined) {
      out.set(new Float32Array(toAligned(readAt(fd, count * 4, at.offset + first * 4, this.path, `tensor ${name}`))));
      return out;
    }
    const g = this.header.groupSize;
    const values = readAt(fd, count, at.offset + first, this.path, `tensor ${name}`);
    const scales = new Float32Array(toAligned(readAt(fd, (count / g) * 4, at.scales + (first / g) * 4, this.path, `scales of ${name}`)));
    for (let i = 0; i < count; i++) out[i] = values.readInt8(i) * scales[Math.floor(i / g)]!;
    return out;
  }

  read(name: string): Float32Array {
    const at = this.at(name);
    const w = this.readRange(name, at, 0, at.count);
    const { nLayers, headDim, nHeads, nKvHeads, dim } = this.config;
    for (let i = 0; i < nLayers; i++) {
      if (name === linearName(i, 'q')) return interleavedToRotateHalf(w, nHeads, headDim, dim);
      if (name === linearName(i, 'k')) return interleavedToRotateHalf(w, nKvHeads, headDim, dim);
    }
    return w;
  }

  readRows(name: string, start: number, count: number): Float32Array {
    const shape = (this.shapes ??= parameterShapes(this.config)).get(name);
    const [rows, cols] = shape?.length === 2 ? (shape as [number, number]) : [0, 0];
    if (!shape || cols === 0 || !Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > rows) {
      throw new TopiaryError('E_INTERNAL', `readRows: rows [${start}, ${start + count}) of "${name}" ${shape ? `[${shape.join(', ')}]` : '(not a tensor of this model)'}`, { file: this.path, where: name });
    }
    const { nLayers } = this.config;
    for (let i = 0; i < nLayers; i++) {
      // q and k rows are permuted within each head on the way in (interleaved → rotate-half): read whole, then cut
      if (name === linearName(i, 'q') || name === linearName(i, 'k')) return this.read(name).slice(start * cols, (start + count) * cols);
    }
    return this.readRange(name, this.at(name), start * cols, count * cols);
  }

  close(): void {
    this.files.close();
  }
}

/** A buffer's bytes in an ArrayBuffer of their own (typed-array views need aligned offsets). */
function toAligned(buf: Buffer): ArrayBuffer {
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
}

/** Read a llama2.c checkpoint into HF-named float32 weights (q/k rows in rotate-half order). */
export function readLlama2c(file: string): Llama2cCheckpoint {
  const source = Llama2cSource.open(file);
  return { header: source.header, config: source.config, weights: readAll(source) };
}

/** Whether the first bytes look like a llama2.c checkpoint (magic, or a plausible legacy header). */
export function looksLikeLlama2c(file: string): boolean {
  try {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size < 28) return false;
      const b = Buffer.alloc(28);
      readSync(fd, b, 0, 28, 0);
      if (b.readUInt32LE(0) === LLAMA2C_MAGIC) return true;
      const v = [0, 1, 2, 3, 4, 6].map((i) => b.readInt32LE(4 * i));
      return v.every((x) => x > 0 && x < 1 << 24) && b.readInt32LE(20) !== 0;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}
