/**
 * tfjs-wasm's heap as shared memory (src/shared-heap.ts): the binary rewrite, the backend initialised on a shared
 * heap, and products split across the GEMM's threads in place on it — the same bits as the pool's copying path.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FusedKernel } from '@topiary/kernel';
import { createWasmBackend, GemmPool, relaxedSimdAvailable } from '../src/index.js';
import { heapIsShared, importSharedMemory, withSharedTfjsHeap } from '../src/shared-heap.js';
import { sharedGemmPool } from '../src/kernels/batch-matmul.js';
import { HEAP_SPLIT_MIN_FLOATS } from '../src/fused/install.js';
import { gemmModuleBytes, TILE } from '../src/gemm/kernels.js';
import type { ProductSpec } from '../src/gemm/plan.js';

const require = createRequire(import.meta.url);

/** The slice of the WebAssembly API these tests use (the project compiles without the DOM library's types). */
interface Mem {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}
type Imports = Record<string, Record<string, unknown>>;
interface WasmModuleApi {
  new (bytes: Uint8Array): object;
  imports(module: object): Array<{ module: string; name: string; kind: string }>;
  exports(module: object): Array<{ name: string; kind: string }>;
}
const WebAssembly = (globalThis as unknown as {
  WebAssembly: {
    Module: WasmModuleApi;
    Instance: new (module: object, imports: Imports) => { exports: Record<string, unknown> };
    Memory: new (d: { initial: number; maximum?: number; shared?: boolean }) => Mem;
    validate(bytes: Uint8Array): boolean;
    instantiate(bytes: Uint8Array, imports: Imports): Promise<{ instance: { exports: Record<string, unknown> } }>;
  };
}).WebAssembly;
const tfjsWasmDir = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');

function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  });
}

/** The (module, field, kind, limits flags) of every import of a module, read with WebAssembly.Module.imports. */
function memoryImports(bytes: Uint8Array): Array<{ module: string; name: string; kind: string }> {
  const module = new WebAssembly.Module(bytes);
  return WebAssembly.Module.imports(module).filter((i) => i.kind === 'memory');
}

describe('importSharedMemory', () => {
  it('turns tfjs-wasm’s memory definition into a shared import with the same limits', () => {
    const binary = new Uint8Array(readFileSync(join(tfjsWasmDir, 'tfjs-backend-wasm-simd.wasm')));
    expect(memoryImports(binary)).toEqual([]);
    const out = importSharedMemory(binary)!;
    expect(out).toBeDefined();
    expect(WebAssembly.validate(out.bytes)).toBe(true);
    expect(memoryImports(out.bytes)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
    expect(out.initial).toBeGreaterThan(0);
    expect(out.maximum).toBeGreaterThanOrEqual(out.initial);
    // the rewritten module really takes a shared memory (an unshared one is refused), and exports it as before
    const module = new WebAssembly.Module(out.bytes);
    const stubs = (memory: Mem): Imports => {
      const imports: Imports = {};
      for (const i of WebAssembly.Module.imports(module)) (imports[i.module] ??= {})[i.name] = i.kind === 'memory' ? memory : () => 0;
      return imports;
    };
    expect(() => new WebAssembly.Instance(module, stubs(new WebAssembly.Memory({ initial: out.initial, maximum: out.maximum })))).toThrow(/shared/);
    const shared = new WebAssembly.Memory({ initial: out.initial, maximum: out.maximum, shared: true });
    const instance = new WebAssembly.Instance(module, stubs(shared));
    const exported = WebAssembly.Module.exports(module).filter((e) => e.kind === 'memory');
    expect(exported, 'the glue still finds the memory among the exports').toHaveLength(1);
    expect(instance.exports[exported[0]!.name]).toBe(shared);
  });

  it('leaves alone what is not one defined memory', () => {
    expect(importSharedMemory(gemmModuleBytes(TILE, false, true)), 'a module that imports its memory').toBeUndefined();
    expect(importSharedMemory(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9])), 'not a wasm binary').toBeUndefined();
  });

  it('wraps WebAssembly.instantiate only while the initialisation runs, and only for tfjs-wasm’s imports', async () => {
    const original = WebAssembly.instantiate;
    const bytes = gemmModuleBytes(TILE, false, false);
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 16 });
    const seen = await withSharedTfjsHeap(async () => {
      expect(WebAssembly.instantiate).not.toBe(original);
      // another module instantiated meanwhile keeps its own imports
      const { instance } = await WebAssembly.instantiate(bytes, { env: { memory } });
      return instance.exports;
    });
    expect(Object.keys(seen)).toContain('exec');
    expect(WebAssembly.instantiate).toBe(original);
  });
});

describe('backend-wasm on a shared tfjs heap', () => {
  const backend = createWasmBackend({ threads: 2 });
  beforeAll(async () => {
    await backend.init();
  });

  it('initialises tfjs-wasm on shared memory and the GEMM’s threads work on it', () => {
    expect(backend.capabilities().notes.join('\n'), 'capabilities() says so').toMatch(/heap: shared memory/);
    const heap = (tf.engine().registry['wasm'] as unknown as { wasm: { asm: { memory: Mem & { grow(pages: number): number } } } }).wasm;
    expect(heapIsShared(heap.asm.memory)).toBe(true);
    expect(sharedGemmPool()!.heap).toBe(heap);
    // tfjs's own ops still compute on it
    const x = tf.tensor2d([1, 2, 3, 4], [2, 2]);
    expect([...(tf.add(x, x).dataSync() as Float32Array)]).toEqual([2, 4, 6, 8]);
  });

  it('splits products across the threads in place, with the copying path’s bits', () => {
    const fma = relaxedSimdAvailable();
    const copying = new GemmPool({ threads: 2, fma });
    const cases: Array<{ a: number[]; b: number[]; ta: boolean; tb: boolean }> = [
      { a: [256, 96], b: [96, 160], ta: false, tb: false }, // direct: tile multiples
      { a: [301, 97], b: [133, 97], ta: false, tb: true }, // padded output, transposed B
      { a: [97, 301], b: [97, 133], ta: true, tb: false },
      { a: [6, 64, 40], b: [6, 64, 40], ta: false, tb: true }, // batched (attention scores)
      { a: [4, 3, 50, 60], b: [60, 70], ta: false, tb: false }, // shared B folded into rows
    ];
    const runOnHeap = vi.spyOn(GemmPool.prototype, 'runOnHeap');
    try {
      cases.forEach(({ a, b, ta, tb }, i) => {
        const av = values(a.reduce((p, d) => p * d, 1), 3 * i + 1);
        const bv = values(b.reduce((p, d) => p * d, 1), 3 * i + 2);
        runOnHeap.mockClear();
        const x = tf.tensor(av, a);
        const y = tf.tensor(bv, b);
        const z = tf.matMul(x, y, ta, tb);
        const got = z.dataSync() as Float32Array;
        expect(runOnHeap, `case ${i}: split on the heap`).toHaveBeenCalled();
        expect(Math.max(...runOnHeap.mock.calls.map(([lists]) => lists.filter((l) => l.length > 0).length)), `case ${i}: both threads took a share`).toBe(2);
        // the copying pool's answer
        const batch = z.shape.slice(0, -2).reduce((p, d) => p * d, 1);
        const m = z.shape[z.shape.length - 2]!;
        const n = z.shape[z.shape.length - 1]!;
        const k = ta ? a[a.length - 2]! : a[a.length - 1]!;
        const folded = a.length > 2 && b.length === 2;
        const spec: ProductSpec = folded
          ? { batch: 1, m: batch * m, n, k, transposeA: ta, transposeB: tb, aBatched: true, bBatched: true }
          : { batch, m, n, k, transposeA: ta, transposeB: tb, aBatched: a.length > 2, bBatched: b.length > 2 };
        const want = new Float32Array(batch * m * n);
        copying.matmul(spec, av, bv, want);
        expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer)), `case ${i}: same bits`).toBe(true);
        tf.dispose([x, y, z]);
      });
    } finally {
      runOnHeap.mockRestore();
      copying.dispose();
    }
  });
});

/** Every output's bits (a kernel with several outputs returns them in order). */
function kernelBits(name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown> = {}): Uint32Array[] {
  const out = tf.engine().runKernel(name, inputs, attrs as never) as unknown as tf.Tensor | tf.Tensor[];
  const outs = Array.isArray(out) ? out : [out];
  const bits = outs.map((t) => new Uint32Array((t.dataSync() as Float32Array).slice().buffer));
  tf.dispose(outs);
  return bits;
}

/** Each split kernel on sizes past the threshold, odd where SIMD tails or uneven shares could show. */
function splitKernels(): Array<{ name: string; bits: Uint32Array[] }> {
  // rows of a [rows, cols] tensor making a memory-bound kernel touch just past its split threshold (odd: uneven shares)
  const rowsFor = (floatsPerRow: number): number => (Math.ceil(HEAP_SPLIT_MIN_FLOATS.light / floatsPerRow) | 1) + 2;
  const ropeHeads = Math.ceil(HEAP_SPLIT_MIN_FLOATS.light / (2 * 5 * 128 * 32)) + 1;
  const adamN = Math.ceil(HEAP_SPLIT_MIN_FLOATS.light / 7) + 3;
  const t = (shape: number[], seed: number, scale = 1): tf.Tensor => tf.tensor(values(shape.reduce((p, d) => p * d, 1), seed).map((v) => v * scale), shape);
  const cases: Array<[string, Record<string, tf.Tensor>, Record<string, unknown>]> = [
    [FusedKernel.causalSoftmax, { scores: t([37, 64, 64], 1, 3) }, { seq: 64, scale: 0.37 }],
    [FusedKernel.swiglu, { gate: t([300_001], 2, 3), up: t([300_001], 3) }, {}],
    [FusedKernel.swigluGrad, { gate: t([100_003], 4, 3), up: t([100_003], 5), dm: t([100_003], 6) }, {}],
    // the memory-bound kernels split only past HEAP_SPLIT_MIN_FLOATS.light floats touched
    [FusedKernel.rmsNorm, { x: t([rowsFor(2 * 97), 97], 7), weight: t([97], 8) }, { eps: 1e-5, activeDim: 97 }],
    [FusedKernel.softmaxGrad, { probs: t([rowsFor(3 * 131), 131], 9), dProbs: t([rowsFor(3 * 131), 131], 10) }, { scale: 0.5 }],
    [FusedKernel.ropeHeads, { x: t([5 * 128, ropeHeads * 32], 11), cos: t([128, 32], 12), sin: t([128, 32], 13) }, { batch: 5, seq: 128, heads: ropeHeads, headDim: 32, backward: false }],
    [FusedKernel.ropeHeads, { x: t([5, ropeHeads, 128, 32], 14), cos: t([128, 32], 12), sin: t([128, 32], 13) }, { batch: 5, seq: 128, heads: ropeHeads, headDim: 32, backward: true }],
    ['Add', { a: t([rowsFor(3 * 257), 257], 19), b: t([rowsFor(3 * 257), 257], 20) }, {}], // the residual adds (tfjs's own kernel on one thread)
    [
      FusedKernel.adamw,
      { param: t([adamN], 15), grad: t([adamN], 16), m: t([adamN], 17, 0.1), v: t([adamN], 18, 0.01).abs() },
      { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, decay: 1e-4, gradScale: 0.5, bc1: 0.1, bc2: 0.05 },
    ],
  ];
  return cases.map(([name, inputs, attrs]) => {
    const bits = kernelBits(name, inputs, attrs);
    tf.dispose(Object.values(inputs));
    return { name, bits };
  });
}

describe('the softmax cross-entropy on a shared tfjs heap', () => {
  beforeAll(async () => {
    await createWasmBackend({ threads: 2 }).init();
  });

  it('reads the logits and writes the gradient in place, with the copying path’s bits', () => {
    const [rows, vocab] = [301, 517];
    const z = values(rows * vocab, 41).map((v) => 4 * v);
    const targets = Int32Array.from({ length: rows }, (_, i) => (i === 7 ? -1 : (i * 37) % vocab));
    const onHeap = vi.spyOn(GemmPool.prototype, 'softmaxCrossEntropyOnHeap');
    const [loss, grad] = tf.engine().runKernel(FusedKernel.softmaxCrossEntropy, { logits: tf.tensor2d(z, [rows, vocab]), targets: tf.tensor1d(targets, 'int32') }, { withGrad: true, scale: 0.25 } as never) as unknown as tf.Tensor[];
    expect(onHeap).toHaveBeenCalledTimes(1);
    onHeap.mockRestore();
    const copying = new GemmPool({ threads: 2, fma: relaxedSimdAvailable() });
    const wantLoss = new Float32Array(rows);
    const wantGrad = new Float32Array(rows * vocab);
    copying.softmaxCrossEntropy(z, targets, vocab, 0.25, wantLoss, wantGrad);
    copying.dispose();
    const bits = (a: Float32Array): Uint32Array => new Uint32Array(a.slice().buffer);
    expect(bits(loss!.dataSync() as Float32Array)).toEqual(bits(wantLoss));
    expect(bits(grad!.dataSync() as Float32Array)).toEqual(bits(wantGrad));
    tf.dispose([loss!, grad!]);
  });
});

describe('fused kernels split in place on a shared tfjs heap', () => {
  afterAll(async () => {
    await createWasmBackend().init();
  });

  it('give the one-thread bits, every kernel split with no copy through the pool', async () => {
    await createWasmBackend({ threads: 3 }).init();
    const pool = sharedGemmPool()!;
    expect(pool.heap, 'the pool works on the shared heap').toBeDefined();
    const onHeap = vi.spyOn(pool, 'runOnHeap');
    const copies = vi.spyOn(pool, 'runShares');
    const split = splitKernels();
    expect(copies, 'nothing copied through the pool').not.toHaveBeenCalled();
    expect(onHeap.mock.calls.length, 'every case split').toBe(split.length);
    for (const [lists] of onHeap.mock.calls) expect(lists.filter((l) => l.length > 0).length, 'both workers took a share').toBe(2);
    onHeap.mockRestore();
    copies.mockRestore();

    await createWasmBackend({ threads: 1 }).init();
    const alone = splitKernels();
    // bytes compared directly (a deep equality over millions of elements takes tens of seconds)
    const firstDifference = (a: Uint32Array, b: Uint32Array): number => (a.length !== b.length ? 0 : a.findIndex((v, k) => v !== b[k]));
    split.forEach((c, i) => c.bits.forEach((b, j) => expect(firstDifference(b, alone[i]!.bits[j]!), `${c.name} (case ${i}), output ${j}: first differing element`).toBe(-1)));
  });
});
