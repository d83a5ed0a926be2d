/**
 * `BatchMatMul` for the wasm engine on Topiary's own GEMM (../gemm): WebAssembly SIMD tile kernels, fused
 * multiply-add where the engine allows it, on every core through worker threads over shared memory. The stock
 * kernel (XNNPACK) runs on one thread under Node and is fast only for a plain unbatched `A·B`: with a transpose
 * flag — which tfjs's own matmul gradient uses — it falls back to a loop 10–35× slower, and batched products
 * (attention) take a slow loop too. Ours packs operands as it goes, so transposes and batches cost nothing extra.
 *
 * Installed through the public kernel registry (getKernel → unregisterKernel → registerKernel); the stock kernel
 * is kept and still runs for non-float32 operands and for operands past 3 GiB.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { GemmPool, type GemmPoolOptions } from '../gemm/pool.js';
import { InPlaceGemm } from '../gemm/in-place.js';
import { tfjsHeapMemory, type EmscriptenHeap } from '../gemm/wasm-api.js';
import { heapIsShared } from '../shared-heap.js';
import { TILE } from '../gemm/kernels.js';
import { BLOCKS, outputFloats, type ProductSpec } from '../gemm/plan.js';

type KernelArgs = Parameters<KernelFunc>[0];
interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
  disposeData(dataId: object): boolean;
  /** The Emscripten module (its heap memory and allocator), for products computed in place. */
  wasm?: EmscriptenHeap;
}

function size(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

/**
 * For each item of the broadcast batch shape `out`, its flat index in the batch shape `from` (left-padded with 1s;
 * a dimension of 1 repeats).
 */
function broadcastIndex(from: readonly number[], out: readonly number[]): Int32Array {
  const padded = [...new Array<number>(out.length - from.length).fill(1), ...from];
  const index = new Int32Array(size(out));
  for (let t = 0; t < index.length; t++) {
    let rest = t;
    let flat = 0;
    let stride = 1;
    for (let d = out.length - 1; d >= 0; d--) {
      const coord = rest % out[d]!;
      rest = Math.floor(rest / out[d]!);
      if (padded[d] !== 1) flat += coord * stride;
      stride *= padded[d]!;
    }
    index[t] = flat;
  }
  return index;
}

/** The product a BatchMatMul call asks for, or undefined when the GEMM does not take it (the stock kernel does). */
export function productSpec(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): ProductSpec | undefined {
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return undefined;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const m = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const k = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const n = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  const batchA = size(a.shape.slice(0, -2));
  const batchB = size(b.shape.slice(0, -2));
  if (batchA === 0 || batchB === 0) return { batch: 0, m, n, k, transposeA, transposeB, aBatched: true, bBatched: true };
  const out = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  if (batchA > 1 && batchB > 1 && (size(out) !== batchA || size(out) !== batchB)) {
    // Broadcast on both sides ([1,6]·[6,1] → 36 items; tfjs's own cpu and wasm kernels get this wrong): an explicit
    // source item per output item.
    return {
      batch: size(out), m, n, k, transposeA, transposeB, aBatched: true, bBatched: true,
      aIndex: broadcastIndex(a.shape.slice(0, -2), out), bIndex: broadcastIndex(b.shape.slice(0, -2), out),
    };
  }
  if (batchB === 1 && batchA > 1 && !transposeA) {
    // B shared by every item and A stored item after item: one product with the batch folded into A's rows.
    return { batch: 1, m: batchA * m, n, k, transposeA, transposeB, aBatched: true, bBatched: true };
  }
  return { batch: Math.max(batchA, batchB), m, n, k, transposeA, transposeB, aBatched: batchA > 1 || batchB === 1, bBatched: batchB > 1 || batchA === 1 };
}

/** Largest A + B + C (bytes) the GEMM takes; padding, packing scratch and operation lists need the rest. */
export const MAX_GEMM_BYTES = 3 * 2 ** 30;

function makeGemmBatchMatMul(stock: KernelFunc, pool: () => GemmPool, inPlace: (backend: WasmHeapBackend, fma: boolean) => InPlaceGemm | undefined): KernelFunc {
  return (args: KernelArgs) => {
    const a = args.inputs['a'] as TensorInfo;
    const b = args.inputs['b'] as TensorInfo;
    const attrs = args.attrs as { transposeA?: boolean; transposeB?: boolean } | undefined;
    const transposeA = Boolean(attrs?.transposeA);
    const transposeB = Boolean(attrs?.transposeB);
    const spec = productSpec(a, b, transposeA, transposeB);
    // Operands the shared memory cannot hold next to each other (it is wasm32: 4 GiB) stay with the stock kernel.
    if (!spec || 4 * (size(a.shape) + size(b.shape) + outputFloats(spec, TILE)) > MAX_GEMM_BYTES) return stock(args);
    const outBatch = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    const rows = transposeA ? a.shape[a.shape.length - 1]! : a.shape[a.shape.length - 2]!;
    const backend = args.backend as unknown as WasmHeapBackend;
    const out = backend.makeOutput([...outBatch, rows, spec.n], 'float32');
    if (size(out.shape) === 0) return out;
    try {
      const gemm = pool();
      // A product the calling thread does alone — or any product, where the pool's threads share tfjs's heap —
      // reads and writes the tensors where they are (no copies).
      const copied = size(a.shape) + size(b.shape) + outputFloats(spec, TILE);
      const serial = spec.k > 0 && (gemm.worksOn(backend.wasm) || gemm.threadsFor(spec.batch * spec.m * spec.n * spec.k, copied) === 1) ? inPlace(backend, gemm.fma) : undefined;
      const address = (t: TensorInfo): number => backend.typedArrayFromHeap(t).byteOffset;
      if (serial) serial.matmul(spec, address(a), address(b), address(out));
      // Views only after the output exists: allocating it may grow (and so move) the tfjs heap.
      else gemm.matmul(spec, backend.typedArrayFromHeap(a), backend.typedArrayFromHeap(b), backend.typedArrayFromHeap(out));
    } catch (err) {
      backend.disposeData(out.dataId);
      throw err;
    }
    return out;
  };
}

/** Marks our replacement: installing twice does not wrap the wrapper; it carries the stock config and its pool. */
const GEMM = Symbol.for('topiary:wasm-gemm-batch-matmul');
interface Installed {
  stock: KernelConfig;
  options: GemmPoolOptions;
  pool: GemmPool | undefined;
  /** The in-place GEMM per tfjs heap (one per Emscripten module), made on first use. */
  inPlace: WeakMap<object, InPlaceGemm>;
  /** Made ones, to free their scratch on uninstall. */
  made: InPlaceGemm[];
}

/** The in-place GEMM on this backend's heap, or undefined where the heap is not reachable (then the pool copies). */
function inPlaceOf(state: Installed, backend: WasmHeapBackend, fma: boolean): InPlaceGemm | undefined {
  const heap = backend.wasm;
  if (!heap || !tfjsHeapMemory(heap) || state.options.inPlace === false) return undefined;
  let gemm = state.inPlace.get(heap);
  const pool = state.pool?.heap === heap ? state.pool : undefined;
  if (!gemm || gemm.fma !== fma || gemm.pool !== pool) {
    gemm?.dispose();
    gemm = new InPlaceGemm(heap, fma, TILE, BLOCKS, pool);
    state.inPlace.set(heap, gemm);
    state.made.push(gemm);
  }
  return gemm;
}
type Marked = KernelConfig & { [GEMM]?: Installed };

/**
 * The installation's pool, started on first use. A pool whose worker threads failed is replaced by one that runs
 * on the calling thread alone (slower, never stuck), with a warning.
 */
function poolOf(state: Installed): GemmPool {
  if (state.pool?.broken) {
    state.pool.platform.warn(`the wasm GEMM's worker threads failed (${state.pool.broken}); products continue on one thread`, 'TOPIARY_WASM_THREADS');
    state.pool.dispose();
    state.pool = new GemmPool({ ...state.options, threads: 1 });
  }
  // The pool works in place on the active wasm backend's heap when that is shared memory (shared-heap.ts).
  // (the engine's registry, not findBackend: that would start initialising a backend not yet set up)
  const heap = (tf.engine().registry['wasm'] as unknown as WasmHeapBackend | undefined)?.wasm;
  return (state.pool ??= new GemmPool({ ...state.options, ...(heap && heapIsShared(tfjsHeapMemory(heap)) ? { heap } : {}) }));
}

/**
 * Replace the wasm `BatchMatMul` registration with the GEMM one. Idempotent for the same options (a second call
 * with other options replaces the first). The worker threads start on the first product (or `sharedGemmPool()`: the
 * backend's init starts them), not here. Returns the
 * stock kernel config (for equivalence tests and benchmarks).
 */
export function installFastBatchMatMul(options: GemmPoolOptions = {}): KernelConfig {
  const current = tf.getKernel('BatchMatMul', 'wasm') as Marked | undefined;
  if (!current) throw new Error('the wasm backend has no BatchMatMul kernel registered');
  const installed = current[GEMM];
  if (installed && installed.options.threads === options.threads && installed.options.fma === options.fma && installed.options.platform === options.platform && installed.options.inPlace === options.inPlace) return installed.stock;
  if (installed) uninstallFastBatchMatMul();
  const stock = installed?.stock ?? current;
  const state: Installed = { stock, options: { ...options }, pool: undefined, inPlace: new WeakMap(), made: [] };
  const replacement: Marked = {
    kernelName: 'BatchMatMul',
    backendName: 'wasm',
    kernelFunc: makeGemmBatchMatMul(stock.kernelFunc, () => poolOf(state), (backend, fma) => inPlaceOf(state, backend, fma)),
    // Keep the stock setup: it binds the wasm function the stock kernel (which we still call) needs.
    ...(stock.setupFunc ? { setupFunc: stock.setupFunc } : {}),
    ...(stock.disposeFunc ? { disposeFunc: stock.disposeFunc } : {}),
  };
  replacement[GEMM] = state;
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel(replacement);
  return stock;
}

/** Put the stock kernel back and stop the GEMM's worker threads. */
export function uninstallFastBatchMatMul(): void {
  const installed = installedState();
  if (!installed) return;
  installed.pool?.dispose();
  for (const gemm of installed.made) gemm.dispose();
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel(installed.stock);
}

/** The installation behind the registered BatchMatMul; undefined when another kernel is registered. */
function installedState(): Installed | undefined {
  return (tf.getKernel('BatchMatMul', 'wasm') as Marked | undefined)?.[GEMM];
}

/**
 * Make the in-place GEMM on the active wasm backend's heap now (its module generated and compiled: ~5 ms of code
 * that runs once, JIT-cold), so the first product does not pay for it — as a native library's kernels are compiled
 * before it runs. Nothing happens where the stock kernel is registered or the heap is not reachable.
 */
export function prepareInPlaceGemm(): void {
  const state = installedState();
  const backend = tf.findBackend('wasm') as unknown as WasmHeapBackend | undefined;
  if (state && backend) inPlaceOf(state, backend, poolOf(state).fma);
}

/** The installed GEMM's thread pool (started on first use), for other kernels on the same threads; undefined when the stock kernel is registered. */
export function sharedGemmPool(): GemmPool | undefined {
  const state = installedState();
  return state ? poolOf(state) : undefined;
}

/** What the installed GEMM runs on: undefined when the stock kernel is registered or no product ran yet. */
export function gemmInfo(): { threads: number; fma: boolean } | undefined {
  const pool = installedState()?.pool;
  return pool ? { threads: pool.threads, fma: pool.fma } : undefined;
}
