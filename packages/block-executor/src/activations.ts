/**
 * Hidden states of a set of batches at one block boundary, kept off the tensor heap: in host memory (a Float32Array
 * per batch) up to a budget, and beyond it in a temporary file (each batch at a fixed offset, read when its turn
 * comes and written back in place), so calibration sets larger than memory still run block by block.
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { TopiaryError, ioError, type CausalLM } from '@topiary/kernel';
import { releaseHostMemory } from '@topiary/files';

/** Token ids of one batch: b sequences of t tokens, row-major. */
export interface Batch {
  ids: Int32Array;
  b: number;
  t: number;
}

/** Equal-length windows (calibration) stacked `batchSize` at a time into batches. */
export function windowBatches(windows: readonly Int32Array[], batchSize: number): Batch[] {
  const len = windows[0]?.length ?? 0;
  for (const w of windows) {
    if (w.length !== len) throw new TopiaryError('E_DATA', `calibration windows differ in length (${w.length} vs ${len})`, { where: 'calibration' });
  }
  const batches: Batch[] = [];
  for (let s = 0; s < windows.length; s += batchSize) {
    const batch = windows.slice(s, s + batchSize);
    const t = batch[0]!.length;
    const ids = new Int32Array(batch.length * t);
    batch.forEach((w, i) => ids.set(w, i * t));
    batches.push({ ids, b: batch.length, t });
  }
  return batches;
}

export interface ActivationOptions {
  /** Bytes of hidden states kept in host memory; the batches beyond go to a temporary file (default: no limit). */
  budget?: number;
  /** Folder for that file (default: the OS temp folder); created when needed, the file removed on dispose. */
  spillDir?: string;
}

interface HostStates {
  /** In memory, or undefined when spilled (then at `offset` in the spill file). */
  data?: Float32Array;
  offset: number;
  shape: [number, number, number];
}

/** The spill file: fixed-size slots written and read in place. */
export class SpillFile {
  private readonly dir: string;
  private readonly path: string;
  private readonly fd: number;
  size = 0;

  constructor(parent: string | undefined) {
    const base = parent ?? tmpdir();
    try {
      mkdirSync(base, { recursive: true });
      this.dir = mkdtempSync(join(base, 'topiary-activations-'));
      this.path = join(this.dir, 'hidden.f32');
      this.fd = openSync(this.path, 'w+');
    } catch (e) {
      throw ioError(e, base, 'spill hidden states into');
    }
  }

  write(offset: number, data: Float32Array): void {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    try {
      for (let done = 0; done < bytes.length; ) done += writeSync(this.fd, bytes, done, bytes.length - done, offset + done);
    } catch (e) {
      throw ioError(e, this.path, 'write spilled hidden states');
    }
  }

  read(offset: number, count: number): Float32Array {
    const out = new Float32Array(count);
    const bytes = new Uint8Array(out.buffer);
    for (let done = 0; done < bytes.length; ) {
      const n = readSync(this.fd, bytes, done, bytes.length - done, offset + done);
      if (n === 0) throw ioError(new Error('the spill file is shorter than written'), this.path, 'read spilled hidden states');
      done += n;
    }
    return out;
  }

  dispose(): void {
    closeSync(this.fd);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const count = (shape: readonly number[]): number => shape.reduce((a, d) => a * d, 1);

export class Activations {
  private spill: SpillFile | undefined;

  private constructor(private states: HostStates[]) {}

  /** The embeddings of every batch (block 0's inputs); batches past the budget go to the spill file. */
  static embed(model: CausalLM, batches: readonly Batch[], options: ActivationOptions = {}): Activations {
    const acts = new Activations([]);
    let inMemory = 0;
    for (const { ids, b, t } of batches) {
      const h = tf.tidy(() => model.embed(tf.tensor2d(ids, [b, t], 'int32')));
      try {
        const data = h.dataSync() as Float32Array;
        const shape = h.shape as [number, number, number];
        if (options.budget === undefined || inMemory + data.byteLength <= options.budget) {
          acts.states.push({ data, offset: -1, shape });
          inMemory += data.byteLength;
        } else {
          acts.spill ??= new SpillFile(options.spillDir);
          const offset = acts.spill.size;
          acts.spill.write(offset, data);
          acts.spill.size += data.byteLength;
          acts.states.push({ offset, shape });
        }
      } finally {
        h.dispose();
      }
    }
    return acts;
  }

  get batches(): number {
    return this.states.length;
  }

  /** Bytes of hidden states held in host memory (the spilled ones are on disk). */
  get bytes(): number {
    return this.states.reduce((a, s) => a + (s.data?.byteLength ?? 0), 0);
  }

  /** How many batches live in the spill file. */
  get spilled(): number {
    return this.states.filter((s) => s.data === undefined).length;
  }

  private hidden(s: HostStates): tf.Tensor3D {
    return tf.tensor3d(s.data ?? this.spill!.read(s.offset, count(s.shape)), s.shape);
  }

  /**
   * Run block i over every batch (capture hooks fire meanwhile); the boundary moves past block i. `visit` sees each
   * batch's input and output of the block (Block Influence compares them). Each batch's states are overwritten as
   * soon as its output is back, so the boundary is held once, not twice.
   */
  advance(model: CausalLM, i: number, visit?: (batch: number, input: tf.Tensor3D, output: tf.Tensor3D) => void): void {
    this.states.forEach((s, k) => {
      const input = this.hidden(s);
      const out = tf.tidy(() => model.block(i, input));
      try {
        visit?.(k, input, out);
        // a view of the engine's memory where it allows: read at once, with no fresh boundary-sized copy in between
        const data = model.hostValues?.(out) ?? (out.dataSync() as Float32Array);
        // written over the batch's input (read only above): no second boundary-sized set of arrays waits for the GC
        if (s.data) s.data.set(data);
        else this.spill!.write(s.offset, data);
      } finally {
        input.dispose();
        out.dispose();
      }
      // the batch's copies off the heap are garbage now; a streamed run gives them back before the next batch's
      if (model.streamed) releaseHostMemory();
    });
  }

  /** Call `fn` with batch k's hidden states as a tensor (disposed after). */
  withBatch<T>(k: number, fn: (hidden: tf.Tensor3D) => T): T {
    const h = this.hidden(this.states[k]!);
    try {
      return fn(h);
    } finally {
      h.dispose();
    }
  }

  dispose(): void {
    this.states = [];
    this.spill?.dispose();
    this.spill = undefined;
  }
}
