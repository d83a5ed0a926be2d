/**
 * Safetensors, read and written here (the npm `safetensors` package is broken): an 8-byte little-endian header
 * length N, N bytes of JSON `{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__? }`, then the raw
 * little-endian tensor bytes; offsets are relative to the end of the header. Every length and offset is checked
 * against the file size before anything is allocated; tensors are read one at a time (no whole-file copy).
 */
import { closeSync, fstatSync, openSync, readSync, truncateSync } from 'node:fs';
import { TopiaryError, ioError } from '@topiary/kernel';
import { writeFileAtomic } from '@topiary/files';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64';
/** Bytes per value of each dtype. */
export const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
const BYTES = DTYPE_BYTES;
/** Dtypes the format defines that we recognise but cannot turn into model weights. */
const KNOWN_UNSUPPORTED = new Set(['I8', 'U8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64', 'BOOL', 'F8_E4M3', 'F8_E5M2']);
/** Headers beyond this are refused before allocation (real ones are a few hundred KB at most). */
const MAX_HEADER = 100 * 1024 * 1024;

export interface TensorEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsIndex {
  file: string;
  entries: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

function formatError(file: string, where: string, message: string, hint?: string): TopiaryError {
  return new TopiaryError('E_FORMAT', message, { file, where, ...(hint ? { hint } : {}) });
}

/** `length` bytes at `position`, or E_FORMAT naming the file and what was being read when it ends first. */
export function readExactly(fd: number, length: number, position: number, file: string, what: string): Buffer {
  const buf = Buffer.allocUnsafe(length); // every byte is filled below, or the read fails
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, position + got);
    if (n === 0) throw formatError(file, what, `file ends before ${what} (needed ${length} bytes at offset ${position})`, 'the file is truncated');
    got += n;
  }
  return buf;
}

function openRead(file: string): number {
  try {
    return openSync(file, 'r');
  } catch (e) {
    throw ioError(e, file, 'open the model file');
  }
}

/** Parse and validate the header of a safetensors file. */
export function readSafetensorsIndex(file: string): SafetensorsIndex {
  const fd = openRead(file);
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw formatError(file, 'header length', `file has ${size} bytes, less than the 8-byte header length`, 'the file is truncated');
    const n = readExactly(fd, 8, 0, file, 'header length').readBigUInt64LE(0);
    if (n > BigInt(size - 8)) {
      throw formatError(file, 'header length', `header length ${n} runs past the end of the file (${size} bytes)`, 'the file is truncated or not safetensors');
    }
    if (n > BigInt(MAX_HEADER)) throw formatError(file, 'header length', `header length ${n} is larger than ${MAX_HEADER} bytes`);
    const headerLength = Number(n);
    const text = readExactly(fd, headerLength, 8, file, 'header').toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw formatError(file, 'header', `header is not valid JSON (${(e as Error).message})`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw formatError(file, 'header', 'header is not a JSON object');
    const dataStart = 8 + headerLength;
    const dataSize = size - dataStart;
    const entries = new Map<string, TensorEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (typeof raw === 'object' && raw !== null) metadata = raw as Record<string, string>;
        continue;
      }
      const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
      if (typeof e !== 'object' || e === null) throw formatError(file, name, `entry for tensor "${name}" is not an object`);
      const dtype = e.dtype;
      if (typeof dtype !== 'string' || !(dtype in BYTES)) {
        const known = typeof dtype === 'string' && KNOWN_UNSUPPORTED.has(dtype);
        throw formatError(file, `${name}.dtype`, `${known ? 'unsupported' : 'unknown'} dtype ${JSON.stringify(dtype)} for tensor "${name}"`, 'model weights must be F32, F16 or BF16');
      }
      const shape = e.shape;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
        throw formatError(file, `${name}.shape`, `shape of tensor "${name}" is not a list of non-negative integers`);
      }
      const offs = e.data_offsets;
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
        throw formatError(file, `${name}.data_offsets`, `data_offsets of tensor "${name}" must be two non-negative integers`);
      }
      const [b, end] = offs as [number, number];
      if (end < b || end > dataSize) {
        throw formatError(file, `${name}.data_offsets`, `data of tensor "${name}" [${b}, ${end}) lies outside the ${dataSize} data bytes`, 'the file is truncated');
      }
      const count = (shape as number[]).reduce((a, d) => a * d, 1);
      const bytes = BYTES[dtype as SafetensorsDtype];
      if (count * bytes !== end - b) {
        throw formatError(file, `${name}.shape`, `tensor "${name}" of shape [${shape.join(', ')}] ${dtype} needs ${count * bytes} bytes, its offsets span ${end - b}`);
      }
      entries.set(name, { name, dtype: dtype as SafetensorsDtype, shape: shape as number[], begin: dataStart + b, end: dataStart + end });
    }
    return { file, entries, metadata };
  } finally {
    closeSync(fd);
  }
}

// ----------------------------------------------------------------------------- number conversions

/** IEEE half → float. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float → IEEE half, round to nearest even (overflow → ±Infinity). */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  e = h >>> 10;
  return sign | h;
}

/** The first `count` values of `buf` (stored as `dtype`, little-endian) as float32. */
export function decodeTensor(buf: Buffer, dtype: SafetensorsDtype, count: number): Float32Array {
  const out = new Float32Array(count);
  decodeInto(buf, dtype, out);
  return out;
}

/** Decode the first `out.length` values of `buf` into `out` (which may be a view into a larger array). */
function decodeInto(buf: Buffer, dtype: SafetensorsDtype, out: Float32Array): void {
  const count = out.length;
  switch (dtype) {
    case 'F32':
      new Uint8Array(out.buffer, out.byteOffset, count * 4).set(buf.subarray(0, count * 4)); // little-endian host
      break;
    case 'F64':
      for (let i = 0; i < count; i++) out[i] = buf.readDoubleLE(i * 8);
      break;
    case 'F16': {
      const halves = uint16View(buf, count);
      const table = halfTable();
      for (let i = 0; i < count; i++) out[i] = table[halves[i]!]!;
      break;
    }
    case 'BF16': {
      const halves = uint16View(buf, count);
      const bits = new Uint32Array(out.buffer, out.byteOffset, count);
      for (let i = 0; i < count; i++) bits[i] = halves[i]! << 16;
      break;
    }
  }
}

/** Bytes read per step by `readDecoded`: the file's bytes never sit in memory whole next to their float32 values. */
const DECODE_CHUNK_BYTES = 1 << 23;
let decodeScratch: Buffer | undefined;

/**
 * `count` values of `dtype` at byte `position` of an open file, decoded to float32. Float32 is read straight into
 * the result; other dtypes through one reused 8 MB buffer, chunk by chunk — so reading a Llama-2-7B FFN weight in
 * bf16 allocates its 180 MB of float32 and nothing else (decodeTensor on the whole read would add 90 MB of bytes).
 * The values are decodeTensor's, bit for bit (the same per-element rule on the same bytes).
 */
export function readDecoded(fd: number, dtype: SafetensorsDtype, count: number, position: number, file: string, what: string, into?: Float32Array): Float32Array {
  // `into`: where the values go (a streamed block's variable on the heap), instead of a fresh array
  const out = into ?? new Float32Array(count);
  if (out.length !== count) throw new TopiaryError('E_INTERNAL', `${count} values of ${what} into an array of ${out.length}`, { file });
  const width = DTYPE_BYTES[dtype];
  if (dtype === 'F32') {
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    for (let got = 0; got < bytes.length; ) {
      const n = readSync(fd, bytes, got, bytes.length - got, position + got);
      if (n === 0) throw formatError(file, what, `file ends before ${what} (needed ${bytes.length} bytes at offset ${position})`, 'the file is truncated');
      got += n;
    }
    return out;
  }
  decodeScratch ??= Buffer.allocUnsafe(DECODE_CHUNK_BYTES);
  const per = Math.floor(DECODE_CHUNK_BYTES / width);
  for (let done = 0; done < count; done += per) {
    const n = Math.min(per, count - done);
    const bytes = n * width;
    for (let got = 0; got < bytes; ) {
      const r = readSync(fd, decodeScratch, got, bytes - got, position + done * width + got);
      if (r === 0) throw formatError(file, what, `file ends before ${what} (needed ${count * width} bytes at offset ${position})`, 'the file is truncated');
      got += r;
    }
    decodeInto(decodeScratch, dtype, out.subarray(done, done + n));
  }
  return out;
}

/** The first `count` little-endian uint16 of `buf` (a view when aligned, else a copy). */
function uint16View(buf: Buffer, count: number): Uint16Array {
  if (buf.byteOffset % 2 === 0) return new Uint16Array(buf.buffer, buf.byteOffset, count);
  const copy = new Uint16Array(count);
  new Uint8Array(copy.buffer).set(buf.subarray(0, count * 2));
  return copy;
}

let halves: Float32Array | undefined;
/** Every IEEE half as float32 (256 KB, built once): decoding a half is then one lookup. */
function halfTable(): Float32Array {
  if (!halves) {
    halves = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halves[h] = halfToFloat(h);
  }
  return halves;
}

/** Read one tensor as float32. */
export function readTensor(index: SafetensorsIndex, name: string): Float32Array {
  const e = index.entries.get(name);
  if (!e) throw formatError(index.file, name, `missing tensor "${name}"`);
  const fd = openRead(index.file);
  try {
    const count = e.shape.reduce((a, d) => a * d, 1);
    return decodeTensor(readExactly(fd, e.end - e.begin, e.begin, index.file, `tensor "${name}"`), e.dtype, count);
  } finally {
    closeSync(fd);
  }
}

/** Read many tensors with one open file. */
export function readTensors(index: SafetensorsIndex, names: Iterable<string>): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  const fd = openRead(index.file);
  try {
    for (const name of names) {
      const e = index.entries.get(name);
      if (!e) throw formatError(index.file, name, `missing tensor "${name}"`);
      const count = e.shape.reduce((a, d) => a * d, 1);
      out.set(name, decodeTensor(readExactly(fd, e.end - e.begin, e.begin, index.file, `tensor "${name}"`), e.dtype, count));
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

// ----------------------------------------------------------------------------- writer

export interface TensorToWrite {
  name: string;
  shape: readonly number[];
  data: Float32Array;
}

/** The dtypes this writer can produce. */
export type WritableDtype = 'F32' | 'F16' | 'BF16';

/**
 * float → bfloat16 bits (the upper half of the float32), rounded to nearest, ties to even; NaN stays a quiet NaN of
 * the same sign, overflow rounds to ±Infinity as IEEE rounding does. Values already representable in bf16 are exact.
 */
export function floatToBf16(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  const lsb = (x >>> 16) & 1;
  return ((x + 0x7fff + lsb) >>> 16) & 0xffff;
}

/** bfloat16 bits → float. */
export function bf16ToFloat(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0]!;
}

/** The little-endian bytes of `data` stored as `dtype` (F16 and BF16 rounded to nearest even). */
export function encodeTensor(data: Float32Array, dtype: WritableDtype, scratch?: Uint16Array): Uint8Array {
  if (dtype === 'F32') {
    // little-endian hosts (all Node platforms we run on) can write the float buffer as is
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  // into `scratch` when it is large enough (a writer that writes each chunk before encoding the next reuses one)
  const out = scratch && scratch.length >= data.length ? scratch.subarray(0, data.length) : new Uint16Array(data.length);
  if (dtype === 'F16') for (let i = 0; i < data.length; i++) out[i] = floatToHalf(data[i]!);
  else for (let i = 0; i < data.length; i++) out[i] = floatToBf16(data[i]!);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
const encode = encodeTensor;

/**
 * A safetensors file whose header names every tensor and whose data are holes (a sparse file): a checkpoint of any
 * size that costs only its header on disk. For testing and measuring what must read headers only (inspect, fit
 * checks, streamed opens) at real sizes; reading a tensor from it gives zeros.
 */
export function writeHeaderOnlySafetensors(path: string, tensors: ReadonlyArray<{ name: string; shape: readonly number[] }>, dtype: WritableDtype = 'BF16'): void {
  const width = dtype === 'F32' ? 4 : 2;
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, d) => a * d, 1) * width;
    header[t.name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const head = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.byteLength));
  writeFileAtomic(path, [len, head]);
  truncateSync(path, 8 + head.byteLength + offset);
}

/** Write tensors (sorted by name) atomically as one safetensors file. */
export function writeSafetensors(path: string, tensors: readonly TensorToWrite[], dtype: WritableDtype = 'F32', metadata: Record<string, string> = { format: 'pt' }): void {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: metadata };
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const t of sorted) {
    const bytes = encode(t.data, dtype);
    header[t.name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.byteLength] };
    blobs.push(bytes);
    offset += bytes.byteLength;
  }
  let text = JSON.stringify(header);
  // pad with spaces so the data starts 8-byte aligned
  text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
  const head = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.byteLength));
  writeFileAtomic(path, [len, head, ...blobs]);
}
