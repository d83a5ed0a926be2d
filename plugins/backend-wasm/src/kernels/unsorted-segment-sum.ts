/**
 * `UnsortedSegmentSum` for the wasm engine, which ships none. It is the gradient of `gather` (tfjs computes
 * ∂gather as an unsorted segment sum of dy over the gathered indices), so without it an embedding lookup cannot
 * train on wasm. Semantics as TensorFlow's: out[s, ...] = Σ_{i : ids[i] = s} x[i, ...]; ids outside
 * [0, numSegments) are dropped; segmentIds may cover the first k axes of x.
 * Runs in JavaScript over the wasm heap: it is O(size of x), memory-bound, and small next to the matmuls.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';

interface WasmBackendLike {
  readSync(dataId: object): ArrayLike<number>;
  makeOutput(shape: number[], dtype: 'float32' | 'int32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array;
}

const unsortedSegmentSum: KernelFunc = ({ inputs, backend, attrs }) => {
  const x = inputs['x'] as TensorInfo;
  const segmentIds = inputs['segmentIds'] as TensorInfo;
  const numSegments = Number((attrs as { numSegments: number }).numSegments);
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum on wasm supports float32 and int32, got ${x.dtype}`);
  }
  const idRank = segmentIds.shape.length;
  for (let i = 0; i < idRank; i++) {
    if (segmentIds.shape[i] !== x.shape[i]) {
      throw new Error(`UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] must prefix x shape [${x.shape}]`);
    }
  }
  const wasm = backend as unknown as WasmBackendLike;
  const inner = x.shape.slice(idRank).reduce((p, d) => p * d, 1);
  const count = segmentIds.shape.reduce((p, d) => p * d, 1);
  // readSync copies out of the heap, so these stay valid when makeOutput grows it.
  const xs = wasm.readSync(x.dataId);
  const ids = wasm.readSync(segmentIds.dataId);
  const out = wasm.makeOutput([numSegments, ...x.shape.slice(idRank)], x.dtype);
  const acc = wasm.typedArrayFromHeap(out);
  acc.fill(0);
  for (let i = 0; i < count; i++) {
    const s = ids[i]!;
    if (!(s >= 0 && s < numSegments)) continue;
    const src = i * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) acc[dst + j]! += xs[src + j]!;
  }
  return out;
};

export const unsortedSegmentSumConfig: KernelConfig = {
  kernelName: 'UnsortedSegmentSum',
  backendName: 'wasm',
  kernelFunc: unsortedSegmentSum,
};

/** Register the kernels the wasm engine lacks and a LLaMA needs to train. Idempotent. */
export function installMissingKernels(): string[] {
  const added: string[] = [];
  for (const config of [unsortedSegmentSumConfig]) {
    if (tf.getKernel(config.kernelName, 'wasm')) continue;
    tf.registerKernel(config);
    added.push(config.kernelName);
  }
  return added;
}
