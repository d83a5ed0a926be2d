/**
 * `BatchMatMul` for the wasm engine computed by OpenBLAS in place on the wasm heap: the output is allocated on the
 * heap first (the heap may grow and move), then Float32Array views are taken at each tensor's offset and handed to
 * `cblas_sgemm`, which reads A and B and writes C where tfjs expects them. No copies, transposes handled by BLAS,
 * batches as strided products (a batch of 1 broadcasts). Anything else (non-float32, general batch broadcasting)
 * goes to the kernel that was registered before (the wasm plugin's fast kernel or the stock one).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { checkSoftmaxCrossEntropyInputs, FusedKernel } from '@topiary/kernel';
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

/**
 * The kernel's optional fused kernels (`FusedKernel`) for the wasm engine, computed by the addon in one
 * multithreaded pass on the wasm heap: softmax cross-entropy rows (+ gradient), AdamW, RoPE with the head transpose,
 * the causal attention softmax, SwiGLU, RMSNorm, and their gradients. Outputs are allocated
 * first, views taken after (the heap may move). Idempotent.
 */
export function installFusedKernels(blas: BlasAddon): void {
  const heap = (backend: unknown): WasmHeapBackend => backend as WasmHeapBackend;
  const f32 = (b: WasmHeapBackend, t: TensorInfo): Float32Array => b.typedArrayFromHeap(t);
  // typedArrayFromHeap gives the array type of the tensor's dtype (Int32Array for int32)
  const i32 = (b: WasmHeapBackend, t: TensorInfo): Int32Array => b.typedArrayFromHeap(t) as unknown as Int32Array;

  const float32 = (name: string, ...xs: TensorInfo[]): void => {
    for (const x of xs) if (x.dtype !== 'float32') throw new Error(`${name}: expected float32 inputs, got ${x.dtype} [${x.shape}]`);
  };
  const sameSize = (name: string, xs: TensorInfo[]): number => {
    const n = size(xs[0]!.shape);
    for (const x of xs) if (size(x.shape) !== n) throw new Error(`${name}: inputs of different sizes ([${xs.map((t) => t.shape).join('], [')}])`);
    return n;
  };

  const softmaxCrossEntropy: KernelFunc = (args) => {
    const z = args.inputs['logits'] as TensorInfo;
    const t = args.inputs['targets'] as TensorInfo;
    const { withGrad, scale } = args.attrs as unknown as { withGrad: boolean; scale: number };
    checkSoftmaxCrossEntropyInputs(z, t);
    const [n, vocab] = z.shape as [number, number];
    const b = heap(args.backend);
    const loss = b.makeOutput([n], 'float32');
    const grad = withGrad ? b.makeOutput([n, vocab], 'float32') : null;
    if (n > 0) blas.softmaxXent(f32(b, z), n, vocab, i32(b, t), f32(b, loss), grad ? f32(b, grad) : null, scale);
    return grad ? [loss, grad] : [loss];
  };

  const adamw: KernelFunc = (args) => {
    const ins = ['param', 'grad', 'm', 'v'].map((k) => args.inputs[k] as TensorInfo);
    float32(FusedKernel.adamw, ...ins);
    const n = sameSize(FusedKernel.adamw, ins);
    const a = args.attrs as unknown as { lr: number; beta1: number; beta2: number; eps: number; decay: number; gradScale: number; bc1: number; bc2: number };
    const b = heap(args.backend);
    const outs = [0, 1, 2].map(() => b.makeOutput([...ins[0]!.shape], 'float32'));
    if (n > 0) {
      const [p, g, m, v] = ins.map((x) => f32(b, x));
      const [po, mo, vo] = outs.map((x) => f32(b, x));
      blas.adamw(p!, g!, m!, v!, po!, mo!, vo!, a.lr, a.beta1, a.beta2, a.eps, a.decay, a.gradScale, a.bc1, a.bc2);
    }
    return outs;
  };

  const ropeHeads: KernelFunc = (args) => {
    const x = args.inputs['x'] as TensorInfo;
    const cos = args.inputs['cos'] as TensorInfo;
    const sin = args.inputs['sin'] as TensorInfo;
    float32(FusedKernel.ropeHeads, x, cos, sin);
    const { batch, seq, heads, headDim, backward } = args.attrs as unknown as { batch: number; seq: number; heads: number; headDim: number; backward: boolean };
    if (size(x.shape) !== batch * seq * heads * headDim || size(cos.shape) !== seq * headDim || size(sin.shape) !== seq * headDim) {
      throw new Error(`${FusedKernel.ropeHeads}: x [${x.shape}], cos [${cos.shape}], sin [${sin.shape}] do not match batch ${batch}, seq ${seq}, heads ${heads}, headDim ${headDim}`);
    }
    const b = heap(args.backend);
    const out = b.makeOutput(backward ? [batch * seq, heads * headDim] : [batch, heads, seq, headDim], 'float32');
    if (size(x.shape) > 0) blas.ropeHeads(f32(b, x), f32(b, out), batch, seq, heads, headDim, f32(b, cos), f32(b, sin), Boolean(backward));
    return out;
  };

  const causalSoftmax: KernelFunc = (args) => {
    const s = args.inputs['scores'] as TensorInfo;
    float32(FusedKernel.causalSoftmax, s);
    if (s.shape.length !== 3) throw new Error(`${FusedKernel.causalSoftmax}: expected scores [items, rows, cols], got [${s.shape}]`);
    const { seq, scale } = args.attrs as unknown as { seq: number; scale: number };
    const [items, rows, cols] = s.shape as [number, number, number];
    const b = heap(args.backend);
    const out = b.makeOutput([items, rows, cols], 'float32');
    if (items * rows * cols > 0) blas.causalSoftmax(f32(b, s), f32(b, out), items, rows, cols, seq, scale);
    return out;
  };

  const softmaxGrad: KernelFunc = (args) => {
    const p = args.inputs['probs'] as TensorInfo;
    const dp = args.inputs['dProbs'] as TensorInfo;
    float32(FusedKernel.softmaxGrad, p, dp);
    if (p.shape.join() !== dp.shape.join() || p.shape.length < 1) throw new Error(`${FusedKernel.softmaxGrad}: probs [${p.shape}] and dProbs [${dp.shape}] differ`);
    const { scale } = args.attrs as unknown as { scale: number };
    const cols = p.shape[p.shape.length - 1]!;
    const b = heap(args.backend);
    const out = b.makeOutput([...p.shape], 'float32');
    if (size(p.shape) > 0) blas.softmaxGrad(f32(b, p), f32(b, dp), f32(b, out), size(p.shape) / cols, cols, scale);
    return out;
  };

  const swiglu: KernelFunc = (args) => {
    const g = args.inputs['gate'] as TensorInfo;
    const u = args.inputs['up'] as TensorInfo;
    float32(FusedKernel.swiglu, g, u);
    const n = sameSize(FusedKernel.swiglu, [g, u]);
    const b = heap(args.backend);
    const m = b.makeOutput([...g.shape], 'float32');
    if (n > 0) blas.swiglu(f32(b, g), f32(b, u), f32(b, m), n);
    return m;
  };

  const swigluGrad: KernelFunc = (args) => {
    const [g, u, dm] = ['gate', 'up', 'dm'].map((k) => args.inputs[k] as TensorInfo) as [TensorInfo, TensorInfo, TensorInfo];
    float32(FusedKernel.swigluGrad, g, u, dm);
    const n = sameSize(FusedKernel.swigluGrad, [g, u, dm]);
    const b = heap(args.backend);
    const dg = b.makeOutput([...g.shape], 'float32');
    const du = b.makeOutput([...g.shape], 'float32');
    if (n > 0) blas.swigluGrad(f32(b, g), f32(b, u), f32(b, dm), f32(b, dg), f32(b, du), n);
    return [dg, du];
  };

  const rmsNorm: KernelFunc = (args) => {
    const x = args.inputs['x'] as TensorInfo;
    const w = args.inputs['weight'] as TensorInfo;
    float32(FusedKernel.rmsNorm, x, w);
    const { eps, activeDim } = args.attrs as unknown as { eps: number; activeDim: number };
    const d = x.shape[x.shape.length - 1]!;
    if (size(w.shape) !== d) throw new Error(`${FusedKernel.rmsNorm}: weight [${w.shape}] does not match x [${x.shape}]`);
    const rows = size(x.shape) / d;
    const b = heap(args.backend);
    const out = b.makeOutput([...x.shape], 'float32');
    const r = b.makeOutput([...x.shape.slice(0, -1), 1], 'float32');
    if (rows > 0) blas.rmsNorm(f32(b, x), f32(b, w), f32(b, out), f32(b, r), rows, d, eps, activeDim);
    return [out, r];
  };

  const rmsNormGrad: KernelFunc = (args) => {
    const [dh, x, r, w] = ['dh', 'x', 'r', 'weight'].map((k) => args.inputs[k] as TensorInfo) as [TensorInfo, TensorInfo, TensorInfo, TensorInfo];
    const residual = args.inputs['residual'] as TensorInfo | undefined;
    float32(FusedKernel.rmsNormGrad, dh, x, r, w, ...(residual ? [residual] : []));
    const { activeDim } = args.attrs as unknown as { activeDim: number };
    const d = x.shape[x.shape.length - 1]!;
    const rows = size(x.shape) / d;
    if (size(dh.shape) !== rows * d || size(r.shape) !== rows || size(w.shape) !== d || (residual && size(residual.shape) !== rows * d)) {
      throw new Error(`${FusedKernel.rmsNormGrad}: dh [${dh.shape}], x [${x.shape}], r [${r.shape}], weight [${w.shape}] do not match`);
    }
    const b = heap(args.backend);
    const dx = b.makeOutput([...x.shape], 'float32');
    const dw = b.makeOutput([d], 'float32');
    if (rows > 0) blas.rmsNormGrad(f32(b, dh), f32(b, x), f32(b, r), f32(b, w), residual ? f32(b, residual) : null, f32(b, dx), f32(b, dw), rows, d, activeDim);
    else f32(b, dw).fill(0);
    return [dx, dw];
  };

  for (const [kernelName, kernelFunc] of [
    [FusedKernel.swiglu, swiglu],
    [FusedKernel.swigluGrad, swigluGrad],
    [FusedKernel.rmsNorm, rmsNorm],
    [FusedKernel.rmsNormGrad, rmsNormGrad],
    [FusedKernel.softmaxCrossEntropy, softmaxCrossEntropy],
    [FusedKernel.adamw, adamw],
    [FusedKernel.ropeHeads, ropeHeads],
    [FusedKernel.causalSoftmax, causalSoftmax],
    [FusedKernel.softmaxGrad, softmaxGrad],
  ] as const) {
    if (tf.getKernel(kernelName, 'wasm')) tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc });
  }
}

/** Remove the fused kernels (the model falls back to composite ops). */
export function uninstallFusedKernels(): void {
  for (const name of Object.values(FusedKernel)) if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
}
