import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { createContainer, resolveAllOrNone, Tokens } from '@topiary/kernel';
import plugin, { createWasmBackend, defaultThreads, gemmInfo, installFastBatchMatMul, productSpec, sharedGemmPool, uninstallFastBatchMatMul } from '../src/index.js';

/** Reference product in float64 on the host (closed form: the definition of a matrix product). */
function hostMatMul(a: Float32Array, b: Float32Array, batch: number, m: number, k: number, n: number, bBatched: boolean): Float64Array {
  const c = new Float64Array(batch * m * n);
  for (let t = 0; t < batch; t++)
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[t * m * k + i * k + p]! * b[(bBatched ? t * k * n : 0) + p * n + j]!;
        c[t * m * n + i * n + j] = s;
      }
  return c;
}

function maxAbsDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i]! - y[i]!));
  return d;
}

describe('backend-wasm', () => {
  beforeAll(async () => {
    await createWasmBackend().init();
  });

  it('registers one TensorBackend named wasm in the container it is given', () => {
    const c = createContainer();
    plugin.register(c, {});
    const all = resolveAllOrNone(c, Tokens.TensorBackend);
    expect(all.map((b) => b.name)).toEqual(['wasm']);
    expect(resolveAllOrNone(createContainer(), Tokens.TensorBackend)).toEqual([]);
  });

  it('activates the wasm engine and reports what runs', async () => {
    const b = createWasmBackend();
    expect(await b.available()).toEqual({ ok: true });
    await b.init();
    expect(tf.getBackend()).toBe('wasm');
    const caps = b.capabilities();
    expect(caps.simd).toBe(true);
    expect(caps.threads).toBe(defaultThreads());
    expect(caps.notes.join(' ')).toContain('tfjs-backend-wasm-simd.wasm');
    expect(caps.notes.join(' ')).toContain(`GEMM on ${defaultThreads()} thread(s)`);
    // threads as an option, with a typed error for nonsense
    expect(createWasmBackend({ threads: 1 }).capabilities().threads).toBe(1);
    expect(() => createWasmBackend({ threads: 0 })).toThrow(/threads must be a whole number/);
  });

  it('reads the product a BatchMatMul asks for: folds a shared B into the rows, leaves odd broadcasts to the stock kernel', () => {
    const t = (shape: number[], dtype: 'float32' | 'int32' = 'float32') => ({ dataId: {}, shape, dtype });
    expect(productSpec(t([3, 5, 24]), t([24, 7]), false, false)).toMatchObject({ batch: 1, m: 15, n: 7, k: 24 });
    expect(productSpec(t([3, 24, 5]), t([24, 7]), true, false)).toMatchObject({ batch: 3, m: 5, aBatched: true, bBatched: false });
    expect(productSpec(t([5, 24]), t([3, 7, 24]), false, true)).toMatchObject({ batch: 3, n: 7, k: 24, aBatched: false, bBatched: true });
    expect(productSpec(t([1, 6, 5, 24]), t([6, 1, 24, 7]), false, false)).toMatchObject({ batch: 36 });
    expect([...productSpec(t([1, 6, 5, 24]), t([6, 1, 24, 7]), false, false)!.aIndex!.slice(0, 8)]).toEqual([0, 1, 2, 3, 4, 5, 0, 1]);
    expect([...productSpec(t([1, 6, 5, 24]), t([6, 1, 24, 7]), false, false)!.bIndex!.slice(0, 8)]).toEqual([0, 0, 0, 0, 0, 0, 1, 1]);
    expect(productSpec(t([5, 24], 'int32'), t([24, 7], 'int32'), false, false)).toBeUndefined();
  });

  it('installing the fast BatchMatMul twice keeps one wrapper around the stock kernel', () => {
    const stock1 = installFastBatchMatMul();
    const stock2 = installFastBatchMatMul();
    expect(stock2).toBe(stock1);
    expect(tf.getKernel('BatchMatMul', 'wasm')).not.toBe(stock1);
  });

  // Every transpose/batch/broadcast path of the replacement against the host product; tolerance 1e-4 relative
  // to the inner size (float32 accumulation over k = 24 terms of magnitude ≤ 1).
  const cases: Array<{ a: number[]; b: number[]; ta: boolean; tb: boolean }> = [
    { a: [5, 24], b: [24, 7], ta: false, tb: false },
    { a: [24, 5], b: [24, 7], ta: true, tb: false },
    { a: [5, 24], b: [7, 24], ta: false, tb: true },
    { a: [24, 5], b: [7, 24], ta: true, tb: true },
    { a: [3, 5, 24], b: [3, 24, 7], ta: false, tb: false },
    { a: [3, 24, 5], b: [3, 7, 24], ta: true, tb: true },
    { a: [2, 3, 5, 24], b: [2, 3, 24, 7], ta: false, tb: false },
    { a: [3, 5, 24], b: [24, 7], ta: false, tb: false },
    { a: [5, 24], b: [3, 24, 7], ta: false, tb: false },
    { a: [1, 5, 24], b: [1, 24, 7], ta: false, tb: false },
    // Larger items: several threads, several tiles, edge tiles in both directions.
    { a: [3, 64, 40], b: [3, 40, 64], ta: false, tb: false },
    { a: [3, 40, 64], b: [3, 64, 40], ta: true, tb: true },
    { a: [2, 2, 64, 40], b: [2, 2, 64, 40], ta: false, tb: true },
    { a: [64, 40], b: [3, 40, 64], ta: false, tb: false },
    { a: [130, 600], b: [600, 70], ta: false, tb: false },
    { a: [600, 130], b: [70, 600], ta: true, tb: true },
    { a: [9, 600], b: [1100, 600], ta: false, tb: true },
  ];
  for (const { a: sa, b: sb, ta, tb } of cases) {
    it(`matMul ${JSON.stringify(sa)}${ta ? 'ᵀ' : ''} · ${JSON.stringify(sb)}${tb ? 'ᵀ' : ''} matches the definition`, () => {
      const before = tf.memory().numTensors;
      const a = tf.randomUniform(sa, -1, 1, 'float32', 1);
      const b = tf.randomUniform(sb, -1, 1, 'float32', 2);
      const c = tf.matMul(a, b, ta, tb);
      // Host reference on explicitly transposed copies (transpose is exact).
      const a2 = ta ? tf.transpose(a, [...sa.keys()].map((i, _, r) => (i < r.length - 2 ? i : i === r.length - 2 ? r.length - 1 : r.length - 2))) : a;
      const b2 = tb ? tf.transpose(b, [...sb.keys()].map((i, _, r) => (i < r.length - 2 ? i : i === r.length - 2 ? r.length - 1 : r.length - 2))) : b;
      const m = a2.shape[a2.shape.length - 2]!;
      const k = a2.shape[a2.shape.length - 1]!;
      const n = b2.shape[b2.shape.length - 1]!;
      const batchA = a2.size / (m * k);
      const batchB = b2.size / (k * n);
      const batch = Math.max(batchA, batchB);
      // Broadcast A by tiling when B carries the batch.
      const aData = a2.dataSync() as Float32Array;
      const aTiled = batchA === batch ? aData : Float32Array.from({ length: batch * m * k }, (_, i) => aData[i % (m * k)]!);
      const want = hostMatMul(aTiled, b2.dataSync() as Float32Array, batch, m, k, n, batchB > 1);
      expect(c.shape).toEqual([...(sa.length >= sb.length ? sa : sb).slice(0, -2), m, n]);
      expect(maxAbsDiff(c.dataSync(), want)).toBeLessThan(1e-4 * k);
      tf.dispose([a, b, c, a2, b2]);
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it('batch shapes that broadcast on both sides ([1,6]·[6,1] → 36 items) and empty batches give the right result', () => {
    const a = tf.randomUniform([1, 6, 3, 4], -1, 1, 'float32', 8);
    const b = tf.randomUniform([6, 1, 4, 5], -1, 1, 'float32', 9);
    const c = tf.matMul(a, b);
    expect(c.shape).toEqual([6, 6, 3, 5]);
    // the same items with both operands materialised to [6, 6, …] (equal batch shapes: the GEMM path)
    const want = tf.matMul(tf.broadcastTo(a, [6, 6, 3, 4]), tf.broadcastTo(b, [6, 6, 4, 5]));
    expect(maxAbsDiff(c.dataSync(), want.dataSync())).toBeLessThan(1e-5);
    // one side broadcast along a leading axis only: [2,3]·[1,3] → 6 items, B's three repeated
    const a2 = tf.randomUniform([2, 3, 3, 4], -1, 1, 'float32', 10);
    const b2 = tf.randomUniform([1, 3, 4, 5], -1, 1, 'float32', 11);
    const want2 = tf.matMul(a2, tf.broadcastTo(b2, [2, 3, 4, 5]));
    expect(maxAbsDiff(tf.matMul(a2, b2).dataSync(), want2.dataSync())).toBeLessThan(1e-5);
    tf.dispose([a2, b2, want2]);
    const empty = tf.matMul(tf.zeros([0, 64, 1100]), tf.zeros([0, 1100, 2048]));
    expect(empty.shape).toEqual([0, 64, 2048]);
    tf.dispose([a, b, c, want, empty]);
  });

  it('the products above ran on the GEMM pool', () => {
    const info = gemmInfo();
    expect(info?.threads).toBeGreaterThanOrEqual(1);
  });

  it('matMul gradients (which use transpose flags) match the closed form dA = dY·Bᵀ, dB = Aᵀ·dY', () => {
    const a = tf.randomUniform([4, 6], -1, 1, 'float32', 3);
    const b = tf.randomUniform([6, 5], -1, 1, 'float32', 4);
    const dy = tf.randomUniform([4, 5], -1, 1, 'float32', 5);
    const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y), dy)))([a, b]);
    const A = a.arraySync() as number[][];
    const B = b.arraySync() as number[][];
    const D = dy.arraySync() as number[][];
    const wantA = A.map((_, i) => B.map((row) => row.reduce((s, bv, j) => s + D[i]![j]! * bv, 0)));
    const wantB = B.map((_, p) => D[0]!.map((__, j) => A.reduce((s, arow, i) => s + arow[p]! * D[i]![j]!, 0)));
    expect(maxAbsDiff(ga!.dataSync(), wantA.flat())).toBeLessThan(1e-5);
    expect(maxAbsDiff(gb!.dataSync(), wantB.flat())).toBeLessThan(1e-5);
  });

  it('UnsortedSegmentSum exists on wasm and sums duplicate ids, dropping out-of-range ones', () => {
    const x = tf.tensor2d([[1, 2], [3, 4], [5, 6], [7, 8]]);
    const out = tf.unsortedSegmentSum(x, tf.tensor1d([2, 0, 2, 5], 'int32'), 3);
    expect(out.arraySync()).toEqual([[3, 4], [0, 0], [6, 8]]);
    const ints = tf.unsortedSegmentSum(tf.tensor1d([1, 2, 3], 'int32'), tf.tensor1d([1, 1, 0], 'int32'), 2);
    expect(ints.dtype).toBe('int32');
    expect(ints.arraySync()).toEqual([3, 3]);
  });

  it('the gradient of gather (an embedding lookup) is the per-row count-weighted sum', () => {
    const table = tf.randomUniform([5, 3], -1, 1, 'float32', 6);
    const ids = tf.tensor1d([1, 3, 1, 1, 4], 'int32');
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.gather(t, ids)))(table);
    expect(g.arraySync()).toEqual([[0, 0, 0], [3, 3, 3], [0, 0, 0], [1, 1, 1], [1, 1, 1]]);
  });
});

describe('backend-wasm: Identity shares data', () => {
  it('a clone shares the bytes (no copy), outlives its source, and frees them with the last reference', async () => {
    await createWasmBackend().init();
    const before = tf.memory().numBytes;
    const a = tf.tensor1d([1, 2, 3, 4]);
    const b = tf.clone(a);
    expect(b.dataId).toBe(a.dataId); // one buffer for two tensors (the stock kernel made a second one)
    a.dispose();
    expect([...(b.dataSync() as Float32Array)]).toEqual([1, 2, 3, 4]);
    b.dispose();
    expect(tf.memory().numBytes).toBe(before);
    // gradients through saved (cloned) tensors are unchanged
    const g = tf.tidy(() => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.exp(x), x)))(tf.tensor1d([0.5, -1])).dataSync());
    const ref = [0.5, -1].map((x) => Math.exp(x) * (1 + x));
    for (let i = 0; i < 2; i++) expect(g[i]).toBeCloseTo(ref[i]!, 5);
  });
});

describe('backend-wasm: GatherV2 along axis 0 copies rows', () => {
  it('gives the rows asked for (float32 and int32, any index shape, negative axis), the stock kernel the rest', async () => {
    await createWasmBackend().init();
    const spy = vi.spyOn(Int32Array.prototype, 'copyWithin');
    const table = Float32Array.from({ length: 7 * 5 }, (_, i) => (i % 3 === 0 ? -0 : i * 0.37 - 4));
    const x = tf.tensor2d(table, [7, 5]);
    const ids = tf.tensor2d([[6, 0, 3], [3, 3, 1]], [2, 3], 'int32');
    const g = tf.gather(x, ids);
    expect(g.shape).toEqual([2, 3, 5]);
    expect(spy, 'the row copy ran').toHaveBeenCalled();
    spy.mockRestore();
    const want = [6, 0, 3, 3, 3, 1].flatMap((r) => [...table.subarray(r * 5, r * 5 + 5)]);
    const got = g.dataSync() as Float32Array;
    expect(new Uint32Array(got.slice().buffer), 'same bytes (−0 kept)').toEqual(new Uint32Array(Float32Array.from(want).buffer));
    expect([...(tf.gather(tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2], 'int32'), tf.tensor1d([1, 1, 0], 'int32'), -3).dataSync())]).toEqual([5, 6, 7, 8, 5, 6, 7, 8, 1, 2, 3, 4]);
    // another axis: the stock kernel
    expect([...(tf.gather(x, tf.tensor1d([4, 0], 'int32'), 1).dataSync() as Float32Array)]).toEqual(Array.from({ length: 7 }, (_, r) => [table[r * 5 + 4]!, table[r * 5]!]).flat());
    tf.dispose([x, ids, g]);
  });
});

describe('backend-wasm: a GEMM worker that fails', () => {
  it('is noticed; products continue on the calling thread, with a warning, and give the same numbers', async () => {
    await createWasmBackend({ threads: 2 }).init();
    const a = tf.randomUniform([300, 200], -1, 1, 'float32', 12);
    const b = tf.randomUniform([200, 100], -1, 1, 'float32', 13);
    const before = tf.matMul(a, b).dataSync();
    const pool = sharedGemmPool()!;
    expect(pool.threads).toBe(2);
    await (pool as unknown as { workers: Array<{ terminate(): Promise<number> }> }).workers[0]!.terminate();
    await new Promise((r) => setTimeout(r, 50));
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    const after = tf.matMul(a, b).dataSync();
    await new Promise((r) => setTimeout(r, 10));
    process.off('warning', onWarning);
    expect(gemmInfo()?.threads).toBe(1);
    expect(warnings.join(' ')).toMatch(/worker threads failed .*continue on one thread/);
    expect(maxAbsDiff(after, before)).toBeLessThan(1e-5);
    tf.dispose([a, b]);
    uninstallFastBatchMatMul(); // the next init() starts a fresh pool
  });
});
