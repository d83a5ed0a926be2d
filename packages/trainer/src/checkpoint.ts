/**
 * Crash-safe checkpoints. A checkpoint is a folder `checkpoints/step-<8 digits>/` holding
 *
 *   weights.bin    float32 little-endian, every parameter in `state.json`'s `params` order
 *   optimizer.bin  AdamW first moments of every parameter, then second moments, same order
 *   state.json     step, tokens, model config, masked groups, data cursor, accumulator, optimiser step, ...
 *   manifest.json  byte length and sha256 of each file above (written last)
 *
 * Every file is written atomically (kernel `writeFileAtomic`: temp file, fsync, rename) into a temporary folder
 * which is renamed to its final name only when complete. So a checkpoint is complete or absent; a reader also
 * verifies every hash and skips (with a warning) any checkpoint that does not verify, falling back to an older one.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ioError, TopiaryError } from '@topiary/kernel';
import { fsyncDir, writeFileAtomic, writeJsonAtomic } from '@topiary/files';

export const CHECKPOINT_FORMAT = 'topiary-checkpoint';
export const CHECKPOINT_VERSION = 1;

export interface ParamEntry {
  name: string;
  shape: number[];
}

export interface CheckpointData {
  step: number;
  params: ParamEntry[];
  weights: Map<string, Float32Array>;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
  /** Free-form run state (JSON), owned by the trainer. */
  state: Record<string, unknown>;
}

export interface CheckpointRef {
  step: number;
  path: string;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function bytesOf(arr: Float32Array): Uint8Array {
  return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
}

function concat(params: readonly ParamEntry[], maps: readonly ReadonlyMap<string, Float32Array>[]): Uint8Array {
  let n = 0;
  for (const map of maps) for (const p of params) n += map.get(p.name)!.length;
  const out = new Float32Array(n);
  let o = 0;
  for (const map of maps) {
    for (const p of params) {
      const a = map.get(p.name)!;
      out.set(a, o);
      o += a.length;
    }
  }
  return bytesOf(out);
}

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

/** Write a checkpoint under `root` (the run's `checkpoints/` folder); returns its path. */
export function writeCheckpoint(root: string, data: CheckpointData): string {
  const final = join(root, checkpointName(data.step));
  const tmp = join(root, `.${checkpointName(data.step)}.${process.pid}.tmp`);
  try {
    mkdirSync(root, { recursive: true });
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
  } catch (e) {
    throw ioError(e, root, 'create the checkpoint folder');
  }
  try {
    const files: Record<string, Uint8Array> = {
      'weights.bin': concat(data.params, [data.weights]),
      'optimizer.bin': concat(data.params, [data.m, data.v]),
      'state.json': Buffer.from(`${JSON.stringify({ step: data.step, params: data.params, ...data.state })}\n`),
    };
    const manifest: Record<string, { bytes: number; sha256: string }> = {};
    for (const [name, bytes] of Object.entries(files)) {
      writeFileAtomic(join(tmp, name), bytes);
      manifest[name] = { bytes: bytes.byteLength, sha256: sha256(bytes) };
    }
    writeJsonAtomic(join(tmp, 'manifest.json'), { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, step: data.step, files: manifest });
    if (existsSync(final)) {
      const old = `${final}.${process.pid}.old`;
      renameSync(final, old);
      renameSync(tmp, final);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, final);
    }
    fsyncDir(root);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e instanceof TopiaryError ? e : ioError(e, final, 'write the checkpoint');
  }
  return final;
}

/** Complete-looking checkpoints (by name), newest first. Temporary folders of interrupted writes are ignored. */
export function listCheckpoints(root: string): CheckpointRef[] {
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((name) => /^step-(\d{8})$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), path: join(root, m[0]) }))
    .sort((a, b) => b.step - a.step);
}

/** Remove leftovers of interrupted writes (`.step-*.tmp`, `*.old`). */
export function cleanCheckpointLeftovers(root: string): void {
  if (!existsSync(root)) return;
  for (const name of readdirSync(root)) {
    if (/^\.step-\d{8}\.\d+\.tmp$/.test(name) || /^step-\d{8}\.\d+\.old$/.test(name)) rmSync(join(root, name), { recursive: true, force: true });
  }
}

function readVerified(dir: string): CheckpointData {
  const where = join(dir, 'manifest.json');
  let manifest: { format?: string; version?: number; step?: number; files?: Record<string, { bytes: number; sha256: string }> };
  try {
    manifest = JSON.parse(readFileSync(where, 'utf8'));
  } catch (e) {
    throw new TopiaryError('E_FORMAT', 'checkpoint has no readable manifest.json', { file: where, cause: e });
  }
  if (manifest.format !== CHECKPOINT_FORMAT || manifest.version !== CHECKPOINT_VERSION || !manifest.files) {
    throw new TopiaryError('E_FORMAT', `not a ${CHECKPOINT_FORMAT} v${CHECKPOINT_VERSION} manifest`, { file: where });
  }
  const read = (name: string): Buffer => {
    const entry = manifest.files![name];
    if (!entry) throw new TopiaryError('E_FORMAT', `manifest lists no ${name}`, { file: where });
    let bytes: Buffer;
    try {
      bytes = readFileSync(join(dir, name));
    } catch (e) {
      throw ioError(e, join(dir, name), 'read the checkpoint file');
    }
    if (bytes.byteLength !== entry.bytes || sha256(bytes) !== entry.sha256) {
      throw new TopiaryError('E_FORMAT', `${name} does not match its sha256 in manifest.json (corrupt or truncated)`, { file: join(dir, name) });
    }
    return bytes;
  };
  const state = JSON.parse(read('state.json').toString('utf8')) as Record<string, unknown> & { step: number; params: ParamEntry[] };
  const floats = (buf: Buffer): Float32Array => {
    const copy = new Uint8Array(buf.byteLength);
    copy.set(buf);
    return new Float32Array(copy.buffer);
  };
  const w = floats(read('weights.bin'));
  const opt = floats(read('optimizer.bin'));
  const sizes = state.params.map((p) => p.shape.reduce((a, b) => a * b, 1));
  const total = sizes.reduce((a, b) => a + b, 0);
  if (w.length !== total || opt.length !== 2 * total) {
    throw new TopiaryError('E_FORMAT', 'weights.bin/optimizer.bin sizes do not match the parameter list in state.json', { file: dir });
  }
  const weights = new Map<string, Float32Array>();
  const m = new Map<string, Float32Array>();
  const v = new Map<string, Float32Array>();
  let o = 0;
  state.params.forEach((p, i) => {
    weights.set(p.name, w.subarray(o, o + sizes[i]!));
    m.set(p.name, opt.subarray(o, o + sizes[i]!));
    v.set(p.name, opt.subarray(total + o, total + o + sizes[i]!));
    o += sizes[i]!;
  });
  const { step, params, ...rest } = state;
  return { step, params, weights, m, v, state: rest };
}

/**
 * The newest checkpoint that verifies. Each one that does not is reported through `onSkip` and the next older
 * one is tried; null when none is usable.
 */
export function loadLatestCheckpoint(root: string, onSkip: (path: string, reason: string) => void = () => {}): CheckpointData | null {
  for (const ref of listCheckpoints(root)) {
    try {
      return readVerified(ref.path);
    } catch (e) {
      onSkip(ref.path, e instanceof Error ? e.message : String(e));
    }
  }
  return null;
}

export function loadCheckpoint(path: string): CheckpointData {
  return readVerified(path);
}

/** Keep the newest `keep` checkpoints, delete the rest. */
export function pruneOldCheckpoints(root: string, keep: number): void {
  // rename first, then delete: a kill mid-delete leaves a `.old` folder (removed on the next start), never a
  // half-deleted `step-N` that looks like a checkpoint
  for (const ref of listCheckpoints(root).slice(keep)) {
    const doomed = `${ref.path}.${process.pid}.old`;
    try {
      renameSync(ref.path, doomed);
    } catch (e) {
      throw ioError(e, ref.path, 'retire an old checkpoint');
    }
    rmSync(doomed, { recursive: true, force: true });
  }
}
