/**
 * FusedKernel.softmaxCrossEntropy for the wasm engine, on the GEMM's threads (gemm/kernels.ts `softmaxRows`: one
 * max pass, one exp-and-sum pass with a SIMD exp, one scaling pass per row). The language-model head's loss
 * reads logits [tokens, vocab] — 2048 × 32000 at the 15M shape — and the composite ops (max, sub, exp, sum, log,
 * div, one-hot, twice for loss and gradient) ran there single-threaded at ~130 M exps/s: over a second per step.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { checkSoftmaxCrossEntropyInputs, FusedKernel } from '@topiary/kernel';
import { sharedGemmPool } from './batch-matmul.js';

interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array;
  disposeData(dataId: object): boolean;
  /** The Emscripten module: the pool's `heap` when the heap is shared. */
  wasm?: unknown;
}

const softmaxCrossEntropy: KernelFunc = (args) => {
  const z = args.inputs['logits'] as TensorInfo;
  const t = args.inputs['targets'] as TensorInfo;
  const { withGrad, scale } = args.attrs as unknown as { withGrad: boolean; scale?: number };
  checkSoftmaxCrossEntropyInputs(z, t);
  const pool = sharedGemmPool();
  if (!pool) throw new Error(`${FusedKernel.softmaxCrossEntropy}: the wasm GEMM is not installed (installFastBatchMatMul)`);
  const [, vocab] = z.shape as [number, number];
  const b = args.backend as unknown as WasmHeapBackend;
  const loss = b.makeOutput([z.shape[0]!], 'float32');
  const grad = withGrad ? b.makeOutput([...z.shape], 'float32') : undefined;
  try {
    const address = (x: TensorInfo): number => b.typedArrayFromHeap(x).byteOffset;
    // On a shared heap (../shared-heap.ts) the threads read the logits and write the gradient where they are.
    if (pool.worksOn(b.wasm)) {
      pool.softmaxCrossEntropyOnHeap(address(z), address(t), z.shape[0]!, vocab, scale ?? 1, address(loss), grad ? address(grad) : 0);
      return grad ? [loss, grad] : [loss];
    }
    // Views only after the outputs exist: allocating may grow (and so move) the tfjs heap.
    pool.softmaxCrossEntropy(
      b.typedArrayFromHeap(z) as Float32Array,
      b.typedArrayFromHeap(t) as Int32Array,
      vocab,
      scale ?? 1,
      b.typedArrayFromHeap(loss) as Float32Array,
      grad ? (b.typedArrayFromHeap(grad) as Float32Array) : undefined,
    );
  } catch (err) {
    for (const out of grad ? [loss, grad] : [loss]) b.disposeData(out.dataId);
    throw err;
  }
  return grad ? [loss, grad] : [loss];
};

/** Register the threaded softmax cross-entropy for wasm (replacing any other registration of the name). */
export function installSoftmaxCrossEntropy(): void {
  if (tf.getKernel(FusedKernel.softmaxCrossEntropy, 'wasm')) tf.unregisterKernel(FusedKernel.softmaxCrossEntropy, 'wasm');
  tf.registerKernel({ kernelName: FusedKernel.softmaxCrossEntropy, backendName: 'wasm', kernelFunc: softmaxCrossEntropy });
}

/** Remove it: the model computes the loss with composite ops again. */
export function uninstallSoftmaxCrossEntropy(): void {
  if (tf.getKernel(FusedKernel.softmaxCrossEntropy, 'wasm')) tf.unregisterKernel(FusedKernel.softmaxCrossEntropy, 'wasm');
}
