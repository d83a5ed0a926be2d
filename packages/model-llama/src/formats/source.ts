/**
 * Checkpoints read on demand. `openWeights(path)` reads headers only — config.json, the safetensors headers of
 * every shard, a llama2.c header — checks that every tensor the config implies is present with the right shape, and
 * returns a `WeightSource` whose tensors are read by byte range when asked for, converted to float32 then (bf16 and
 * f16 stay in the file until a block needs them). Reading a whole model eagerly (`readHf`, `readLlama2c`) is this
 * source read tensor by tensor, so the eager and the streamed paths decode every value with the same code.
 */
import { closeSync, existsSync, openSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { TopiaryError, ioError } from '@topiary/kernel';
import { parameterShapes, type LlamaConfig } from '../config.js';
import { LM_HEAD } from '../names.js';
import { storageDtypeOf, type StorageDtype } from './dtype.js';
import { DTYPE_BYTES, readDecoded, readSafetensorsIndex, type SafetensorsIndex, type TensorEntry } from './safetensors.js';
import { INDEX_FILE, WEIGHTS_FILE } from './layout.js';

/** Tensors of one checkpoint by Hugging Face name, read when asked for. */
export interface WeightSource {
  /** The checkpoint (folder or file), for messages. */
  readonly path: string;
  readonly config: LlamaConfig;
  /** The storage dtype of the checkpoint's tensors (mixed or F64 files count as float32). */
  readonly dtype: StorageDtype;
  /** The whole tensor as float32 (a fresh array the caller owns). */
  read(name: string): Float32Array;
  /** The whole tensor as float32 into `out` (its size): `read` without the fresh array. Optional. */
  readInto?(name: string, out: Float32Array): void;
  /** Rows [start, start + count) of a 2-D tensor [rows, cols] as float32 (row-major). */
  readRows(name: string, start: number, count: number): Float32Array;
  /** Close open files (the source can still be read afterwards: files are reopened on demand). */
  close(): void;
}

/** Open file descriptors by path, opened on first use and closed together. */
export class OpenFiles {
  private readonly fds = new Map<string, number>();

  fd(file: string): number {
    let fd = this.fds.get(file);
    if (fd === undefined) {
      try {
        fd = openSync(file, 'r');
      } catch (e) {
        throw ioError(e, file, 'open the model file');
      }
      this.fds.set(file, fd);
    }
    return fd;
  }

  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}

export function checkRows(path: string, name: string, shape: readonly number[], start: number, count: number): number {
  if (shape.length !== 2) throw new TopiaryError('E_INTERNAL', `readRows: "${name}" is not a matrix`, { file: path, where: name });
  const [rows, cols] = shape as [number, number];
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > rows) {
    throw new TopiaryError('E_INTERNAL', `readRows: rows [${start}, ${start + count}) of "${name}" with ${rows} rows`, { file: path, where: name });
  }
  return cols;
}

/** Every tensor of the config read as float32 (an eager load), the source closed after. */
export function readAll(source: WeightSource): Map<string, Float32Array> {
  try {
    const weights = new Map<string, Float32Array>();
    for (const name of parameterShapes(source.config).keys()) weights.set(name, source.read(name));
    return weights;
  } finally {
    source.close();
  }
}

// ----------------------------------------------------------------------------- safetensors (single file or sharded)

/** Where each tensor of an HF folder is, checked against the config before any data is read. */
export class SafetensorsSource implements WeightSource {
  readonly dtype: StorageDtype;
  private readonly files = new OpenFiles();

  constructor(
    readonly path: string,
    readonly config: LlamaConfig,
    private readonly location: ReadonlyMap<string, { index: SafetensorsIndex; entry: TensorEntry }>,
    /** Whether it holds every tensor of the config (a checkpoint), or some (one shard). */
    complete = true,
  ) {
    const names = complete ? [...parameterShapes(config).keys()] : [...location.keys()];
    this.dtype = storageDtypeOf(names.map((name) => location.get(name)!.entry.dtype));
  }

  private at(name: string): { index: SafetensorsIndex; entry: TensorEntry } {
    const at = this.location.get(name);
    if (!at) throw new TopiaryError('E_FORMAT', `missing tensor "${name}"`, { file: this.path, where: name });
    return at;
  }

  read(name: string): Float32Array {
    const { index, entry } = this.at(name);
    const count = entry.shape.reduce((a, d) => a * d, 1);
    return readDecoded(this.files.fd(index.file), entry.dtype, count, entry.begin, index.file, `tensor "${name}"`);
  }

  readInto(name: string, out: Float32Array): void {
    const { index, entry } = this.at(name);
    const count = entry.shape.reduce((a, d) => a * d, 1);
    readDecoded(this.files.fd(index.file), entry.dtype, count, entry.begin, index.file, `tensor "${name}"`, out);
  }

  readRows(name: string, start: number, count: number): Float32Array {
    const { index, entry } = this.at(name);
    const cols = checkRows(this.path, name, entry.shape, start, count);
    const width = DTYPE_BYTES[entry.dtype];
    return readDecoded(this.files.fd(index.file), entry.dtype, count * cols, entry.begin + start * cols * width, index.file, `rows of tensor "${name}"`);
  }

  close(): void {
    this.files.close();
  }
}

/** Headers of an HF folder (or one .safetensors file with config.json beside it), every tensor located and checked. */
export function openSafetensors(path: string, config: LlamaConfig, readJson: (file: string) => Record<string, unknown>): SafetensorsSource {
  const isFile = existsSync(path) && statSync(path).isFile();
  const dir = isFile ? dirname(path) : path;
  const indexFile = join(dir, INDEX_FILE);
  const location = new Map<string, { index: SafetensorsIndex; entry: TensorEntry }>();
  const single = isFile && path.endsWith('.safetensors') ? path : existsSync(join(dir, WEIGHTS_FILE)) ? join(dir, WEIGHTS_FILE) : undefined;
  if (single) {
    const index = readSafetensorsIndex(single);
    for (const entry of index.entries.values()) location.set(entry.name, { index, entry });
  } else if (existsSync(indexFile)) {
    const map = readJson(indexFile).weight_map;
    if (typeof map !== 'object' || map === null) throw new TopiaryError('E_FORMAT', 'weight_map is missing or not an object', { file: indexFile, where: 'weight_map' });
    const shards = new Map<string, SafetensorsIndex>();
    for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
      if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) {
        throw new TopiaryError('E_FORMAT', `weight_map entry for "${name}" must be a file name in the folder`, { file: indexFile, where: `weight_map.${name}` });
      }
      let index = shards.get(shard);
      if (!index) {
        if (!existsSync(join(dir, shard))) {
          throw new TopiaryError('E_FORMAT', `shard ${shard} named in the index (for "${name}") is missing`, { file: join(dir, shard), where: `weight_map.${name}`, hint: 'copy every shard the index names into the folder' });
        }
        index = readSafetensorsIndex(join(dir, shard));
        shards.set(shard, index);
      }
      const entry = index.entries.get(name);
      if (!entry) throw new TopiaryError('E_FORMAT', `missing tensor "${name}" (weight_map points to ${shard})`, { file: join(dir, shard), where: name });
      location.set(name, { index, entry });
    }
  } else {
    throw new TopiaryError('E_IO', `no ${WEIGHTS_FILE} or ${INDEX_FILE} in ${dir}`, { where: dir });
  }
  // every tensor the config implies: present, with its shape — before any data is read
  for (const [name, shape] of parameterShapes(config)) {
    const at = location.get(name);
    if (!at) {
      throw new TopiaryError('E_FORMAT', `missing tensor "${name}"`, {
        where: name,
        file: dir,
        ...(name === LM_HEAD ? { hint: 'config.json says tie_word_embeddings is false, but there is no lm_head.weight' } : {}),
        ...(name.endsWith('_proj.bias') ? { hint: `${config.family ?? 'llama'} models have q/k/v projection biases, and this file has none` } : {}),
      });
    }
    const got = at.entry.shape;
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      throw new TopiaryError('E_CONFIG', `tensor "${name}" has shape [${got.join(', ')}] but config.json implies [${shape.join(', ')}]`, {
        file: at.index.file,
        where: name,
        hint: 'the weights do not match config.json',
      });
    }
  }
  return new SafetensorsSource(path, config, location);
}

/** The tensors of one safetensors file (a shard a streamed run wrote), as a source for those tensors only. */
export function openShard(file: string, config: LlamaConfig): SafetensorsSource {
  const index = readSafetensorsIndex(file);
  const location = new Map([...index.entries.values()].map((entry) => [entry.name, { index, entry }] as const));
  return new SafetensorsSource(file, config, location, false);
}

// ----------------------------------------------------------------------------- in memory

/** Host weights already in memory (a created or converted model). */
export class MemorySource implements WeightSource {
  constructor(
    readonly path: string,
    readonly config: LlamaConfig,
    private readonly weights: ReadonlyMap<string, Float32Array>,
    readonly dtype: StorageDtype = 'float32',
  ) {}

  private get(name: string): Float32Array {
    const w = this.weights.get(name);
    if (!w) throw new TopiaryError('E_FORMAT', `missing tensor "${name}"`, { file: this.path, where: name });
    return w;
  }

  read(name: string): Float32Array {
    return this.get(name).slice();
  }

  readRows(name: string, start: number, count: number): Float32Array {
    const cols = checkRows(this.path, name, parameterShapes(this.config).get(name) ?? [], start, count);
    return this.get(name).slice(start * cols, (start + count) * cols);
  }

  close(): void {}
}
