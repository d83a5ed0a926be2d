/**
 * Products the calling thread does alone, computed in place on tfjs's heap (src/gemm/in-place.ts): the same numbers,
 * bit for bit, as the pool's serial path that copies operands in and out, on shapes that write C directly (m, n
 * multiples of the tile) and through the padded buffer, with transposes, batches and broadcasts.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createWasmBackend, GemmPool, installFastBatchMatMul, relaxedSimdAvailable } from '../src/index.js';

function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  });
}

type Case = { a: number[]; b: number[]; ta: boolean; tb: boolean };
const CASES: Case[] = [
  { a: [8, 16], b: [16, 8], ta: false, tb: false }, // direct: m, n multiples of 4 and 8
  { a: [5, 7], b: [7, 3], ta: false, tb: false }, // padded
  { a: [7, 5], b: [3, 7], ta: true, tb: true },
  { a: [4, 12, 9], b: [4, 9, 16], ta: false, tb: false }, // batched, direct
  { a: [3, 6, 5], b: [5, 11], ta: false, tb: false }, // shared B folded into rows
  { a: [1, 2, 6, 5], b: [3, 1, 5, 7], ta: false, tb: false }, // broadcast on both sides
  { a: [2, 9, 6], b: [2, 10, 9], ta: true, tb: true },
];

function products(inPlace: boolean): Float32Array[] {
  installFastBatchMatMul({ threads: 2, fma: relaxedSimdAvailable(), inPlace });
  return CASES.map(({ a, b, ta, tb }, i) => {
    const x = tf.tensor(values(a.reduce((p, d) => p * d, 1), 2 * i + 1), a);
    const y = tf.tensor(values(b.reduce((p, d) => p * d, 1), 2 * i + 2), b);
    const z = tf.matMul(x, y, ta, tb);
    const out = z.dataSync() as Float32Array;
    tf.dispose([x, y, z]);
    return out;
  });
}

describe('backend-wasm: small products in place on the tfjs heap', () => {
  beforeAll(async () => {
    await createWasmBackend().init();
  });
  afterAll(() => {
    installFastBatchMatMul({ threads: 2, fma: relaxedSimdAvailable() });
  });

  it('give the copying serial path’s numbers bit for bit, and match the definition', () => {
    const spy = vi.spyOn(GemmPool.prototype, 'matmul');
    const copied = products(false);
    expect(spy).toHaveBeenCalledTimes(CASES.length);
    spy.mockClear();
    const inPlace = products(true);
    expect(spy, 'the in-place path never copies through the pool').not.toHaveBeenCalled();
    spy.mockRestore();
    inPlace.forEach((c, i) => expect([...c], `case ${i}`).toEqual([...copied[i]!]));
    // one closed-form check: case 1 (padded output)
    const a = values(35, 3);
    const b = values(21, 4);
    for (let r = 0; r < 5; r++)
      for (let j = 0; j < 3; j++) {
        let s = 0;
        for (let k = 0; k < 7; k++) s += a[r * 7 + k]! * b[k * 3 + j]!;
        expect(Math.abs(inPlace[1]![r * 3 + j]! - s)).toBeLessThan(1e-5);
      }
  });

  it('leave the heap consistent over many calls of varying sizes (scratch grows, no leak of tensors)', () => {
    const before = tf.memory().numTensors;
    for (let n = 1; n <= 40; n += 3) {
      const x = tf.tensor(values(n * 9, n), [n, 9]);
      const y = tf.tensor(values(9 * n, n + 1), [9, n]);
      const z = tf.matMul(x, y);
      const host = tf.tidy(() => tf.sum(tf.mul(tf.expandDims(x, 2), tf.expandDims(y, 0)), 1));
      const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(z, host))).dataSync()[0]!);
      expect(diff, `n=${n}`).toBeLessThan(1e-5);
      tf.dispose([x, y, z, host]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
