/**
 * Hidden states of many batches at many block boundaries, kept off the tensor heap: host memory up to a budget, a
 * temporary file beyond it. What a backward pass block by block needs (each block's inputs, kept from the forward
 * pass until the backward reaches that block) and what a depth score with one pass per dropped block needs (one
 * state per dropped block). Slots are addressed by (key, batch); a slot keeps its place in the file when rewritten.
 */
import * as tf from '@tensorflow/tfjs-core';
import { TopiaryError } from '@topiary/kernel';
import { SpillFile, type ActivationOptions } from './activations.js';

interface Slot {
  data?: Float32Array;
  offset: number;
  shape: [number, number, number];
}

const count = (shape: readonly number[]): number => shape.reduce((a, d) => a * d, 1);

export class StateStore {
  private readonly slots = new Map<string, Slot>();
  private spill: SpillFile | undefined;
  private inMemory = 0;

  constructor(private readonly options: ActivationOptions = {}) {}

  private static id(key: number, batch: number): string {
    return `${key}/${batch}`;
  }

  /** Store `data` (shape [b, t, d]) as slot (key, batch): in memory while the budget allows, else in the file. */
  put(key: number, batch: number, data: Float32Array, shape: readonly [number, number, number]): void {
    const id = StateStore.id(key, batch);
    const old = this.slots.get(id);
    if (old && old.data === undefined && count(old.shape) === data.length) {
      this.spill!.write(old.offset, data);
      this.slots.set(id, { offset: old.offset, shape: [...shape] });
      return;
    }
    if (old?.data) this.inMemory -= old.data.byteLength;
    const budget = this.options.budget;
    if (budget === undefined || this.inMemory + data.byteLength <= budget) {
      this.slots.set(id, { data, offset: -1, shape: [...shape] });
      this.inMemory += data.byteLength;
      return;
    }
    this.spill ??= new SpillFile(this.options.spillDir);
    const offset = this.spill.size;
    this.spill.write(offset, data);
    this.spill.size += data.byteLength;
    this.slots.set(id, { offset, shape: [...shape] });
  }

  /** Store a tensor's values (the tensor is left to the caller). */
  putTensor(key: number, batch: number, h: tf.Tensor3D): void {
    this.put(key, batch, (h.dataSync() as Float32Array).slice(), h.shape);
  }

  has(key: number, batch: number): boolean {
    return this.slots.has(StateStore.id(key, batch));
  }

  /** Slot (key, batch) as a tensor; the caller disposes it. */
  tensor(key: number, batch: number): tf.Tensor3D {
    const s = this.slots.get(StateStore.id(key, batch));
    if (!s) throw new TopiaryError('E_INTERNAL', `no hidden states stored for ${key}/${batch}`, { where: 'block-executor' });
    return tf.tensor3d(s.data ?? this.spill!.read(s.offset, count(s.shape)), s.shape);
  }

  /** Forget slot (key, batch) (its memory is freed; a spilled slot's place in the file is not reused). */
  delete(key: number, batch: number): void {
    const id = StateStore.id(key, batch);
    const s = this.slots.get(id);
    if (s?.data) this.inMemory -= s.data.byteLength;
    this.slots.delete(id);
  }

  /** Bytes held in host memory (spilled slots are on disk). */
  get bytes(): number {
    return this.inMemory;
  }

  /** How many slots live in the spill file. */
  get spilled(): number {
    return [...this.slots.values()].filter((s) => s.data === undefined).length;
  }

  dispose(): void {
    this.slots.clear();
    this.inMemory = 0;
    this.spill?.dispose();
    this.spill = undefined;
  }
}
