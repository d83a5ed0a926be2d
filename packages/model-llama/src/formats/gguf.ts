/**
 * GGUF (llama.cpp's model file, version 3), written and read here. Layout, little-endian: magic "GGUF", u32 version,
 * u64 tensor count, u64 metadata count; the metadata key/values (u64-length strings, a u32 value type, the value;
 * arrays carry an element type and a u64 count); one info per tensor (name, u32 n_dims, u64 dims innermost first,
 * u32 ggml type, u64 offset relative to the data section); padding to `general.alignment` (32); the tensor data,
 * each tensor starting at a multiple of the alignment.
 *
 * The export follows llama.cpp's convert_hf_to_gguf.py for `LlamaForCausalLM`: architecture `llama`, the `llama.*`
 * hyperparameter keys, tensor names `token_embd`, `blk.N.attn_q`, …, `output_norm`, `output` (absent when the
 * embeddings are tied: llama.cpp then reuses token_embd), and q/k rows permuted from Hugging Face's rotate-half
 * layout back to the interleaved pairs llama.cpp's "normal" RoPE works on (`permute(w, n_head, n_head_kv)`).
 * One-dimensional tensors (norms) stay F32; with Q8_0, matrices whose rows are not a multiple of 32 fall back to F16
 * as llama.cpp's converter does. A non-uniform (width-pruned) model is written as it is under llama.cpp's `deci`
 * architecture (Llama-3.1-Nemotron-NAS: the llama block, normal RoPE, `deci.feed_forward_length`,
 * `deci.attention.head_count` and `deci.attention.head_count_kv` as per-layer arrays, every tensor created with
 * its layer's sizes). llama.cpp reads those keys as arrays for `llama` too, but creates `llama`'s tensors with layer
 * 0's sizes ("check_tensor_dims: tensor 'blk.1.attn_q.weight' has wrong shape"), so `llama` stays uniform: with
 * `nonUniform: 'pad'`, or when a layer has no heads/FFN or a non-standard query→kv head map (which `deci` would read
 * differently), the model is padded to a uniform one with zeros (padded.ts), which computes the same logits.
 * What the `llama` architecture cannot represent (q/k/v biases, Qwen2, RoPE scaling other than linear) is refused
 * before anything is written.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { TopiaryError, ioError } from '@topiary/kernel';
import { writeFileAtomic } from '@topiary/files';
import { headKvMap, isUniform, layerShape, type LlamaConfig } from '../config.js';
import { EMBED, FINAL_NORM, LM_HEAD, inputNormName, linearName, postNormName } from '../names.js';
import { padToUniform } from './padded.js';
import { bf16ToFloat, encodeTensor, floatToHalf, halfToFloat } from './safetensors.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** Metadata value types (gguf_metadata_value_type). */
export const GgufType = { UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12 } as const;
/** The ggml tensor types this module writes and reads. */
export const GgmlType = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
/** general.file_type (llama_ftype) per export dtype. */
const FILE_TYPE = { f32: 0, f16: 1, q8_0: 7, bf16: 32 } as const;
/** SentencePiece token types as llama.cpp stores them (tokenizer.ggml.token_type). */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export type GgufDtype = keyof typeof FILE_TYPE;
export const GGUF_DTYPES: readonly GgufDtype[] = ['f32', 'f16', 'bf16', 'q8_0'];

export type GgufValue =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'u64'; value: bigint }
  | { type: 'array'; itemType: 'u32' | 'i32' | 'f32' | 'string'; value: Array<number | string> };

export interface GgufTensorInfo {
  name: string;
  /** ggml dims, innermost (row length) first. */
  dims: number[];
  type: number;
  /** Byte offset from the start of the data section. */
  offset: number;
}

/** A vocabulary as llama.cpp's SentencePiece ("llama") tokenizer stores it. */
export interface GgufVocab {
  tokens: string[];
  scores: number[];
  types: number[];
  bosId: number;
  eosId: number;
  unkId: number;
}

// ----------------------------------------------------------------------------- writer

class ByteWriter {
  private chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer | Uint8Array): void {
    const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    this.chunks.push(buf);
    this.length += buf.byteLength;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.push(b);
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.byteLength);
    this.push(b);
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    if (n) this.push(Buffer.alloc(n));
  }
  parts(): Buffer[] {
    return this.chunks;
  }
}

const TYPE_CODE = { u32: GgufType.UINT32, i32: GgufType.INT32, f32: GgufType.FLOAT32, bool: GgufType.BOOL, string: GgufType.STRING, u64: GgufType.UINT64, array: GgufType.ARRAY } as const;

function writeValue(w: ByteWriter, v: GgufValue): void {
  w.u32(TYPE_CODE[v.type]);
  switch (v.type) {
    case 'u32':
      return w.u32(v.value);
    case 'i32':
      return w.i32(v.value);
    case 'f32':
      return w.f32(v.value);
    case 'bool':
      return w.push(Buffer.from([v.value ? 1 : 0]));
    case 'string':
      return w.str(v.value);
    case 'u64':
      return w.u64(v.value);
    case 'array':
      w.u32(TYPE_CODE[v.itemType]);
      w.u64(v.value.length);
      for (const x of v.value) {
        if (v.itemType === 'string') w.str(x as string);
        else if (v.itemType === 'u32') w.u32(x as number);
        else if (v.itemType === 'i32') w.i32(x as number);
        else w.f32(x as number);
      }
  }
}

/** Q8_0: blocks of 32 values, each an f16 scale d = max|x|/127 and 32 int8 round(x/d). */
export function quantizeQ8_0(data: Float32Array): Uint8Array {
  if (data.length % 32 !== 0) throw new TopiaryError('E_INTERNAL', `Q8_0 needs a multiple of 32 values, got ${data.length}`);
  const blocks = data.length / 32;
  const out = Buffer.alloc(blocks * 34);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(data[b * 32 + i]!));
    const d = amax / 127;
    const id = d ? 1 / d : 0;
    out.writeUInt16LE(floatToHalf(d), b * 34);
    for (let i = 0; i < 32; i++) out.writeInt8(Math.round(data[b * 32 + i]! * id), b * 34 + 2 + i);
  }
  return out;
}

function dequantizeQ8_0(buf: Buffer, count: number): Float32Array {
  const out = new Float32Array(count);
  for (let b = 0; b < count / 32; b++) {
    const d = halfToFloat(buf.readUInt16LE(b * 34));
    for (let i = 0; i < 32; i++) out[b * 32 + i] = d * buf.readInt8(b * 34 + 2 + i);
  }
  return out;
}

/** Bytes a tensor of `count` values takes in a ggml type. */
export function ggmlBytes(type: number, count: number): number {
  if (type === GgmlType.F32) return count * 4;
  if (type === GgmlType.F16 || type === GgmlType.BF16) return count * 2;
  if (type === GgmlType.Q8_0) return (count / 32) * 34;
  throw new TopiaryError('E_FORMAT', `unsupported ggml tensor type ${type}`);
}

/** HF rotate-half q/k rows → llama.cpp's interleaved pairs, per head (convert_hf_to_gguf.py `LlamaModel.permute`). */
export function permuteForGguf(w: Float32Array, nHeads: number, headDim: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    const base = h * headDim;
    for (let j = 0; j < half; j++) {
      out.set(w.subarray((base + j) * cols, (base + j + 1) * cols), (base + 2 * j) * cols);
      out.set(w.subarray((base + half + j) * cols, (base + half + j + 1) * cols), (base + 2 * j + 1) * cols);
    }
  }
  return out;
}

/** The inverse of permuteForGguf (interleaved pairs → rotate-half). */
export function unpermuteFromGguf(w: Float32Array, nHeads: number, headDim: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    const base = h * headDim;
    for (let j = 0; j < half; j++) {
      out.set(w.subarray((base + 2 * j) * cols, (base + 2 * j + 1) * cols), (base + j) * cols);
      out.set(w.subarray((base + 2 * j + 1) * cols, (base + 2 * j + 2) * cols), (base + half + j) * cols);
    }
  }
  return out;
}

/**
 * Why `config` cannot be written as a llama.cpp `llama` GGUF, or undefined when it can. Checked before any byte is
 * written; `where` names the config field (or flag) at fault.
 */
export function ggufRefusal(config: LlamaConfig): { message: string; where: string; hint: string } | undefined {
  const family = config.family ?? 'llama';
  if (family === 'qwen2' || config.attentionBias) {
    return {
      message: `${family === 'qwen2' ? 'a Qwen2 model' : 'a model with q/k/v projection biases'} cannot be exported as a llama.cpp "llama" GGUF: that architecture has no attention biases`,
      where: family === 'qwen2' ? 'config.family' : 'config.attentionBias',
      hint: 'export --format safetensors (llama.cpp converts Qwen2 checkpoints with its own qwen2 architecture)',
    };
  }
  if (config.ropeScaling && config.ropeScaling.type !== 'linear') {
    return {
      message: `RoPE scaling "${config.ropeScaling.type}" is not written to GGUF by this exporter (only linear scaling is)`,
      where: 'config.ropeScaling',
      hint: 'export --format safetensors and convert with llama.cpp\'s convert_hf_to_gguf.py, which writes rope_freqs for llama3 scaling',
    };
  }
  if (config.headDim % 2 !== 0) return { message: `head dimension ${config.headDim} is odd; RoPE needs pairs`, where: 'config.headDim', hint: 'export --format safetensors' };
  return undefined;
}

export interface GgufExportOptions {
  dtype?: GgufDtype;
  /** general.name */
  name?: string;
  vocab: GgufVocab;
  /**
   * A non-uniform model: `native` (default) writes it as it is, architecture `deci` with per-layer arrays
   * (falls back to padding when a layer has no heads, no FFN or a non-standard head→kv map); `pad` pads it to a
   * uniform `llama` model. `llama-arrays` writes per-layer arrays under `llama` (llama.cpp refuses that file: its
   * `llama` tensors are created with layer 0's sizes; kept for the check that shows it).
   */
  nonUniform?: 'native' | 'pad' | 'llama-arrays';
}

export interface GgufExportResult {
  /** The config written (padded to uniform when the model was not). */
  config: LlamaConfig;
  padded: boolean;
  /** The architecture written: `llama`, or `deci` for a non-uniform model written natively. */
  arch: 'llama' | 'deci';
  tensors: number;
  bytes: number;
}

/** Write a llama.cpp-loadable GGUF of a Llama model (see the module comment); refuses what it cannot represent. */
export function writeGguf(path: string, config: LlamaConfig, weights: ReadonlyMap<string, Float32Array>, options: GgufExportOptions): GgufExportResult {
  const refusal = ggufRefusal(config);
  if (refusal) throw new TopiaryError('E_USAGE', refusal.message, { where: refusal.where, hint: refusal.hint });
  const dtype = options.dtype ?? 'f32';
  if (!(dtype in FILE_TYPE)) throw new TopiaryError('E_USAGE', `GGUF dtype ${JSON.stringify(dtype)} is not one of ${GGUF_DTYPES.join(', ')}`, { where: '--dtype' });
  const { vocab } = options;
  if (vocab.tokens.length !== config.vocabSize || vocab.scores.length !== config.vocabSize || vocab.types.length !== config.vocabSize) {
    throw new TopiaryError('E_CONFIG', `the tokenizer has ${vocab.tokens.length} tokens but the model's vocabulary is ${config.vocabSize}`, { where: '--tokenizer' });
  }
  let cfg = config;
  let w = weights;
  let padded = false;
  const mode = options.nonUniform ?? 'native';
  const perLayer = !isUniform(config) && mode !== 'pad' && (mode === 'llama-arrays' || nativeLayersOk(config));
  if (!isUniform(config) && !perLayer) {
    const p = padToUniform(config, weights);
    cfg = p.config;
    w = p.weights;
    padded = true;
  }
  const arch = perLayer && mode === 'native' ? 'deci' : 'llama';
  const shapes = Array.from({ length: cfg.nLayers }, (_, i) => layerShape(cfg, i));
  const l0 = shapes[0];
  const nHeads = l0 ? l0.nHeads : cfg.nHeads;
  const nKvHeads = l0 ? l0.nKvHeads : cfg.nKvHeads;
  const hiddenDim = l0 ? l0.hiddenDim : cfg.hiddenDim;
  const sizeKey = (pick: (l: { nHeads: number; nKvHeads: number; hiddenDim: number }) => number, first: number): GgufValue =>
    perLayer ? { type: 'array', itemType: 'i32', value: shapes.map(pick) } : { type: 'u32', value: first };
  const get = (name: string): Float32Array => {
    const t = w.get(name);
    if (!t) throw new TopiaryError('E_INTERNAL', `no weight "${name}" to export`, { where: name });
    return t;
  };

  const kv: Array<[string, GgufValue]> = [
    ['general.architecture', { type: 'string', value: arch }],
    ['general.name', { type: 'string', value: options.name ?? 'topiary-export' }],
    ['general.alignment', { type: 'u32', value: GGUF_ALIGNMENT }],
    ['general.file_type', { type: 'u32', value: FILE_TYPE[dtype] }],
    [`${arch}.vocab_size`, { type: 'u32', value: cfg.vocabSize }],
    [`${arch}.context_length`, { type: 'u32', value: cfg.maxSeqLen }],
    [`${arch}.embedding_length`, { type: 'u32', value: cfg.dim }],
    [`${arch}.block_count`, { type: 'u32', value: cfg.nLayers }],
    [`${arch}.feed_forward_length`, sizeKey((l) => l.hiddenDim, hiddenDim)],
    [`${arch}.rope.dimension_count`, { type: 'u32', value: cfg.headDim }],
    [`${arch}.attention.head_count`, sizeKey((l) => l.nHeads, nHeads)],
    [`${arch}.attention.head_count_kv`, sizeKey((l) => l.nKvHeads, nKvHeads)],
    [`${arch}.attention.key_length`, { type: 'u32', value: cfg.headDim }],
    [`${arch}.attention.value_length`, { type: 'u32', value: cfg.headDim }],
    [`${arch}.attention.layer_norm_rms_epsilon`, { type: 'f32', value: cfg.normEps }],
    [`${arch}.rope.freq_base`, { type: 'f32', value: cfg.ropeTheta }],
  ];
  if (cfg.ropeScaling?.type === 'linear') {
    kv.push([`${arch}.rope.scaling.type`, { type: 'string', value: 'linear' }], [`${arch}.rope.scaling.factor`, { type: 'f32', value: cfg.ropeScaling.factor }]);
  }
  kv.push(
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: vocab.tokens }],
    ['tokenizer.ggml.scores', { type: 'array', itemType: 'f32', value: vocab.scores }],
    ['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: vocab.types }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: vocab.bosId }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: vocab.eosId }],
    ['tokenizer.ggml.unknown_token_id', { type: 'u32', value: vocab.unkId }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }],
  );

  // tensors in llama.cpp's names, [rows, cols] row-major → ggml dims [cols, rows]
  const list: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
  list.push({ name: 'token_embd.weight', shape: [cfg.vocabSize, cfg.dim], data: get(EMBED) });
  for (let i = 0; i < cfg.nLayers; i++) {
    const { headDim, dim } = cfg;
    const { nHeads, nKvHeads, hiddenDim } = shapes[i]!;
    list.push({ name: `blk.${i}.attn_norm.weight`, shape: [dim], data: get(inputNormName(i)) });
    list.push({ name: `blk.${i}.attn_q.weight`, shape: [nHeads * headDim, dim], data: permuteForGguf(get(linearName(i, 'q')), nHeads, headDim, dim) });
    list.push({ name: `blk.${i}.attn_k.weight`, shape: [nKvHeads * headDim, dim], data: permuteForGguf(get(linearName(i, 'k')), nKvHeads, headDim, dim) });
    list.push({ name: `blk.${i}.attn_v.weight`, shape: [nKvHeads * headDim, dim], data: get(linearName(i, 'v')) });
    list.push({ name: `blk.${i}.attn_output.weight`, shape: [dim, nHeads * headDim], data: get(linearName(i, 'o')) });
    list.push({ name: `blk.${i}.ffn_norm.weight`, shape: [dim], data: get(postNormName(i)) });
    list.push({ name: `blk.${i}.ffn_gate.weight`, shape: [hiddenDim, dim], data: get(linearName(i, 'gate')) });
    list.push({ name: `blk.${i}.ffn_up.weight`, shape: [hiddenDim, dim], data: get(linearName(i, 'up')) });
    list.push({ name: `blk.${i}.ffn_down.weight`, shape: [dim, hiddenDim], data: get(linearName(i, 'down')) });
  }
  list.push({ name: 'output_norm.weight', shape: [cfg.dim], data: get(FINAL_NORM) });
  if (!cfg.tiedEmbeddings) list.push({ name: 'output.weight', shape: [cfg.vocabSize, cfg.dim], data: get(LM_HEAD) });

  const blobs: Array<{ bytes: Uint8Array; offset: number }> = [];
  const infos: GgufTensorInfo[] = [];
  let offset = 0;
  for (const t of list) {
    const cols = t.shape[t.shape.length - 1]!;
    let type: number = GgmlType.F32;
    if (t.shape.length === 2) {
      if (dtype === 'f16') type = GgmlType.F16;
      else if (dtype === 'bf16') type = GgmlType.BF16;
      else if (dtype === 'q8_0') type = cols % 32 === 0 ? GgmlType.Q8_0 : GgmlType.F16;
    }
    const bytes = type === GgmlType.F32 ? encodeTensor(t.data, 'F32') : type === GgmlType.F16 ? encodeTensor(t.data, 'F16') : type === GgmlType.BF16 ? encodeTensor(t.data, 'BF16') : quantizeQ8_0(t.data);
    offset = Math.ceil(offset / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
    infos.push({ name: t.name, dims: [...t.shape].reverse(), type, offset });
    blobs.push({ bytes, offset });
    offset += bytes.byteLength;
  }

  const head = new ByteWriter();
  head.u32(GGUF_MAGIC);
  head.u32(GGUF_VERSION);
  head.u64(infos.length);
  head.u64(kv.length);
  for (const [key, value] of kv) {
    head.str(key);
    writeValue(head, value);
  }
  for (const info of infos) {
    head.str(info.name);
    head.u32(info.dims.length);
    for (const d of info.dims) head.u64(d);
    head.u32(info.type);
    head.u64(info.offset);
  }
  head.pad(GGUF_ALIGNMENT);
  const parts: Array<Buffer | Uint8Array> = [...head.parts()];
  let at = 0;
  for (const b of blobs) {
    if (b.offset > at) parts.push(Buffer.alloc(b.offset - at));
    parts.push(b.bytes);
    at = b.offset + b.bytes.byteLength;
  }
  writeFileAtomic(path, parts);
  return { config: cfg, padded, arch, tensors: infos.length, bytes: head.length + at };
}

/**
 * Whether llama.cpp's `deci` graph computes a non-uniform model as Topiary does: every layer with heads, kv heads
 * and FFN channels (a 0 means "attention-free"/"linear attention" there), and the standard query→kv head map.
 */
function nativeLayersOk(c: LlamaConfig): boolean {
  for (let i = 0; i < c.nLayers; i++) {
    const l = layerShape(c, i);
    if (l.nHeads <= 0 || l.nKvHeads <= 0 || l.hiddenDim <= 0 || l.nHeads % l.nKvHeads !== 0) return false;
    if (l.headKvMap) {
      const std = headKvMap({ nHeads: l.nHeads, nKvHeads: l.nKvHeads, hiddenDim: l.hiddenDim });
      if (!l.headKvMap.every((k, j) => k === std[j])) return false;
    }
  }
  return true;
}

// ----------------------------------------------------------------------------- reader

export interface GgufFile {
  file: string;
  version: number;
  metadata: Map<string, unknown>;
  tensors: GgufTensorInfo[];
  /** Absolute byte offset of the data section. */
  dataStart: number;
  alignment: number;
}

function formatError(file: string, message: string): TopiaryError {
  return new TopiaryError('E_FORMAT', message, { file, hint: 'expected a GGUF v3 file' });
}

/** Parse a GGUF file's header, metadata and tensor infos (checked against the file size). */
export function readGguf(file: string): GgufFile {
  let buf: Buffer;
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw ioError(e, file, 'open the GGUF file');
  }
  try {
    const size = fstatSync(fd).size;
    buf = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const n = readSync(fd, buf, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
  } finally {
    closeSync(fd);
  }
  let p = 0;
  const need = (n: number, what: string): void => {
    if (p + n > buf.length) throw formatError(file, `file ends inside ${what} (offset ${p})`);
  };
  const u32 = (what: string): number => (need(4, what), (p += 4), buf.readUInt32LE(p - 4));
  const u64 = (what: string): number => {
    need(8, what);
    const v = buf.readBigUInt64LE(p);
    p += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw formatError(file, `${what} ${v} is too large`);
    return Number(v);
  };
  const str = (what: string): string => {
    const n = u64(`${what} length`);
    need(n, what);
    p += n;
    return buf.toString('utf8', p - n, p);
  };
  const scalar = (type: number, what: string): unknown => {
    switch (type) {
      case GgufType.UINT8: return (need(1, what), buf.readUInt8(p++));
      case GgufType.INT8: return (need(1, what), buf.readInt8(p++));
      case GgufType.UINT16: return (need(2, what), (p += 2), buf.readUInt16LE(p - 2));
      case GgufType.INT16: return (need(2, what), (p += 2), buf.readInt16LE(p - 2));
      case GgufType.UINT32: return u32(what);
      case GgufType.INT32: return (need(4, what), (p += 4), buf.readInt32LE(p - 4));
      case GgufType.FLOAT32: return (need(4, what), (p += 4), buf.readFloatLE(p - 4));
      case GgufType.BOOL: return (need(1, what), buf.readUInt8(p++) !== 0);
      case GgufType.STRING: return str(what);
      case GgufType.UINT64: return (need(8, what), (p += 8), buf.readBigUInt64LE(p - 8));
      case GgufType.INT64: return (need(8, what), (p += 8), buf.readBigInt64LE(p - 8));
      case GgufType.FLOAT64: return (need(8, what), (p += 8), buf.readDoubleLE(p - 8));
      case GgufType.ARRAY: {
        const itemType = u32(`${what} item type`);
        const n = u64(`${what} count`);
        const out: unknown[] = [];
        for (let i = 0; i < n; i++) out.push(scalar(itemType, what));
        return out;
      }
      default:
        throw formatError(file, `unknown metadata value type ${type} in ${what}`);
    }
  };
  if (u32('magic') !== GGUF_MAGIC) throw formatError(file, 'not a GGUF file (bad magic)');
  const version = u32('version');
  if (version !== 3) throw formatError(file, `GGUF version ${version} is not 3`);
  const nTensors = u64('tensor count');
  const nKv = u64('metadata count');
  const metadata = new Map<string, unknown>();
  for (let i = 0; i < nKv; i++) {
    const key = str('metadata key');
    metadata.set(key, scalar(u32(`type of ${key}`), key));
  }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str('tensor name');
    const nd = u32(`dims of ${name}`);
    const dims = Array.from({ length: nd }, () => u64(`dims of ${name}`));
    tensors.push({ name, dims, type: u32(`type of ${name}`), offset: u64(`offset of ${name}`) });
  }
  const alignment = typeof metadata.get('general.alignment') === 'number' ? (metadata.get('general.alignment') as number) : GGUF_ALIGNMENT;
  const dataStart = Math.ceil(p / alignment) * alignment;
  for (const t of tensors) {
    if (t.offset % alignment !== 0) throw formatError(file, `tensor "${t.name}" starts at ${t.offset}, not a multiple of ${alignment}`);
    const end = dataStart + t.offset + ggmlBytes(t.type, t.dims.reduce((a, d) => a * d, 1));
    if (end > buf.length) throw formatError(file, `data of tensor "${t.name}" runs past the end of the file`);
  }
  return { file, version, metadata, tensors, dataStart, alignment };
}

/** Read one tensor of a parsed GGUF as float32 (F32, F16, BF16, Q8_0). */
export function readGgufTensor(g: GgufFile, name: string): Float32Array {
  const t = g.tensors.find((x) => x.name === name);
  if (!t) throw formatError(g.file, `no tensor "${name}"`);
  const count = t.dims.reduce((a, d) => a * d, 1);
  const bytes = ggmlBytes(t.type, count);
  const fd = openSync(g.file, 'r');
  const buf = Buffer.alloc(bytes);
  try {
    readSync(fd, buf, 0, bytes, g.dataStart + t.offset);
  } finally {
    closeSync(fd);
  }
  const out = new Float32Array(count);
  if (t.type === GgmlType.F32) new Uint8Array(out.buffer).set(buf);
  else if (t.type === GgmlType.F16) for (let i = 0; i < count; i++) out[i] = halfToFloat(buf.readUInt16LE(i * 2));
  else if (t.type === GgmlType.BF16) for (let i = 0; i < count; i++) out[i] = bf16ToFloat(buf.readUInt16LE(i * 2));
  else return dequantizeQ8_0(buf, count);
  return out;
}

/** The Hugging Face weights of a llama GGUF written by writeGguf (q/k permuted back), for checks and round trips. */
export function ggufToHfWeights(g: GgufFile, config: LlamaConfig): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  out.set(EMBED, readGgufTensor(g, 'token_embd.weight'));
  for (let i = 0; i < config.nLayers; i++) {
    const l = layerShape(config, i);
    const { headDim, dim } = config;
    out.set(inputNormName(i), readGgufTensor(g, `blk.${i}.attn_norm.weight`));
    out.set(linearName(i, 'q'), unpermuteFromGguf(readGgufTensor(g, `blk.${i}.attn_q.weight`), l.nHeads, headDim, dim));
    out.set(linearName(i, 'k'), unpermuteFromGguf(readGgufTensor(g, `blk.${i}.attn_k.weight`), l.nKvHeads, headDim, dim));
    out.set(linearName(i, 'v'), readGgufTensor(g, `blk.${i}.attn_v.weight`));
    out.set(linearName(i, 'o'), readGgufTensor(g, `blk.${i}.attn_output.weight`));
    out.set(postNormName(i), readGgufTensor(g, `blk.${i}.ffn_norm.weight`));
    out.set(linearName(i, 'gate'), readGgufTensor(g, `blk.${i}.ffn_gate.weight`));
    out.set(linearName(i, 'up'), readGgufTensor(g, `blk.${i}.ffn_up.weight`));
    out.set(linearName(i, 'down'), readGgufTensor(g, `blk.${i}.ffn_down.weight`));
  }
  out.set(FINAL_NORM, readGgufTensor(g, 'output_norm.weight'));
  if (!config.tiedEmbeddings) out.set(LM_HEAD, readGgufTensor(g, 'output.weight'));
  return out;
}

/**
 * A GGUF vocabulary from a llama.cpp-style SentencePiece vocabulary as llama2.c stores it (pieces with "▁" written
 * as a space, `\n<s>\n` / `\n</s>\n` for bos/eos): spaces back to "▁", <unk>/<s>/</s> restored, `<0xHH>` pieces
 * typed BYTE, bos/eos CONTROL, id 0 UNKNOWN.
 */
export function ggufVocabFromPieces(pieces: readonly Uint8Array[], scores: ArrayLike<number>, bosId: number, eosId: number, unkId = 0): GgufVocab {
  const decoder = new TextDecoder('utf-8', { fatal: false });
  const tokens: string[] = [];
  const types: number[] = [];
  for (let i = 0; i < pieces.length; i++) {
    let t = decoder.decode(pieces[i]!);
    let type: number = TokenType.NORMAL;
    if (i === unkId) {
      t = '<unk>';
      type = TokenType.UNKNOWN;
    } else if (i === bosId) {
      t = '<s>';
      type = TokenType.CONTROL;
    } else if (i === eosId) {
      t = '</s>';
      type = TokenType.CONTROL;
    } else if (/^<0x[0-9A-Fa-f]{2}>$/.test(t)) {
      type = TokenType.BYTE;
    } else {
      t = t.replace(/ /g, '\u2581');
    }
    tokens.push(t);
    types.push(type);
  }
  return { tokens, scores: Array.from(scores), types, bosId, eosId, unkId };
}
