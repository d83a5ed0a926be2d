/**
 * A faster `BatchMatMul` for the wasm engine, built only from the public kernel registry: the stock wasm kernel
 * is fast (XNNPACK) only for a plain, unbatched product `A·B`. With a transpose flag it runs 10–35× slower, and
 * tfjs's own matmul gradient uses those flags, so every backward pass paid for it. Batched products (attention)
 * take a slow loop as well. This wrapper
 *   - transposes explicitly (one O(n²) copy with the wasm `Transpose` kernel) and calls the plain kernel, and
 *   - runs a batched product as one plain 2-D product per batch item (slices in, one concat out),
 * and otherwise defers to the stock kernel, which it keeps (setup function included) and calls.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';

type KernelArgs = Parameters<KernelFunc>[0];
type Backend = KernelArgs['backend'] & {
  disposeData(dataId: object): boolean;
  makeOutput(shape: number[], dtype: 'int32', memoryOffset?: undefined, values?: Int32Array): TensorInfo;
};

interface Kernels {
  matmul: KernelFunc;
  transpose: KernelFunc;
  reshape: KernelFunc;
  gather: KernelFunc;
  concat: KernelFunc;
}

function single(out: TensorInfo | TensorInfo[]): TensorInfo {
  return Array.isArray(out) ? out[0]! : out;
}

function call(kernel: KernelFunc, backend: Backend, inputs: Record<string, TensorInfo> | TensorInfo[], attrs: object): TensorInfo {
  return single(kernel({ inputs: inputs as KernelArgs['inputs'], backend, attrs: attrs as NamedAttrMap }));
}

function size(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

/** `x` with its last two axes swapped, as a new tensor the caller disposes. */
function swapLastTwo(k: Kernels, backend: Backend, x: TensorInfo): TensorInfo {
  const perm = x.shape.map((_, i) => i);
  const r = perm.length;
  [perm[r - 2], perm[r - 1]] = [perm[r - 1]!, perm[r - 2]!];
  return call(k.transpose, backend, { x }, { perm });
}

function makeFastBatchMatMul(k: Kernels): KernelFunc {
  return (args) => {
    const { inputs, attrs } = args;
    const backend = args.backend as Backend;
    const a = inputs['a'] as TensorInfo;
    const b = inputs['b'] as TensorInfo;
    const transposeA = Boolean((attrs as { transposeA?: boolean } | undefined)?.transposeA);
    const transposeB = Boolean((attrs as { transposeB?: boolean } | undefined)?.transposeB);
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return k.matmul(args);

    const temps: TensorInfo[] = [];
    try {
      // 1. Explicit transposes, so the product below is always the plain A·B.
      let aa = a;
      let bb = b;
      if (transposeA) temps.push((aa = swapLastTwo(k, backend, a)));
      if (transposeB) temps.push((bb = swapLastTwo(k, backend, b)));
      const m = aa.shape[aa.shape.length - 2]!;
      const kk = aa.shape[aa.shape.length - 1]!;
      const n = bb.shape[bb.shape.length - 1]!;
      const batchA = size(aa.shape.slice(0, -2));
      const batchB = size(bb.shape.slice(0, -2));
      const outBatchShape = tf.broadcast_util.assertAndGetBroadcastShape(aa.shape.slice(0, -2), bb.shape.slice(0, -2));
      const plain = { transposeA: false, transposeB: false };

      // 2. Unbatched (or B shared by all items: fold the batch into the rows of A): one plain product.
      if (batchA <= 1 && batchB <= 1) {
        const out = call(k.matmul, backend, { a: aa, b: bb }, plain);
        return { ...out, shape: [...outBatchShape, m, n] };
      }
      if (batchB === 1 && batchA > 1) {
        const a2 = call(k.reshape, backend, { x: aa }, { shape: [batchA * m, kk] });
        temps.push(a2);
        const b2 = call(k.reshape, backend, { x: bb }, { shape: [kk, n] });
        temps.push(b2);
        const out = call(k.matmul, backend, { a: a2, b: b2 }, plain);
        const shaped = call(k.reshape, backend, { x: out }, { shape: [...outBatchShape, m, n] });
        backend.disposeData(out.dataId);
        return shaped;
      }
      const batch = Math.max(batchA, batchB);
      if ((batchA !== batchB && batchA !== 1) || 2 * m * kk * n < PER_ITEM_MIN_FLOPS || n < PER_ITEM_MIN_N) {
        // General broadcasting between batch shapes (rare in LLaMA code), or items so small (decoding with a KV
        // cache: one query row per head) that per-item calls cost more than the stock batched loop saves.
        return k.matmul({ ...args, inputs: { a: aa, b: bb }, attrs: plain as unknown as NamedAttrMap });
      }

      // 3. Batched: one plain 2-D product per item (the stock batched loop is 10–40× slower than XNNPACK's).
      // Items are taken with the wasm Gather kernel (a C++ copy of one item); the wasm Slice kernel would copy
      // the whole batch out of the heap for every item.
      const a3 = call(k.reshape, backend, { x: aa }, { shape: [batchA, m * kk] });
      temps.push(a3);
      const b3 = call(k.reshape, backend, { x: bb }, { shape: [batchB, kk * n] });
      temps.push(b3);
      const products: TensorInfo[] = [];
      try {
        for (let i = 0; i < batch; i++) {
          const index = backend.makeOutput([1], 'int32', undefined, Int32Array.of(i));
          temps.push(index);
          const zero = batchA === 1 ? backend.makeOutput([1], 'int32', undefined, Int32Array.of(0)) : index;
          if (zero !== index) temps.push(zero);
          const ai = call(k.gather, backend, { x: a3, indices: zero }, { axis: 0, batchDims: 0 });
          temps.push(ai);
          const bi = call(k.gather, backend, { x: b3, indices: index }, { axis: 0, batchDims: 0 });
          temps.push(bi);
          const a2 = call(k.reshape, backend, { x: ai }, { shape: [m, kk] });
          temps.push(a2);
          const b2 = call(k.reshape, backend, { x: bi }, { shape: [kk, n] });
          temps.push(b2);
          products.push(call(k.matmul, backend, { a: a2, b: b2 }, plain));
        }
        const joined = call(k.concat, backend, products, { axis: 0 });
        const shaped = call(k.reshape, backend, { x: joined }, { shape: [...outBatchShape, m, n] });
        backend.disposeData(joined.dataId);
        return shaped;
      } finally {
        for (const p of products) backend.disposeData(p.dataId);
      }
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };
}

/**
 * Below this many FLOPs per batch item the stock batched loop runs (on the explicitly transposed operands):
 * a per-item XNNPACK call costs two gathers and an operator setup, which small items do not repay.
 */
export const PER_ITEM_MIN_FLOPS = 2 * 64 * 64 * 32;

/**
 * Below this output width the stock batched loop runs too: XNNPACK packs B (a new one per item, as in attention's
 * probs·V) and sets up an operator for every call, which a narrow product does not repay. Measured on attention
 * shapes of stories260K (64 items of 256×256·256×8): per-item 150 ms, stock ~50 ms per layer.
 */
export const PER_ITEM_MIN_N = 16;

function kernelOf(name: string): KernelFunc {
  const config = tf.getKernel(name, 'wasm');
  if (!config) throw new Error(`the wasm backend has no ${name} kernel registered`);
  return config.kernelFunc;
}

/** Marks our replacement so installing twice (two runs in one process) does not wrap the wrapper. */
const FAST = Symbol.for('topiary:wasm-fast-batch-matmul');

/**
 * Replace the wasm `BatchMatMul` registration with the transposing/batch-splitting wrapper. Idempotent.
 * Returns the stock kernel config (for equivalence tests and benchmarks).
 */
export function installFastBatchMatMul(): KernelConfig {
  const stock = tf.getKernel('BatchMatMul', 'wasm');
  if (!stock) throw new Error('the wasm backend has no BatchMatMul kernel registered');
  const marked = stock as KernelConfig & { [FAST]?: KernelConfig };
  if (marked[FAST]) return marked[FAST];
  const kernels: Kernels = {
    matmul: stock.kernelFunc,
    transpose: kernelOf('Transpose'),
    reshape: kernelOf('Reshape'),
    gather: kernelOf('GatherV2'),
    concat: kernelOf('Concat'),
  };
  const replacement: KernelConfig & { [FAST]?: KernelConfig } = {
    kernelName: 'BatchMatMul',
    backendName: 'wasm',
    kernelFunc: makeFastBatchMatMul(kernels),
    // Keep the stock setup: it binds the wasm function the stock kernel (which we call) needs.
    ...(stock.setupFunc ? { setupFunc: stock.setupFunc } : {}),
    ...(stock.disposeFunc ? { disposeFunc: stock.disposeFunc } : {}),
  };
  replacement[FAST] = stock;
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel(replacement);
  return stock;
}

/** Put the stock kernel back (benchmarks compare both). */
export function uninstallFastBatchMatMul(): void {
  const current = tf.getKernel('BatchMatMul', 'wasm') as (KernelConfig & { [FAST]?: KernelConfig }) | undefined;
  if (!current?.[FAST]) return;
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel(current[FAST]);
}
