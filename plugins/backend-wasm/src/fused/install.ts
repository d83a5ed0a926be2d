/**
 * The kernel's `FusedKernel`s for the wasm engine (all but the softmax cross-entropy, which runs on the GEMM's
 * threads: ../kernels/softmax-cross-entropy.ts), computed **in place on tfjs-wasm's heap** by the generated SIMD
 * module (module.ts), instantiated on tfjs's own WebAssembly.Memory. Outputs are allocated with `makeOutput`
 * first; the addresses of inputs and outputs are then their byte offsets in that memory (the memory may grow and
 * move its buffer; offsets do not change).
 *
 * Big kernels are split with the GEMM's worker threads (`runSplit`): the calling thread computes its share in place
 * while each worker runs the same generated code (compiled into the GEMM module: gemm/kernels.ts FUSED_OPS) on its
 * share, so the bits are one thread's. Shares are whole rows (whole items for the causal softmax, whole sequences
 * for RoPE) or multiples of 4 elements, so every element takes the same SIMD or scalar path as on one thread.
 * - On a **shared tfjs heap** (../shared-heap.ts; the default under Node with worker threads) the workers read and
 *   write the tensors where they are: every kernel but the RMSNorm gradient (its weight gradient sums over all rows)
 *   is split, from HEAP_SPLIT_MIN_FLOATS on (far later for the memory-bound ones).
 * - On an unshared heap a worker can only work on a copy. Most of these kernels do 1–3 float operations per byte
 *   they touch, so copying a share in and out costs what the worker saves: only the exp-heavy ones (causal softmax,
 *   SwiGLU: ~20 operations per float) are split, from SPLIT_MIN_FLOATS on, through copies in the pool's memory.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { FusedKernel } from '@topiary/kernel';
import { decodeStepKernel } from './decode.js';
import { DecodeThreads } from './decode-threads.js';
import type { GemmPlatform } from '../gemm/platform.js';
import { nodeGemmPlatform } from '../gemm/platform-node.js';
import { exportsFor, f32Bits, heapMemory, size, type FusedExports, type WasmHeapBackend } from './heap.js';
import { fusedOperation, OP_ADAMW, OP_ADD, OP_CAUSAL_SOFTMAX, OP_RMS_NORM, OP_ROPE_HEADS, OP_SOFTMAX_GRAD, OP_SWIGLU, OP_SWIGLU_GRAD } from '../gemm/kernels.js';
import type { GemmPool } from '../gemm/pool.js';
import { roundUp } from '../gemm/plan.js';
import { sharedGemmPool } from '../kernels/batch-matmul.js';
import { replaceWasmKernel, restoreWasmKernel } from '../kernels/replace.js';

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
 * Unshared heap: below this many floats a kernel stays on the calling thread (waking the workers, ~20–50 µs, and
 * copying their shares in and out would cost more than the half of the work they take).
 */
export const SPLIT_MIN_FLOATS = 1 << 17;
/**
 * Shared heap: no copies, only the hand-off to repay. The exp-heavy kernels (~20 operations a float) pay from 64 K
 * floats touched (SwiGLU of 32 K elements: 77 → 48 µs). The memory-bound ones (RMSNorm, RoPE, the softmax gradient,
 * AdamW, the residual add: 1–3 operations a byte) only from 4 M: below that the second thread's share costs about what
 * the hand-off does (RMSNorm 1024 × 64: 33 µs alone, 46–370 µs split; 2048 × 512: 330 µs either way; 8192 × 512:
 * 1.3 → 0.75–0.85 ms).
 */
export const HEAP_SPLIT_MIN_FLOATS = { exp: 1 << 16, light: 1 << 22 } as const;

/**
 * The GEMM's pool when a kernel touching `floats` floats is worth splitting with its workers, else undefined.
 * `cost`: exp-heavy or memory-bound (HEAP_SPLIT_MIN_FLOATS); `viaCopies`: whether it is worth splitting on an unshared
 * heap too (its workers then work on copies, from SPLIT_MIN_FLOATS on).
 */
function splitPool(backend: unknown, floats: number, cost: keyof typeof HEAP_SPLIT_MIN_FLOATS, viaCopies = false): GemmPool | undefined {
  const pool = sharedGemmPool();
  if (!pool || pool.threads < 2 || pool.broken) return undefined;
  if (pool.worksOn((backend as WasmHeapBackend).wasm)) return floats >= HEAP_SPLIT_MIN_FLOATS[cost] ? pool : undefined;
  return viaCopies && floats >= SPLIT_MIN_FLOATS ? pool : undefined;
}

/**
 * Split [0, count) into the calling thread's share (first) and one per worker: `unit`-aligned boundaries, so a
 * causal softmax's shares start at an item (its rows' positions restart there). Returns the boundaries.
 */
function shares(count: number, threads: number, unit = 1): number[] {
  const units = Math.ceil(count / unit);
  return Array.from({ length: threads + 1 }, (_, t) => Math.min(count, Math.round((units * t) / threads) * unit));
}

/** A tensor of a split kernel: its heap address and bytes per unit of the split (`whole`: every share reads all of it). */
interface Part {
  at: number;
  unitBytes: number;
  whole?: number;
}

/** A tensor split element by element. */
const perElement = (at: number): Part => ({ at, unitBytes: 4 });

/**
 * Run a kernel split at `cut` (shares()): units [0, cut[1]) by `own` on the calling thread, in place; worker w's
 * units [cut[w+1], cut[w+2]) as the operation `op(inputs, outputs, units)` (fusedOperation) given the addresses of
 * its share. On a shared heap the addresses are the tensors' own; otherwise each worker's inputs are copied into the
 * pool's memory and its outputs copied back.
 */
function runSplit(
  pool: GemmPool,
  backend: unknown,
  cut: number[],
  inputs: Part[],
  outputs: Part[],
  op: (ins: number[], outs: number[], units: number) => Int32Array,
  own: () => void,
): void {
  const workers = cut.slice(1, -1);
  if (pool.worksOn((backend as WasmHeapBackend).wasm)) {
    const address = (p: Part, from: number): number => p.at + from * p.unitBytes;
    pool.runOnHeap([new Int32Array(0), ...workers.map((from, w) => op(inputs.map((p) => address(p, from)), outputs.map((p) => address(p, from)), cut[w + 2]! - from))], own);
    return;
  }
  const mine = cut[1]!;
  const rest = cut[cut.length - 1]! - mine;
  // the workers' part of each tensor, one after another in the pool's memory: offsets from its (64-byte aligned) base
  const parts = [...inputs, ...outputs];
  const offsets: number[] = [];
  let total = 0;
  for (const p of parts) {
    offsets.push(total);
    total += roundUp(p.whole ?? p.unitBytes * rest, 64);
  }
  const heap = heapBytes(backend);
  pool.runShares(
    total,
    (shared, base) => {
      inputs.forEach((p, j) => shared.set(p.whole !== undefined ? heap.subarray(p.at, p.at + p.whole) : heap.subarray(p.at + mine * p.unitBytes, p.at + (mine + rest) * p.unitBytes), base + offsets[j]!));
      const address = (p: Part, j: number, from: number): number => base + offsets[j]! + (p.whole !== undefined ? 0 : (from - mine) * p.unitBytes);
      return workers.map((from, w) =>
        op(inputs.map((p, j) => address(p, j, from)), outputs.map((p, j) => address(p, inputs.length + j, from)), cut[w + 2]! - from),
      );
    },
    own,
    (shared, base) =>
      outputs.forEach((p, j) => {
        const at = base + offsets[inputs.length + j]!;
        heap.set(shared.subarray(at, at + p.unitBytes * rest), p.at + mine * p.unitBytes);
      }),
  );
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
  const pool = splitPool(backend, 3 * n, 'exp', true);
  return inPlace(backend, [g, u], [[...g.shape]], (k, [ga, ua], [ma]) => {
    if (!pool) return k.swiglu(ga!, ua!, ma!, n);
    const cut = shares(n, pool.threads, 4);
    runSplit(pool, backend, cut, [ga!, ua!].map(perElement), [ma!].map(perElement), ([gw, uw], [mw], count) => fusedOperation(OP_SWIGLU, [gw!, uw!, mw!, count]), () =>
      k.swiglu(ga!, ua!, ma!, cut[1]!),
    );
  })[0]!;
};

const swigluGrad: KernelFunc = ({ inputs, backend }) => {
  const ins = ['gate', 'up', 'dm'].map((name) => inputs[name] as TensorInfo);
  float32(FusedKernel.swigluGrad, ...ins);
  const n = sameSize(FusedKernel.swigluGrad, ins);
  const shape = [...ins[0]!.shape];
  const pool = splitPool(backend, 5 * n, 'exp');
  return inPlace(backend, ins, [shape, shape], (k, [g, u, dm], [dg, du]) => {
    if (!pool) return k.swigluGrad(g!, u!, dm!, dg!, du!, n);
    const cut = shares(n, pool.threads, 4);
    runSplit(pool, backend, cut, [g!, u!, dm!].map(perElement), [dg!, du!].map(perElement), ([gw, uw, dmw], [dgw, duw], count) => fusedOperation(OP_SWIGLU_GRAD, [gw!, uw!, dmw!, dgw!, duw!, count]), () =>
      k.swigluGrad(g!, u!, dm!, dg!, du!, cut[1]!),
    );
  });
};

const rmsNorm: KernelFunc = ({ inputs, attrs, backend }) => {
  const x = inputs['x'] as TensorInfo;
  const w = inputs['weight'] as TensorInfo;
  float32(FusedKernel.rmsNorm, x, w);
  const { eps, activeDim } = attrs as unknown as { eps: number; activeDim: number };
  const d = x.shape[x.shape.length - 1] ?? 0;
  if (d < 1 || size(w.shape) !== d || !(activeDim > 0)) throw new Error(`${FusedKernel.rmsNorm}: x [${x.shape}], weight [${w.shape}], activeDim ${activeDim} do not fit`);
  const rows = size(x.shape) / d;
  const [epsBits, invBits] = [f32Bits(eps), f32Bits(1 / activeDim)];
  const pool = rows > 1 ? splitPool(backend, 2 * rows * d, 'light') : undefined;
  return inPlace(backend, [x, w], [[...x.shape], [...x.shape.slice(0, -1), 1]], (k, [xa, wa], [oa, ra]) => {
    if (!pool) return k.rmsNorm(xa!, wa!, oa!, ra!, rows, d, epsBits, invBits);
    const cut = shares(rows, pool.threads);
    runSplit(pool, backend, cut, [{ at: xa!, unitBytes: 4 * d }, { at: wa!, unitBytes: 0, whole: 4 * d }], [{ at: oa!, unitBytes: 4 * d }, { at: ra!, unitBytes: 4 }], ([xw, ww], [ow, rw], count) =>
      fusedOperation(OP_RMS_NORM, [xw!, ww!, ow!, rw!, count, d, epsBits, invBits]), () => k.rmsNorm(xa!, wa!, oa!, ra!, cut[1]!, d, epsBits, invBits),
    );
  });
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
  const pool = items > 1 ? splitPool(backend, 2 * items * rows * cols, 'exp', true) : undefined;
  return inPlace(backend, [s], [[items, rows, cols]], (k, [sa], [pa]) => {
    if (!pool) return k.causalSoftmax(sa!, pa!, items * rows, rows, cols, seq, bits, 0);
    // whole items per thread (a share's row positions restart at its first row)
    const cut = shares(items, pool.threads);
    const itemBytes = 4 * rows * cols;
    runSplit(pool, backend, cut, [{ at: sa!, unitBytes: itemBytes }], [{ at: pa!, unitBytes: itemBytes }], ([sw], [pw], count) =>
      fusedOperation(OP_CAUSAL_SOFTMAX, [sw!, pw!, count * rows, rows, cols, seq, bits, 0]), () => k.causalSoftmax(sa!, pa!, cut[1]! * rows, rows, cols, seq, bits, 0),
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
  const rows = size(p.shape) / cols;
  const bits = f32Bits(scale);
  const pool = rows > 1 ? splitPool(backend, 3 * rows * cols, 'light') : undefined;
  return inPlace(backend, [p, dp], [[...p.shape]], (k, [pa, da], [oa]) => {
    if (!pool) return k.softmaxGrad(pa!, da!, oa!, rows, cols, bits);
    const cut = shares(rows, pool.threads);
    const perRow = (at: number): Part => ({ at, unitBytes: 4 * cols });
    runSplit(pool, backend, cut, [pa!, da!].map(perRow), [oa!].map(perRow), ([pw, dw], [ow], count) => fusedOperation(OP_SOFTMAX_GRAD, [pw!, dw!, ow!, count, cols, bits]), () =>
      k.softmaxGrad(pa!, da!, oa!, cut[1]!, cols, bits),
    );
  })[0]!;
};

const ropeHeads: KernelFunc = ({ inputs, attrs, backend }) => {
  const [x, cos, sin] = ['x', 'cos', 'sin'].map((name) => inputs[name] as TensorInfo);
  float32(FusedKernel.ropeHeads, x!, cos!, sin!);
  const { batch, seq, heads, headDim, backward } = attrs as unknown as { batch: number; seq: number; heads: number; headDim: number; backward: boolean };
  if (size(x!.shape) !== batch * seq * heads * headDim || size(cos!.shape) !== seq * headDim || size(sin!.shape) !== seq * headDim || headDim % 2 !== 0) {
    throw new Error(`${FusedKernel.ropeHeads}: x [${x!.shape}], cos [${cos!.shape}], sin [${sin!.shape}] do not match batch ${batch}, seq ${seq}, heads ${heads}, headDim ${headDim}`);
  }
  const shape = backward ? [batch * seq, heads * headDim] : [batch, heads, seq, headDim];
  const pool = batch > 1 ? splitPool(backend, 2 * batch * seq * heads * headDim, 'light') : undefined;
  const direction = backward ? 1 : 0;
  return inPlace(backend, [x!, cos!, sin!], [shape], (k, [xa, ca, sa], [oa]) => {
    if (!pool) return k.ropeHeads(xa!, oa!, batch, seq, heads, headDim, ca!, sa!, direction);
    // whole sequences per thread: one sequence is seq·heads·headDim floats on either side of the head transpose
    const cut = shares(batch, pool.threads);
    const sequence = 4 * seq * heads * headDim;
    const table = { unitBytes: 0, whole: 4 * seq * headDim };
    runSplit(pool, backend, cut, [{ at: xa!, unitBytes: sequence }, { at: ca!, ...table }, { at: sa!, ...table }], [{ at: oa!, unitBytes: sequence }], ([xw, cw, sw], [ow], count) =>
      fusedOperation(OP_ROPE_HEADS, [xw!, ow!, count, seq, heads, headDim, cw!, sw!, direction]), () => k.ropeHeads(xa!, oa!, cut[1]!, seq, heads, headDim, ca!, sa!, direction),
    );
  })[0]!;
};

const adamw: KernelFunc = ({ inputs, attrs, backend }) => {
  const ins = ['param', 'grad', 'm', 'v'].map((name) => inputs[name] as TensorInfo);
  float32(FusedKernel.adamw, ...ins);
  const n = sameSize(FusedKernel.adamw, ins);
  const a = attrs as unknown as { lr: number; beta1: number; beta2: number; eps: number; decay: number; gradScale: number; bc1: number; bc2: number };
  const shape = [...ins[0]!.shape];
  const hyper = [a.lr, a.beta1, a.beta2, a.eps, 1 - a.decay, a.gradScale, 1 / a.bc1, 1 / a.bc2].map(f32Bits) as [number, number, number, number, number, number, number, number];
  const pool = splitPool(backend, 7 * n, 'light');
  return inPlace(backend, ins, [shape, shape, shape], (k, [p, g, m, v], [po, mo, vo]) => {
    if (!pool) return k.adamw(p!, g!, m!, v!, po!, mo!, vo!, n, ...hyper);
    const cut = shares(n, pool.threads, 4);
    runSplit(pool, backend, cut, [p!, g!, m!, v!].map(perElement), [po!, mo!, vo!].map(perElement), (i, o, count) => fusedOperation(OP_ADAMW, [...i, ...o, count, ...hyper]), () =>
      k.adamw(p!, g!, m!, v!, po!, mo!, vo!, cut[1]!, ...hyper),
    );
  });
};

/**
 * tfjs's `Add` for two float32 tensors of one shape on a shared heap, split across the GEMM's threads (the residual
 * adds of a block); everything else — broadcasts, other dtypes, small or unshared — goes to tfjs's own kernel. An
 * IEEE float32 addition is the same bits whoever computes it.
 */
function splitAdd(stock: KernelFunc): KernelFunc {
  return (args) => {
    const a = args.inputs['a'] as TensorInfo;
    const b = args.inputs['b'] as TensorInfo;
    const n = size(a.shape);
    const same = a.dtype === 'float32' && b.dtype === 'float32' && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
    const pool = same ? splitPool(args.backend, 3 * n, 'light') : undefined;
    // ('light' kernels split only on a shared heap: an unshared one gets no pool here)
    if (!pool) return stock(args);
    return inPlace(args.backend, [a, b], [[...a.shape]], (k, [aa, ba], [oa]) => {
      const cut = shares(n, pool.threads, 4);
        runSplit(pool, args.backend, cut, [aa!, ba!].map(perElement), [oa!].map(perElement), ([aw, bw], [ow], count) => fusedOperation(OP_ADD, [aw!, bw!, ow!, count]), () =>
        k.add(aa!, ba!, oa!, cut[1]!),
      );
    })[0]!;
  };
}

/** Marks our `Add` (the stock registration rides on it: ../kernels/replace.ts). */
const SPLIT_ADD = Symbol.for('topiary:split-add');

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
  // the residual adds split on a shared heap (tfjs's kernel for the rest; its setup still binds its wasm function)
  replaceWasmKernel('Add', SPLIT_ADD, (stock) => splitAdd(stock.kernelFunc));
  // the module generated, compiled and instantiated now (~25 ms of code that runs once, JIT-cold), not in the first
  // kernel call — as a native library's kernels are compiled before it runs
  exportsFor(tf.findBackend('wasm') as unknown as WasmHeapBackend);
  return true;
}

/** Remove them (and stop the decode threads): the model computes those steps with composite ops again. */
export function uninstallInPlaceFusedKernels(): void {
  for (const name of IN_PLACE_FUSED) if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
  restoreWasmKernel('Add', SPLIT_ADD);
  decodeThreads?.dispose();
  decodeThreads = undefined;
}
