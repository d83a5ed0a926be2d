/**
 * Where a streamed model's modified weights live once their block has left the tensor heap: in host memory while
 * they fit the memory budget, else in a float32 safetensors file per block in the spill folder (float32, so reading
 * them back gives exactly what was computed — a streamed run stays bit-identical to an in-memory one).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TopiaryError, ioError } from '@topiary/kernel';
import { readSafetensorsIndex, readTensor, writeSafetensors, type SafetensorsIndex } from './formats/safetensors.js';

export interface SpillOptions {
  /** Bytes of modified weights kept in host memory before blocks go to the spill folder (default 2 GiB). */
  maxMemory?: number;
  /** Folder for spilled blocks (default: a new folder under the OS temp folder, removed on dispose). */
  spillDir?: string;
}

export const DEFAULT_MAX_MEMORY = 2 * 1024 ** 3;

/** Create (and check writable) a spill folder before any work starts: a bad folder is a clear error up front. */
export function prepareSpillDir(dir: string | undefined): { dir: string; owned: boolean } {
  try {
    if (dir === undefined) return { dir: mkdtempSync(join(tmpdir(), 'topiary-spill-')), owned: true };
    mkdirSync(dir, { recursive: true });
    const probe = mkdtempSync(join(dir, '.probe-'));
    rmSync(probe, { recursive: true, force: true });
    return { dir, owned: false };
  } catch (e) {
    throw ioError(e, dir ?? tmpdir(), 'use as the spill folder');
  }
}

export class Overlay {
  private readonly memory = new Map<string, Float32Array>();
  private readonly spilled = new Map<string, SafetensorsIndex>();
  private bytes = 0;
  private spill: { dir: string; owned: boolean } | undefined;
  private readonly maxMemory: number;

  constructor(private readonly options: SpillOptions = {}) {
    this.maxMemory = options.maxMemory ?? DEFAULT_MAX_MEMORY;
    if (options.spillDir !== undefined) this.spill = prepareSpillDir(options.spillDir);
  }

  has(name: string): boolean {
    return this.memory.has(name) || this.spilled.has(name);
  }

  /** A copy of the stored tensor, or undefined when it was never modified. */
  get(name: string): Float32Array | undefined {
    const m = this.memory.get(name);
    if (m) return m.slice();
    const index = this.spilled.get(name);
    return index ? readTensor(index, name) : undefined;
  }

  /** Rows [start, start+count) of a stored [rows, cols] tensor. */
  getRows(name: string, cols: number, start: number, count: number): Float32Array | undefined {
    const m = this.memory.get(name);
    if (m) return m.slice(start * cols, (start + count) * cols);
    const all = this.get(name);
    return all?.slice(start * cols, (start + count) * cols);
  }

  /** Keep one block's modified tensors (the caller's arrays are taken over). */
  putBlock(block: number, tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>): void {
    let incoming = 0;
    for (const t of tensors.values()) incoming += t.data.byteLength;
    for (const name of tensors.keys()) this.drop(name);
    if (this.bytes + incoming <= this.maxMemory) {
      for (const [name, t] of tensors) this.memory.set(name, t.data);
      this.bytes += incoming;
      return;
    }
    this.spill ??= prepareSpillDir(undefined);
    const file = join(this.spill.dir, `block-${block}-${Date.now().toString(36)}.safetensors`);
    try {
      writeSafetensors(file, [...tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.data })), 'F32');
    } catch (e) {
      throw e instanceof TopiaryError ? e : ioError(e, file, 'write a spilled block');
    }
    const index = readSafetensorsIndex(file);
    for (const name of tensors.keys()) this.spilled.set(name, index);
  }

  /** Forget a tensor (it is read from elsewhere now). */
  drop(name: string): void {
    const m = this.memory.get(name);
    if (m) {
      this.bytes -= m.byteLength;
      this.memory.delete(name);
    }
    this.spilled.delete(name);
  }

  dispose(): void {
    this.memory.clear();
    this.spilled.clear();
    this.bytes = 0;
    if (this.spill?.owned) rmSync(this.spill.dir, { recursive: true, force: true });
    this.spill = undefined;
  }
}
