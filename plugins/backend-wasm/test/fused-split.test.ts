/**
 * The exp-heavy fused kernels split with the GEMM's worker threads (the calling thread's share in place on tfjs's
 * heap, each worker's on a copy in the pool's shared memory) give the bits of the same kernels on one thread.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { FusedKernel } from '@topiary/kernel';
import { createWasmBackend, sharedGemmPool } from '../src/index.js';

function values(n: number, seed: number, a = 3): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * a;
  });
}

function run(name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown> = {}): Uint32Array {
  const out = tf.engine().runKernel(name, inputs, attrs as never) as unknown as tf.Tensor;
  const bits = new Uint32Array((out.dataSync() as Float32Array).slice().buffer);
  out.dispose();
  return bits;
}

/** The cases: odd sizes (SIMD tails), item counts that do not split evenly, a query row block of 2 heads per kv head. */
function compute(): Uint32Array[] {
  const out: Uint32Array[] = [];
  for (const [items, rows, cols, seq] of [[37, 64, 64, 64], [9, 2 * 120, 120, 120], [64, 33, 33, 33]] as const) {
    const s = tf.tensor3d(values(items * rows * cols, items + cols), [items, rows, cols]);
    out.push(run(FusedKernel.causalSoftmax, { scores: s }, { seq, scale: 0.37 }));
    s.dispose();
  }
  for (const n of [300_001, 1 << 19]) {
    const g = tf.tensor1d(values(n, n));
    const u = tf.tensor1d(values(n, n + 1));
    out.push(run(FusedKernel.swiglu, { gate: g, up: u }));
    g.dispose();
    u.dispose();
  }
  return out;
}

describe('causal softmax and SwiGLU split with the GEMM worker threads', () => {
  afterAll(async () => {
    await createWasmBackend().init();
  });

  it('give the one-thread bits, and the workers really take shares', async () => {
    await createWasmBackend({ threads: 1 }).init();
    expect(sharedGemmPool()?.threads ?? 1).toBe(1);
    const alone = compute();

    await createWasmBackend({ threads: 3 }).init();
    const pool = sharedGemmPool();
    expect(pool?.threads).toBe(3);
    const spy = vi.spyOn(pool!, 'runShares');
    const split = compute();
    expect(spy.mock.calls.length, 'every case is above the split threshold').toBe(split.length);
    spy.mockRestore();
    for (let i = 0; i < alone.length; i++) expect(split[i], `case ${i}`).toEqual(alone[i]);
  });
});
