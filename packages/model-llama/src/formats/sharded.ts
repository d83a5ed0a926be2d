/**
 * Writing a model as it is computed, block by block: an HF folder of safetensors shards — one per block, then one
 * for the embedding, final norm and head — plus `model.safetensors.index.json` and config.json, in the input's dtype
 * unless another is asked for.
 *
 * A run killed half-way leaves the finished shards and `topiary-progress.json` (which blocks are done, the sparsity
 * metadata of their weights, and a fingerprint of the run), but no config.json and no index: the folder never looks
 * like a complete model. `--resume` reads the progress file, checks the fingerprint and continues after the last
 * finished block. Every shard is written atomically (temp file, fsync, rename), tensor by tensor, row chunk by row
 * chunk, so even a 2 GB embedding never sits in memory whole.
 */
import { existsSync, readFileSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { TopiaryError, ioError } from '@topiary/kernel';
import { writeFileAtomic, writeJsonAtomic } from '@topiary/files';
import { configToHf, parameterShapes, type LlamaConfig } from '../config.js';
import { EMBED, FINAL_NORM, LM_HEAD, blockParamNames } from '../names.js';
import { safetensorsDtype, type StorageDtype } from './dtype.js';
import { DTYPE_BYTES as BYTES, encodeTensor, floatToHalf, halfToFloat, type WritableDtype } from './safetensors.js';
import { openShard, type SafetensorsSource } from './source.js';
import { CONFIG_FILE, INDEX_FILE, WEIGHTS_FILE, isWeightFile, shardName } from './layout.js';
import { combineSparsity, followsNM, isLinearWeight, NM_PATTERNS, sparsityOfCounts, TOPIARY_SPARSITY_KEY, type LayerSparsity } from './sparsity.js';

export const PROGRESS_FILE = 'topiary-progress.json';
/** Rows encoded per write: a few MB at a time. */
const ROW_CHUNK_ELEMENTS = 1 << 22;

/** Where a tensor's values come from: the whole array, or rows on demand (large embeddings and heads). */
export type TensorData = { read: () => Float32Array } | { rows: (start: number, count: number) => Float32Array };

/** Models up to this size are consolidated into one model.safetensors at the end (Hugging Face shards at 5 GB). */
export const SINGLE_FILE_BYTES = 2 * 1024 ** 3;

interface Progress {
  version: 1;
  /** Same run, same input, same options: only then may a run resume into this folder. */
  fingerprint: string;
  dtype: StorageDtype;
  shards: number;
  /** Finished blocks and the shard each went to. */
  blocks: Record<string, string>;
  sparsity: Record<string, LayerSparsity>;
}

/** One safetensors file from tensors given with their shapes; the header first (offsets follow from the shapes). */
function* shardBytes(tensors: readonly { name: string; shape: readonly number[]; source: TensorData }[], dtype: WritableDtype): Generator<Uint8Array> {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of sorted) {
    const bytes = t.shape.reduce((a, d) => a * d, 1) * BYTES[dtype];
    header[t.name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
  const head = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.byteLength));
  yield len;
  yield head;
  // each chunk is written before the next is encoded, so one encoding buffer serves them all
  const scratch = dtype === 'F32' ? undefined : new Uint16Array(ROW_CHUNK_ELEMENTS);
  for (const t of sorted) {
    if ('read' in t.source) {
      yield encodeTensor(t.source.read(), dtype, scratch);
      continue;
    }
    const [rows, cols] = t.shape as [number, number];
    const step = Math.max(1, Math.floor(ROW_CHUNK_ELEMENTS / cols));
    for (let r = 0; r < rows; r += step) yield encodeTensor(t.source.rows(r, Math.min(step, rows - r)), dtype, scratch);
  }
}

export interface ShardedWriterOptions {
  dtype: StorageDtype;
  /** Identifies the run (input, method, options): a resume into a folder written by another run is refused. */
  fingerprint: string;
  resume?: boolean;
  /** The input checkpoint's path: writing over it is refused. */
  input?: string;
  /** Outputs up to this size end as one model.safetensors (default SINGLE_FILE_BYTES). */
  singleFileBytes?: number;
}

export class ShardedWriter {
  private readonly progress: Progress;
  private readonly shapes: Map<string, number[]>;

  private constructor(
    readonly dir: string,
    readonly config: LlamaConfig,
    progress: Progress,
    private readonly singleFileBytes: number,
  ) {
    this.progress = progress;
    this.shapes = parameterShapes(config);
  }

  /** Blocks finished by an earlier run of the same job (resume), or none. */
  get doneBlocks(): ReadonlySet<number> {
    return new Set(Object.keys(this.progress.blocks).map(Number));
  }

  get dtype(): StorageDtype {
    return this.progress.dtype;
  }

  /** The shard file (in the folder) of a finished block. */
  shardOf(block: number): string {
    const file = this.progress.blocks[String(block)];
    if (file === undefined) throw new TopiaryError('E_INTERNAL', `block ${block} is not written`, { file: this.dir });
    return file;
  }

  /**
   * Prepare `dir` for a streamed output. Refused: the input's own folder; a folder holding an interrupted run's
   * output when `resume` is not set (or set, but for another run); a non-empty folder that is not such an output.
   */
  static open(dir: string, config: LlamaConfig, options: ShardedWriterOptions): ShardedWriter {
    if (options.input !== undefined && sameFolder(dir, options.input)) {
      throw new TopiaryError('E_USAGE', `the output folder ${dir} is the input model's folder`, { where: '--out', hint: 'write the pruned model to a new folder' });
    }
    const progressFile = join(dir, PROGRESS_FILE);
    const fresh: Progress = { version: 1, fingerprint: options.fingerprint, dtype: options.dtype, shards: config.nLayers + 1, blocks: {}, sparsity: {} };
    if (existsSync(progressFile)) {
      let saved: Progress;
      try {
        saved = JSON.parse(readFileSync(progressFile, 'utf8')) as Progress;
      } catch (e) {
        throw new TopiaryError('E_FORMAT', `cannot read the progress of the interrupted run (${(e as Error).message})`, { file: progressFile, hint: 'remove the folder and run again' });
      }
      if (!options.resume) {
        throw new TopiaryError('E_USAGE', `${dir} holds the output of an interrupted run (${Object.keys(saved.blocks).length} of ${saved.shards - 1} blocks written)`, {
          where: '--out',
          hint: 'pass --resume to continue it, or remove the folder to start again',
        });
      }
      if (saved.fingerprint !== options.fingerprint || saved.dtype !== options.dtype) {
        throw new TopiaryError('E_USAGE', `${dir} holds the output of another run (different model, method, options or dtype); it cannot be resumed by this one`, {
          where: '--resume',
          hint: 'rerun the interrupted command exactly, or remove the folder',
        });
      }
      // a block counts as done only when its shard is really there
      for (const [block, shard] of Object.entries(saved.blocks)) if (!existsSync(join(dir, shard))) delete saved.blocks[block];
      return new ShardedWriter(dir, config, saved, options.singleFileBytes ?? SINGLE_FILE_BYTES);
    }
    if (existsSync(dir)) {
      if (!statSync(dir).isDirectory()) throw new TopiaryError('E_USAGE', `${dir} exists and is not a folder`, { where: '--out' });
      // an earlier complete output is replaced (its files only: anything else in the folder is left alone)
      const stale = readdirSync(dir).filter(isWeightFile);
      for (const f of stale) if (statSync(join(dir, f)).isFile()) rmSync(join(dir, f));
      rmSync(join(dir, CONFIG_FILE), { force: true });
    }
    const writer = new ShardedWriter(dir, config, fresh, options.singleFileBytes ?? SINGLE_FILE_BYTES);
    writer.saveProgress();
    return writer;
  }

  private saveProgress(): void {
    writeJsonAtomic(join(this.dir, PROGRESS_FILE), this.progress);
  }

  private writeShard(k: number, names: readonly string[], read: (name: string) => TensorData): string {
    const file = shardName(k, this.progress.shards);
    const tensors = names.map((name) => ({ name, shape: this.shapes.get(name)!, source: read(name) }));
    try {
      writeFileAtomic(join(this.dir, file), shardBytes(tensors, safetensorsDtype(this.progress.dtype)));
    } catch (e) {
      throw e instanceof TopiaryError ? e : ioError(e, join(this.dir, file), 'write');
    }
    return file;
  }

  /**
   * Write block i's tensors as its shard, then record it as done. Matrices come by row chunks (`rows`, a few MB at a
   * time), vectors whole (`read`), each as float32: the block is never copied off the tensor heap whole, and each
   * chunk is encoded, measured (zeros, N:M pattern, whether the output dtype holds it exactly) and written before the
   * next is read. Returns the shard's path and the tensors it stores exactly (every value representable in the output
   * dtype): those can be read back from the shard instead of being kept.
   */
  writeBlock(i: number, rows: (name: string, start: number, count: number) => Float32Array, read: (name: string) => Float32Array): { file: string; exact: string[] } {
    const names = blockParamNames(i, this.config.attentionBias === true);
    const dtype = safetensorsDtype(this.progress.dtype);
    const measured = new Map<string, { zeros: number; patterns: Set<string>; exact: boolean }>();
    const watch = (name: string, data: Float32Array, chunkRows: number, cols: number): Float32Array => {
      const m = measured.get(name)!;
      if (m.exact && !representable(data, dtype)) m.exact = false;
      if (isLinearWeight(name)) {
        for (let k = 0; k < data.length; k++) if (data[k] === 0) m.zeros++;
        for (const [n, k] of NM_PATTERNS) if (m.patterns.has(`${n}:${k}`) && !followsNM(data, chunkRows, cols, n, k)) m.patterns.delete(`${n}:${k}`);
      }
      return data;
    };
    const source = (name: string): TensorData => {
      const shape = this.shapes.get(name)!;
      // a pattern a matrix's width cannot hold is ruled out here, as followsNM does, even for a matrix with no rows
      const patterns = NM_PATTERNS.filter(([, k]) => shape.length === 2 && shape[1]! % k === 0).map(([n, k]) => `${n}:${k}`);
      measured.set(name, { zeros: 0, patterns: new Set(patterns), exact: true });
      if (shape.length !== 2) return { read: () => watch(name, read(name), 1, shape[0]!) };
      const cols = shape[1]!;
      return { rows: (start, count) => watch(name, rows(name, start, count), count, cols) };
    };
    const file = this.writeShard(i + 1, names, source);
    const exact: string[] = [];
    for (const name of names) {
      const m = measured.get(name)!;
      if (m.exact) exact.push(name);
      if (isLinearWeight(name)) {
        const [r, c] = this.shapes.get(name)! as [number, number];
        // layerSparsity's numbers, summed over the chunks (same fraction, same rounding, same pattern order)
        this.progress.sparsity[name] = sparsityOfCounts(m.zeros, r * c, m.patterns);
      }
    }
    this.progress.blocks[String(i)] = file;
    this.saveProgress();
    return { file: join(this.dir, file), exact };
  }

  /**
   * Write what is left — the embedding, final norm and head (read by rows) — then the index and config.json, and
   * remove the progress file: only now does the folder hold a model. A model up to SINGLE_FILE_BYTES ends as one
   * model.safetensors (its block shards merged), as Hugging Face would save it.
   */
  finish(rows: (name: string, start: number, count: number) => Float32Array, read: (name: string) => Float32Array): void {
    const missing = [...Array(this.config.nLayers).keys()].filter((i) => this.progress.blocks[String(i)] === undefined);
    if (missing.length > 0) throw new TopiaryError('E_INTERNAL', `blocks ${missing.join(', ')} were not written`, { file: this.dir });
    const width = BYTES[safetensorsDtype(this.progress.dtype)];
    let total = 0;
    for (const shape of this.shapes.values()) total += shape.reduce((a, d) => a * d, 1) * width;
    const blockOf = (name: string): string | undefined => /^model\.layers\.(\d+)\./.exec(name)?.[1];
    const rest = [EMBED, FINAL_NORM, ...(this.config.tiedEmbeddings ? [] : [LM_HEAD])];
    const restData = (name: string): TensorData => (name === FINAL_NORM ? { read: () => read(name) } : { rows: (s, c) => rows(name, s, c) });
    if (total <= this.singleFileBytes) {
      const shards = new Map<string, SafetensorsSource>();
      const fromShard = (name: string): TensorData => {
        const file = this.progress.blocks[blockOf(name)!]!;
        let src = shards.get(file);
        if (!src) shards.set(file, (src = openShard(join(this.dir, file), this.config)));
        return { read: () => src.read(name) };
      };
      try {
        writeFileAtomic(join(this.dir, WEIGHTS_FILE), shardBytes([...this.shapes].map(([name, shape]) => ({ name, shape, source: blockOf(name) === undefined ? restData(name) : fromShard(name) })), safetensorsDtype(this.progress.dtype)));
      } finally {
        for (const src of shards.values()) src.close();
      }
      for (const file of new Set(Object.values(this.progress.blocks))) rmSync(join(this.dir, file), { force: true });
    } else {
      const last = this.writeShard(this.progress.shards, rest, restData);
      const weightMap: Record<string, string> = {};
      for (const name of this.shapes.keys()) weightMap[name] = blockOf(name) === undefined ? last : this.progress.blocks[blockOf(name)!]!;
      writeJsonAtomic(join(this.dir, INDEX_FILE), { metadata: { total_size: total }, weight_map: weightMap });
    }
    writeJsonAtomic(join(this.dir, 'generation_config.json'), { bos_token_id: this.config.bosId, eos_token_id: this.config.eosId });
    const json = configToHf(this.config, 'float32');
    json.torch_dtype = this.progress.dtype;
    const sparsity = combineSparsity(new Map(Object.entries(this.progress.sparsity)));
    if (sparsity) json[TOPIARY_SPARSITY_KEY] = sparsity;
    writeJsonAtomic(join(this.dir, CONFIG_FILE), json);
    rmSync(join(this.dir, PROGRESS_FILE), { force: true });
  }
}

/** Whether every value survives storage in `dtype` unchanged. */
function representable(data: Float32Array, dtype: WritableDtype): boolean {
  if (dtype === 'F32') return true;
  if (dtype === 'BF16') {
    const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
    for (let i = 0; i < bits.length; i++) if ((bits[i]! & 0xffff) !== 0) return false;
    return true;
  }
  const back = new Float32Array(1);
  for (let i = 0; i < data.length; i++) {
    back[0] = halfToFloat(floatToHalf(data[i]!));
    if (back[0] !== data[i] && !(Number.isNaN(back[0]) && Number.isNaN(data[i]!))) return false;
  }
  return true;
}

/** Whether two paths name the same folder (the input may be a file inside its folder). */
function sameFolder(out: string, input: string): boolean {
  const real = (p: string): string => {
    try {
      return realpathSync(p);
    } catch {
      return resolve(p);
    }
  };
  const inDir = existsSync(input) && statSync(input).isFile() ? resolve(input, '..') : input;
  return real(out) === real(inDir);
}
