/**
 * `BatchMatMul` for the wasm engine computed by OpenBLAS in place on the wasm heap: the output is allocated on the
 * heap first (the heap may grow and move), then Float32Array views are taken at each tensor's offset and handed to
 * `cblas_sgemm`, which reads A and B and writes C where tfjs expects them. No copies, transposes handled by BLAS,
 * batches as strided products (a batch of 1 broadcasts). Anything else (non-float32, general batch broadcasting)
 * goes to the kernel that was registered before (the wasm plugin's fast kernel or the stock one).
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import type { BlasAddon } from './addon.js';

interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

function size(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

const NATIVE = Symbol.for('topiary:native-batch-matmul');
type Marked = KernelConfig & { [NATIVE]?: KernelConfig };

function makeKernel(blas: BlasAddon, previous: KernelFunc): KernelFunc {
  return (args) => {
    const a = args.inputs['a'] as TensorInfo;
    const b = args.inputs['b'] as TensorInfo;
    const attrs = args.attrs as { transposeA?: boolean; transposeB?: boolean } | undefined;
    const ta = Boolean(attrs?.transposeA);
    const tb = Boolean(attrs?.transposeB);
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return previous(args);
    const ra = a.shape.length;
    const rb = b.shape.length;
    const m = ta ? a.shape[ra - 1]! : a.shape[ra - 2]!;
    const k = ta ? a.shape[ra - 2]! : a.shape[ra - 1]!;
    const k2 = tb ? b.shape[rb - 1]! : b.shape[rb - 2]!;
    const n = tb ? b.shape[rb - 2]! : b.shape[rb - 1]!;
    if (k !== k2) return previous(args); // let the stock kernel raise its own error
    const batchA = size(a.shape.slice(0, -2));
    const batchB = size(b.shape.slice(0, -2));
    if (batchA !== batchB && batchA !== 1 && batchB !== 1) return previous(args);
    let outBatch: number[];
    try {
      outBatch = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    } catch {
      return previous(args);
    }
    const batch = Math.max(batchA, batchB);
    const backend = args.backend as unknown as WasmHeapBackend;
    const out = backend.makeOutput([...outBatch, m, n], 'float32');
    // Views only after makeOutput: allocating may grow the heap and detach older views.
    const c = backend.typedArrayFromHeap(out);
    if (c.length === 0) return out;
    if (k === 0) {
      c.fill(0);
      return out;
    }
    const av = backend.typedArrayFromHeap(a);
    const bv = backend.typedArrayFromHeap(b);
    if (batchB === 1 && batchA > 1 && !ta) {
      // B shared by every item: one tall product [batch·m, k]·[k, n] (rows of A are contiguous across items).
      blas.sgemmStrided(false, tb, batch * m, n, k, 1, av, 0, bv, 0, c, 0);
    } else {
      blas.sgemmStrided(ta, tb, m, n, k, batch, av, batchA === 1 ? 0 : m * k, bv, batchB === 1 ? 0 : k * n, c, m * n);
    }
    return out;
  };
}

/** Replace the wasm BatchMatMul with the OpenBLAS one (idempotent); returns the config it replaced. */
export function installNativeBatchMatMul(blas: BlasAddon): KernelConfig {
  const current = tf.getKernel('BatchMatMul', 'wasm') as Marked | undefined;
  if (!current) throw new Error('the wasm backend has no BatchMatMul kernel registered (is @tensorflow/tfjs-backend-wasm loaded?)');
  if (current[NATIVE]) return current[NATIVE];
  const replacement: Marked = {
    kernelName: 'BatchMatMul',
    backendName: 'wasm',
    kernelFunc: makeKernel(blas, current.kernelFunc),
    // The previous kernel (called for fallbacks) needs its setup (it binds wasm functions).
    ...(current.setupFunc ? { setupFunc: current.setupFunc } : {}),
    ...(current.disposeFunc ? { disposeFunc: current.disposeFunc } : {}),
  };
  replacement[NATIVE] = current;
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel(replacement);
  return current;
}

/** Put back the kernel that was registered before `installNativeBatchMatMul`. */
export function uninstallNativeBatchMatMul(): void {
  const current = tf.getKernel('BatchMatMul', 'wasm') as Marked | undefined;
  if (!current?.[NATIVE]) return;
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel(current[NATIVE]);
}

/** Whether the native kernel is the registered wasm BatchMatMul. */
export function nativeBatchMatMulInstalled(): boolean {
  return Boolean((tf.getKernel('BatchMatMul', 'wasm') as Marked | undefined)?.[NATIVE]);
}
