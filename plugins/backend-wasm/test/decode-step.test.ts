/**
 * The fused decode step (FusedKernel.decodeStep, src/fused/decode.ts) against the model's composite kv-cache decode
 * (model.decode with [n, 1] ids, tfjs ops per block) on the same cache: grouped-query heads, biases, a slimmed model
 * with per-block shapes (a block without attention, one without feed-forward, a non-contiguous head → kv-head map),
 * a skipped block and masked channels; then generation through it against the composite loop.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FusedKernel } from '@topiary/kernel';
import { createWasmBackend } from '../src/index.js';
import { decodeStepKernel, type StepOffload } from '../src/fused/decode.js';
import { DecodeThreads } from '../src/fused/decode-threads.js';
import { nodeGemmPlatform } from '../src/gemm/platform-node.js';
import type { CreateConfig, LlamaModel } from '@topiary/model-llama';

/** Deterministic values in [−a, a). */
function values(n: number, seed: number, a: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * a;
  });
}

function maxAbsDiff(x: Float32Array, y: Float32Array): number {
  expect(x.length).toBe(y.length);
  let d = 0;
  for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i]! - y[i]!));
  return d;
}

let lib: typeof import('@topiary/model-llama');

const stories = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'assets', 'models', 'stories260K');

/** A random model whose biases and norms are not the zeros/ones createLlama starts from. */
function model(config: CreateConfig, seed: number): LlamaModel {
  const m = lib.createLlama(config, { seed, initStd: 0.08 });
  let k = 0;
  for (const [name, shape] of lib.parameterShapes(m.config)) {
    if (shape.length === 1) m.writeWeight(name, values(shape[0]!, seed * 100 + k++, 0.5).map((v) => (name.endsWith('.bias') ? v : 1 + v)));
  }
  return m;
}

/** The composite path's logits for the next tokens, and the fused step's, from one prompt prefix each. */
function bothWays(m: LlamaModel, prompts: number[][], next: number[][]): { composite: Float32Array[]; fused: Float32Array[] } {
  const n = prompts.length;
  const composite: Float32Array[] = [];
  const fused: Float32Array[] = [];
  const capacity = prompts[0]!.length + next[0]!.length;
  for (const useFused of [false, true]) {
    const cache = m.newCache();
    const prefill = tf.tensor2d(Int32Array.from(prompts.flat()), [n, prompts[0]!.length], 'int32');
    m.decode(prefill, cache).dispose();
    prefill.dispose();
    for (let step = 0; step < next[0]!.length; step++) {
      const ids = Int32Array.from(next.map((row) => row[step]!));
      const logits = useFused ? m.decodeStep(ids, cache, capacity) : m.decode(tf.tensor2d(ids, [n, 1], 'int32'), cache);
      (useFused ? fused : composite).push(logits.dataSync() as Float32Array);
      logits.dispose();
    }
    m.disposeCache(cache);
  }
  return { composite, fused };
}

/**
 * Register a decode kernel running on `offload` for wasm in place of the backend's own (null: no decode kernel at
 * all); returns what puts the backend's own back (idempotent, for a test that restores it before its end too).
 */
function swapDecodeKernel(offload: StepOffload | null): () => void {
  const own = tf.getKernel(FusedKernel.decodeStep, 'wasm')!;
  tf.unregisterKernel(FusedKernel.decodeStep, 'wasm');
  if (offload !== null) tf.registerKernel({ kernelName: FusedKernel.decodeStep, backendName: 'wasm', kernelFunc: decodeStepKernel(offload) });
  return () => {
    if (tf.getKernel(FusedKernel.decodeStep, 'wasm') === own) return;
    if (tf.getKernel(FusedKernel.decodeStep, 'wasm')) tf.unregisterKernel(FusedKernel.decodeStep, 'wasm');
    tf.registerKernel(own);
  };
}

describe('backend-wasm fused decode step', () => {
  beforeAll(async () => {
    await createWasmBackend().init();
    lib = await import('@topiary/model-llama');
  });
  afterAll(() => {
    tf.disposeVariables();
  });

  it('is registered, and the model uses it', () => {
    expect(tf.getKernel(FusedKernel.decodeStep, 'wasm')).toBeDefined();
    const m = model({ vocabSize: 40, dim: 16, nLayers: 1, nHeads: 2, hiddenDim: 24, maxSeqLen: 16 }, 1);
    expect(m.canDecodeStep).toBe(true);
    m.dispose();
    // dynamic NTK scaling moves the RoPE base with the length: the fixed tables of the step would not follow
    const dynamic = model({ vocabSize: 40, dim: 16, nLayers: 1, nHeads: 2, hiddenDim: 24, maxSeqLen: 64, ropeScaling: { type: 'dynamic', factor: 2, maxPositionEmbeddings: 32 } }, 1);
    expect(dynamic.canDecodeStep).toBe(false);
    dynamic.dispose();
  });

  it('gives the composite decode logits: GQA, q/k/v biases, untied head, 3 sequences, SIMD body and tails', () => {
    // dim 36 and head dim 6: SIMD quads plus a scalar tail in every dot product; 7 kv rows: a 1-row tail in the GEMV
    const m = model({ vocabSize: 103, dim: 36, nLayers: 3, nHeads: 6, nKvHeads: 2, headDim: 6, hiddenDim: 50, maxSeqLen: 32, attentionBias: true, tiedEmbeddings: false }, 2);
    const prompts = [[1, 5, 9, 2], [3, 3, 7, 100], [0, 60, 61, 62]];
    const next = [[4, 8, 15, 16, 23], [42, 1, 2, 3, 4], [99, 98, 97, 96, 95]];
    const { composite, fused } = bothWays(m, prompts, next);
    for (let s = 0; s < composite.length; s++) {
      const scale = Math.max(...composite[s]!.map(Math.abs));
      expect(scale).toBeGreaterThan(0.1); // the logits are not trivially small
      expect(maxAbsDiff(fused[s]!, composite[s]!)).toBeLessThan(2e-5 * (1 + scale));
    }
    m.dispose();
  });

  it('follows per-block shapes, a non-contiguous head map, a skipped block and masked hidden channels', () => {
    const layers = [
      { nHeads: 4, nKvHeads: 2, hiddenDim: 20, headKvMap: [1, 0, 0, 1] },
      { nHeads: 0, nKvHeads: 0, hiddenDim: 12 },
      { nHeads: 3, nKvHeads: 3, hiddenDim: 0 },
      { nHeads: 2, nKvHeads: 1, hiddenDim: 8 },
    ];
    const m = model({ vocabSize: 64, dim: 32, nLayers: 4, nHeads: 4, nKvHeads: 2, headDim: 8, hiddenDim: 20, maxSeqLen: 24, layers, tiedEmbeddings: true }, 3);
    m.maskGroups([lib.groupId.block(1), lib.groupId.hidden(0), lib.groupId.hidden(5), lib.groupId.hidden(31)]);
    const { composite, fused } = bothWays(m, [[2, 4, 6], [8, 10, 12]], [[1, 2, 3], [63, 62, 61]]);
    for (let s = 0; s < composite.length; s++) {
      const scale = Math.max(...composite[s]!.map(Math.abs));
      expect(maxAbsDiff(fused[s]!, composite[s]!)).toBeLessThan(2e-5 * (1 + scale));
    }
    m.dispose();
  });

  it('generates what the composite loop generates (greedy and sampled), from a one-token prompt too', () => {
    const m = model({ vocabSize: 50, dim: 24, nLayers: 2, nHeads: 4, nKvHeads: 2, hiddenDim: 40, maxSeqLen: 48 }, 4);
    const runs = (): number[][][] => [
      [lib.generate(m, [1], { maxTokens: 30, stopAtEos: false })],
      lib.generate(m, [[1, 7, 9], [1, 20, 21]], { maxTokens: 25, stopAtEos: false, temperature: 0.8, topK: 10, seed: 5 }),
    ];
    const fused = runs();
    const restore = swapDecodeKernel(null);
    try {
      expect(m.canDecodeStep).toBe(false);
      expect(runs()).toEqual(fused);
    } finally {
      restore();
    }
    expect(fused[0]![0]!.length).toBe(30);
    m.dispose();
  });

  it.each([
    ['in place on the shared heap', true],
    ['the weights copied to shared memory once per generation, caches written back', false],
  ])('on two threads (%s): the same logits', async (_, onHeap) => {
    const threads = new DecodeThreads(nodeGemmPlatform, 2, 0, 0, onHeap);
    // the steps do not wait for the workers to start (they run in place until then): wait here, so every step counts
    await threads.ready(tf.findBackend('wasm') as never);
    let offloaded = 0;
    const counting: StepOffload = { run: (...args) => (threads.run(...args) ? (offloaded++, true) : false) };
    const restore = swapDecodeKernel(counting);
    try {
      const m = model({ vocabSize: 103, dim: 36, nLayers: 3, nHeads: 6, nKvHeads: 2, headDim: 6, hiddenDim: 50, maxSeqLen: 32, attentionBias: true, tiedEmbeddings: false }, 2);
      const { composite, fused } = bothWays(m, [[1, 5, 9, 2], [3, 3, 7, 100]], [[4, 8, 15, 16, 23], [42, 1, 2, 3, 4]]);
      expect(offloaded).toBe(5);
      expect(threads.onHeap, 'the backend initialised tfjs-wasm on a shared heap').toBe(onHeap);
      expect(threads.handoffs).toBe(5 * (3 * 4 + 1)); // per block q/k/v, o, gate/up and down, then the head
      for (let s = 0; s < composite.length; s++) {
        const scale = Math.max(...composite[s]!.map(Math.abs));
        expect(maxAbsDiff(fused[s]!, composite[s]!)).toBeLessThan(2e-5 * (1 + scale));
      }
      // a generation whose cache moves to the threads and back: the same tokens as in place, every time
      const greedy = () => lib.generate(m, [[1, 2], [3, 4], [5, 6]], { maxTokens: 20, stopAtEos: false });
      const threaded = greedy();
      expect(offloaded).toBe(5 + 19);
      restore();
      expect(greedy()).toEqual(threaded);
      m.dispose();
    } finally {
      restore();
      threads.dispose();
    }
  });

  it("stories260K greedy from BOS through the fused step reproduces llama2.c's 256 tokens (golden.json), one and two threads (in place on the shared heap)", async () => {
    const golden = JSON.parse(readFileSync(join(stories, 'stories260K.golden.json'), 'utf8')) as { greedy_ids: number[] };
    const m = await lib.loadModel(join(stories, 'stories260K.bin'));
    const threads = new DecodeThreads(nodeGemmPlatform, 2, 0, 0);
    await threads.ready(tf.findBackend('wasm') as never);
    let restore = (): void => {};
    try {
      expect(m.canDecodeStep).toBe(true);
      expect(lib.generate(m, [1], { maxTokens: golden.greedy_ids.length, stopAtEos: false })).toEqual(golden.greedy_ids);
      restore = swapDecodeKernel(threads);
      expect(lib.generate(m, [1], { maxTokens: golden.greedy_ids.length, stopAtEos: false })).toEqual(golden.greedy_ids);
      expect(threads.handoffs).toBeGreaterThan(255 * 5 * 4);
      expect(threads.onHeap).toBe(true);
    } finally {
      restore();
      threads.dispose();
      m.dispose();
    }
  });

  it('a worker taken off its core: the calling thread claims the chunks it has not — the same bits as one thread', async () => {
    const m = model({ vocabSize: 103, dim: 36, nLayers: 3, nHeads: 6, nKvHeads: 2, headDim: 6, hiddenDim: 50, maxSeqLen: 32, attentionBias: true, tiedEmbeddings: false }, 2);
    const prompts = [[1, 5, 9, 2], [3, 3, 7, 100]];
    const next = [[4, 8, 15, 16, 23], [42, 1, 2, 3, 4]];
    const alone = bothWays(m, prompts, next).fused;
    // the worker sleeps 3 ms as it picks up every third hand-off (as when the system runs another thread on its core)
    const stalling: typeof nodeGemmPlatform = {
      ...nodeGemmPlatform,
      startWorker: (body, data, events) => {
        expect(body).toContain('seen = s;');
        return nodeGemmPlatform.startWorker(body.replace('seen = s;', 'seen = s; if (s % 3 === 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3);'), data, events);
      },
    };
    const threads = new DecodeThreads(stalling, 2, 0, 0);
    await threads.ready(tf.findBackend('wasm') as never);
    const restore = swapDecodeKernel(threads);
    try {
      const stalled = bothWays(m, prompts, next).fused;
      expect(threads.handoffs).toBe(5 * (3 * 4 + 1));
      expect(stalled).toEqual(alone);
      // the stalled hand-offs ran on the calling thread alone: it ran more than its half of the chunks
      expect(threads.chunksHere).toBeGreaterThan(threads.chunks / 2);
      expect(threads.chunksHere).toBeLessThanOrEqual(threads.chunks);
    } finally {
      restore();
      threads.dispose();
      m.dispose();
    }
  });

  it('steps before the workers are up run in place on one thread, and the threads take over once they are', async () => {
    const m = model({ vocabSize: 103, dim: 36, nLayers: 2, nHeads: 6, nKvHeads: 2, headDim: 6, hiddenDim: 50, maxSeqLen: 64, tiedEmbeddings: false }, 3);
    const alone = lib.generate(m, [[1, 2]], { maxTokens: 40, stopAtEos: false });
    const threads = new DecodeThreads(nodeGemmPlatform, 2, 0, 0);
    const restore = swapDecodeKernel(threads);
    try {
      const first = lib.generate(m, [[1, 2]], { maxTokens: 1, stopAtEos: false }); // starts the workers, does not wait
      expect(first[0]).toEqual(alone[0]!.slice(0, 1));
      await threads.ready(tf.findBackend('wasm') as never);
      expect(lib.generate(m, [[1, 2]], { maxTokens: 40, stopAtEos: false })).toEqual(alone);
      expect(threads.handoffs).toBeGreaterThan(0);
    } finally {
      restore();
      threads.dispose();
      m.dispose();
    }
  });

  it('names what does not fit', () => {
    const m = model({ vocabSize: 20, dim: 8, nLayers: 1, nHeads: 2, hiddenDim: 8, maxSeqLen: 8 }, 5);
    const cache = m.newCache();
    expect(() => m.decodeStep(Int32Array.of(3), cache, 9)).toThrow(/exceeds/);
    expect(() => m.decodeStep(Int32Array.of(25), cache, 8)).toThrow(/outside the model's vocabulary/);
    m.disposeCache(cache);
    m.dispose();
  });
});
