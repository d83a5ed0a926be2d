/**
 * The kernel's `FusedKernel`s for the wasm engine (all but the softmax cross-entropy, which runs on the GEMM's
 * threads: ../kernels/softmax-cross-entropy.ts), computed **in place on tfjs-wasm's heap** by the generated SIMD
 * module (module.ts), instantiated on tfjs's own WebAssembly.Memory. Outputs are allocated with `makeOutput`
 * first; the addresses of inputs and outputs are then their byte offsets in that memory (the memory may grow and
 * move its buffer; offsets do not change).
 *
 * Where the GEMM's worker threads help: tfjs-wasm's heap is not shared memory under Node (its threaded build does not
 * start there), so a worker can only work on a copy. Most of these kernels do 1–3 float operations per byte they
 * touch, so copying a worker's share in and out would cost as much as the work it takes away: they run on the
 * calling thread, in place. The exp-heavy ones (causal softmax, SwiGLU: ~20 operations per float) are split when
 * large (SPLIT_MIN_FLOATS): the calling thread computes its share in place while each worker computes its share on a
 * copy in the pool's shared memory — the same generated code in the GEMM module (gemm/kernels.ts), so the same bits.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { FusedKernel } from '@topiary/kernel';
import { decodeStepKernel } from './decode.js';
import { DecodeThreads } from './decode-threads.js';
import type { GemmPlatform } from '../gemm/platform.js';
import { nodeGemmPlatform } from '../gemm/platform-node.js';
import { exportsFor, f32Bits, heapMemory, size, type FusedExports, type WasmHeapBackend } from './heap.js';
import { OP_CAUSAL_SOFTMAX, OP_SWIGLU } from '../gemm/kernels.js';
import type { GemmPool } from '../gemm/pool.js';
import { sharedGemmPool } from '../kernels/batch-matmul.js';

/** The names installed here (the softmax cross-entropy is installed with the GEMM). */
export const IN_PLACE_FUSED = [
  FusedKernel.adamw,
  FusedKernel.ropeHeads,
  FusedKernel.causalSoftmax,
  FusedKernel.softmaxGrad,
  FusedKernel.swiglu,
  FusedKernel.swigluGrad,
  FusedKernel.rmsNorm,
  FusedKernel.rmsNormGrad,
  FusedKernel.decodeStep,
] as const;

function float32(name: string, ...xs: TensorInfo[]): void {
  for (const x of xs) if (x.dtype !== 'float32') throw new Error(`${name}: expected float32 inputs, got ${x.dtype} [${x.shape}]`);
}

function sameSize(name: string, xs: TensorInfo[]): number {
  const n = size(xs[0]!.shape);
  for (const x of xs) if (size(x.shape) !== n) throw new Error(`${name}: inputs of different sizes ([${xs.map((t) => t.shape).join('], [')}])`);
  return n;
}

/**
 * Allocate the outputs, then run `body` with the byte address of each input and output; on a failure the outputs
 * are freed (a trap must not leak heap memory).
 */
function inPlace(backend: unknown, inputs: TensorInfo[], outShapes: number[][], body: (k: FusedExports, inAddr: number[], outAddr: number[]) => void): TensorInfo[] {
  const b = backend as WasmHeapBackend;
  const k = exportsFor(b);
  const outs = outShapes.map((s) => b.makeOutput(s, 'float32'));
  try {
    // addresses after every allocation (an allocation may grow the heap; offsets stay valid, views would not)
    const address = (t: TensorInfo): number => b.typedArrayFromHeap(t).byteOffset;
    if (outs.some((o) => size(o.shape) > 0)) body(k, inputs.map(address), outs.map(address));
  } catch (err) {
    for (const o of outs) b.disposeData(o.dataId);
    throw err;
  }
  return outs;
}

/**
 * Below this many floats a kernel stays on the calling thread: waking the workers (~20–50 µs) and copying their
 * shares in and out would cost more than the half of the work they take.
 */
export const SPLIT_MIN_FLOATS = 1 << 17;

/** The GEMM's pool when a kernel of `floats` floats is worth splitting with its workers; else undefined. */
function splitPool(floats: number): GemmPool | undefined {
  if (floats < SPLIT_MIN_FLOATS) return undefined;
  const pool = sharedGemmPool();
  return pool && pool.threads > 1 && !pool.broken ? pool : undefined;
}

/**
 * Split [0, count) into the calling thread's share (first) and one per worker: `unit`-aligned boundaries, so a
 * causal softmax's shares start at an item (its rows' positions restart there). Returns the boundaries.
 */
function shares(count: number, threads: number, unit = 1): number[] {
  const units = Math.ceil(count / unit);
  return Array.from({ length: threads + 1 }, (_, t) => Math.min(count, Math.round((units * t) / threads) * unit));
}

/**
 * The tfjs heap's bytes (for copying a worker's share between it and the pool's shared memory; valid during a
 * kernel's body: nothing allocates meanwhile).
 */
function heapBytes(backend: unknown): Uint8Array {
  return new Uint8Array(heapMemory(backend)!.buffer);
}

const swiglu: KernelFunc = ({ inputs, backend }) => {
  const g = inputs['gate'] as TensorInfo;
  const u = inputs['up'] as TensorInfo;
  float32(FusedKernel.swiglu, g, u);
  const n = sameSize(FusedKernel.swiglu, [g, u]);
  const pool = splitPool(3 * n);
  return inPlace(backend, [g, u], [[...g.shape]], (k, [ga, ua], [ma]) => {
    if (!pool) return k.swiglu(ga!, ua!, ma!, n);
    // the calling thread's share in place; each worker's gate and up copied to the pool, its m copied back
    const at = shares(n, pool.threads, 4);
    const mine = at[1]!;
    const rest = n - mine;
    const heap = heapBytes(backend);
    pool.runShares(
      12 * rest + 64,
      (shared, base) => {
        shared.set(heap.subarray(ga! + 4 * mine, ga! + 4 * n), base);
        shared.set(heap.subarray(ua! + 4 * mine, ua! + 4 * n), base + 4 * rest);
        return at.slice(1, -1).map((from, w) => {
          const off = 4 * (from - mine);
          return Int32Array.of(OP_SWIGLU, base + off, base + 4 * rest + off, base + 8 * rest + off, at[w + 2]! - from, 0, 0, 0, 0);
        });
      },
      () => k.swiglu(ga!, ua!, ma!, mine),
      (shared, base) => heap.set(shared.subarray(base + 8 * rest, base + 12 * rest), ma! + 4 * mine),
    );
  })[0]!;
};

const swigluGrad: KernelFunc = ({ inputs, backend }) => {
  const ins = ['gate', 'up', 'dm'].map((name) => inputs[name] as TensorInfo);
  float32(FusedKernel.swigluGrad, ...ins);
  const n = sameSize(FusedKernel.swigluGrad, ins);
  const shape = [...ins[0]!.shape];
  return inPlace(backend, ins, [shape, shape], (k, [g, u, dm], [dg, du]) => k.swigluGrad(g!, u!, dm!, dg!, du!, n));
};

const rmsNorm: KernelFunc = ({ inputs, attrs, backend }) => {
  const x = inputs['x'] as TensorInfo;
  const w = inputs['weight'] as TensorInfo;
  float32(FusedKernel.rmsNorm, x, w);
  const { eps, activeDim } = attrs as unknown as { eps: number; activeDim: number };
  const d = x.shape[x.shape.length - 1] ?? 0;
  if (d < 1 || size(w.shape) !== d || !(activeDim > 0)) throw new Error(`${FusedKernel.rmsNorm}: x [${x.shape}], weight [${w.shape}], activeDim ${activeDim} do not fit`);
  const rows = size(x.shape) / d;
  return inPlace(backend, [x, w], [[...x.shape], [...x.shape.slice(0, -1), 1]], (k, [xa, wa], [oa, ra]) =>
    k.rmsNorm(xa!, wa!, oa!, ra!, rows, d, f32Bits(eps), f32Bits(1 / activeDim)),
  );
};

const rmsNormGrad: KernelFunc = ({ inputs, attrs, backend }) => {
  const [dh, x, r, w] = ['dh', 'x', 'r', 'weight'].map((name) => inputs[name] as TensorInfo);
  const res = inputs['residual'] as TensorInfo | undefined;
  float32(FusedKernel.rmsNormGrad, dh!, x!, r!, w!, ...(res ? [res] : []));
  const { activeDim } = attrs as unknown as { activeDim: number };
  const d = x!.shape[x!.shape.length - 1] ?? 0;
  const rows = d > 0 ? size(x!.shape) / d : 0;
  if (d < 1 || size(w!.shape) !== d || size(dh!.shape) !== rows * d || size(r!.shape) !== rows || (res && size(res.shape) !== rows * d) || !(activeDim > 0)) {
    throw new Error(`${FusedKernel.rmsNormGrad}: dh [${dh!.shape}], x [${x!.shape}], r [${r!.shape}], weight [${w!.shape}]${res ? `, residual [${res.shape}]` : ''} do not fit`);
  }
  const ins = res ? [dh!, x!, r!, w!, res] : [dh!, x!, r!, w!];
  return inPlace(backend, ins, [[...x!.shape], [...w!.shape]], (k, [dha, xa, ra, wa, resa], [dxa, dwa]) =>
    k.rmsNormGrad(dha!, xa!, ra!, wa!, resa ?? 0, dxa!, dwa!, rows, d, f32Bits(1 / activeDim)),
  );
};

const causalSoftmax: KernelFunc = ({ inputs, attrs, backend }) => {
  const s = inputs['scores'] as TensorInfo;
  float32(FusedKernel.causalSoftmax, s);
  if (s.shape.length !== 3) throw new Error(`${FusedKernel.causalSoftmax}: expected scores [items, rows, cols], got [${s.shape}]`);
  const { seq, scale } = attrs as unknown as { seq: number; scale: number };
  const [items, rows, cols] = s.shape as [number, number, number];
  if (!(seq >= 1) || cols < 1) throw new Error(`${FusedKernel.causalSoftmax}: seq ${seq} and scores [${s.shape}] do not fit`);
  const bits = f32Bits(scale);
  const pool = items > 1 ? splitPool(2 * items * rows * cols) : undefined;
  return inPlace(backend, [s], [[items, rows, cols]], (k, [sa], [pa]) => {
    if (!pool) return k.causalSoftmax(sa!, pa!, items * rows, rows, cols, seq, bits, 0);
    // whole items per thread (a share's row positions restart at its first row); the calling thread's in place,
    // each worker's scores copied to the pool and its probabilities copied back
    const at = shares(items, pool.threads);
    const itemBytes = 4 * rows * cols;
    const mine = at[1]!;
    const rest = (items - mine) * itemBytes;
    const heap = heapBytes(backend);
    pool.runShares(
      2 * rest + 64,
      (shared, base) => {
        shared.set(heap.subarray(sa! + mine * itemBytes, sa! + items * itemBytes), base);
        return at.slice(1, -1).map((from, w) => {
          const off = (from - mine) * itemBytes;
          return Int32Array.of(OP_CAUSAL_SOFTMAX, base + off, base + rest + off, (at[w + 2]! - from) * rows, rows, cols, seq, bits, 0);
        });
      },
      () => k.causalSoftmax(sa!, pa!, mine * rows, rows, cols, seq, bits, 0),
      (shared, base) => heap.set(shared.subarray(base + rest, base + 2 * rest), pa! + mine * itemBytes),
    );
  })[0]!;
};

const softmaxGrad: KernelFunc = ({ inputs, attrs, backend }) => {
  const p = inputs['probs'] as TensorInfo;
  const dp = inputs['dProbs'] as TensorInfo;
  float32(FusedKernel.softmaxGrad, p, dp);
  if (p.shape.join() !== dp.shape.join() || p.shape.length < 1) throw new Error(`${FusedKernel.softmaxGrad}: probs [${p.shape}] and dProbs [${dp.shape}] differ`);
  const { scale } = attrs as unknown as { scale: number };
  const cols = p.shape[p.shape.length - 1]!;
  return inPlace(backend, [p, dp], [[...p.shape]], (k, [pa, da], [oa]) => k.softmaxGrad(pa!, da!, oa!, size(p.shape) / cols, cols, f32Bits(scale)))[0]!;
};

const ropeHeads: KernelFunc = ({ inputs, attrs, backend }) => {
  const [x, cos, sin] = ['x', 'cos', 'sin'].map((name) => inputs[name] as TensorInfo);
  float32(FusedKernel.ropeHeads, x!, cos!, sin!);
  const { batch, seq, heads, headDim, backward } = attrs as unknown as { batch: number; seq: number; heads: number; headDim: number; backward: boolean };
  if (size(x!.shape) !== batch * seq * heads * headDim || size(cos!.shape) !== seq * headDim || size(sin!.shape) !== seq * headDim || headDim % 2 !== 0) {
    throw new Error(`${FusedKernel.ropeHeads}: x [${x!.shape}], cos [${cos!.shape}], sin [${sin!.shape}] do not match batch ${batch}, seq ${seq}, heads ${heads}, headDim ${headDim}`);
  }
  const shape = backward ? [batch * seq, heads * headDim] : [batch, heads, seq, headDim];
  return inPlace(backend, [x!, cos!, sin!], [shape], (k, [xa, ca, sa], [oa]) => k.ropeHeads(xa!, oa!, batch, seq, heads, headDim, ca!, sa!, backward ? 1 : 0))[0]!;
};

const adamw: KernelFunc = ({ inputs, attrs, backend }) => {
  const ins = ['param', 'grad', 'm', 'v'].map((name) => inputs[name] as TensorInfo);
  float32(FusedKernel.adamw, ...ins);
  const n = sameSize(FusedKernel.adamw, ins);
  const a = attrs as unknown as { lr: number; beta1: number; beta2: number; eps: number; decay: number; gradScale: number; bc1: number; bc2: number };
  const shape = [...ins[0]!.shape];
  return inPlace(backend, ins, [shape, shape, shape], (k, [p, g, m, v], [po, mo, vo]) =>
    k.adamw(p!, g!, m!, v!, po!, mo!, vo!, n, f32Bits(a.lr), f32Bits(a.beta1), f32Bits(a.beta2), f32Bits(a.eps), f32Bits(1 - a.decay), f32Bits(a.gradScale), f32Bits(1 / a.bc1), f32Bits(1 / a.bc2)),
  );
};

const KERNELS: Record<Exclude<(typeof IN_PLACE_FUSED)[number], typeof FusedKernel.decodeStep>, KernelFunc> = {
  [FusedKernel.adamw]: adamw,
  [FusedKernel.ropeHeads]: ropeHeads,
  [FusedKernel.causalSoftmax]: causalSoftmax,
  [FusedKernel.softmaxGrad]: softmaxGrad,
  [FusedKernel.swiglu]: swiglu,
  [FusedKernel.swigluGrad]: swigluGrad,
  [FusedKernel.rmsNorm]: rmsNorm,
  [FusedKernel.rmsNormGrad]: rmsNormGrad,
};

/** The decode step's threads while the kernels are installed (started on the first big model's step). */
let decodeThreads: DecodeThreads | undefined;

export interface InPlaceFusedOptions {
  /** Threads for the decode step of big models (the backend's GEMM threads; default 1: in place only). */
  threads?: number;
  /** The runtime the threads start on (default Node). */
  platform?: GemmPlatform;
}

/**
 * Register the in-place fused kernels for the wasm engine (replacing other registrations of those names), once the
 * wasm backend is active. Returns false, registering nothing, when this tfjs-wasm build does not expose its heap.
 */
export function installInPlaceFusedKernels(options: InPlaceFusedOptions = {}): boolean {
  if (!heapMemory(tf.findBackend('wasm'))) return false;
  uninstallInPlaceFusedKernels();
  const threads = options.threads ?? 1;
  decodeThreads = threads > 1 ? new DecodeThreads(options.platform ?? nodeGemmPlatform, threads) : undefined;
  const kernels: Record<(typeof IN_PLACE_FUSED)[number], KernelFunc> = { ...KERNELS, [FusedKernel.decodeStep]: decodeStepKernel(decodeThreads) };
  for (const name of IN_PLACE_FUSED) tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: kernels[name] });
  // the module generated, compiled and instantiated now (~25 ms of code that runs once, JIT-cold), not in the first
  // kernel call — as a native library's kernels are compiled before it runs
  exportsFor(tf.findBackend('wasm') as unknown as WasmHeapBackend);
  return true;
}

/** Remove them (and stop the decode threads): the model computes those steps with composite ops again. */
export function uninstallInPlaceFusedKernels(): void {
  for (const name of IN_PLACE_FUSED) if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
  decodeThreads?.dispose();
  decodeThreads = undefined;
}
