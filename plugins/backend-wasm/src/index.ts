/**
 * @topiary/backend-wasm — the default tensor backend: tfjs on its WebAssembly engine, no native build.
 */
import { definePlugin, provide, Tokens } from '@topiary/kernel';
import { WasmBackend, wasmBackendOptions, type WasmBackendOptions } from './backend.js';

export { WasmBackend, wasmBackendOptions, type WasmBackendOptions } from './backend.js';
export { installFastBatchMatMul, uninstallFastBatchMatMul, gemmInfo, productSpec, sharedGemmPool } from './kernels/batch-matmul.js';
export { installSoftmaxCrossEntropy, uninstallSoftmaxCrossEntropy } from './kernels/softmax-cross-entropy.js';
export { GemmPool, defaultThreads, relaxedSimdAvailable, type GemmPoolOptions } from './gemm/pool.js';
export { nodeGemmPlatform } from './gemm/platform-node.js';
export type { GemmPlatform, GemmWorkerData, GemmWorkerEvents, GemmWorkerHandle } from './gemm/platform.js';
export type { ProductSpec } from './gemm/plan.js';
export { installInPlaceFusedKernels, uninstallInPlaceFusedKernels, IN_PLACE_FUSED } from './fused/install.js';
export { installSharedIdentity, uninstallSharedIdentity } from './kernels/identity.js';
export { installRowGather, uninstallRowGather } from './kernels/gather.js';
export { wasmPrimitives, GRAM_BLOCK_ROWS } from './primitives.js';
export { installMissingKernels, unsortedSegmentSumConfig } from './kernels/unsorted-segment-sum.js';

/** A fresh wasm backend (nothing happens until `init()`). */
export function createWasmBackend(options: WasmBackendOptions = {}): WasmBackend {
  return new WasmBackend(options);
}

export default definePlugin<WasmBackendOptions>({
  name: 'backend-wasm',
  description: 'tfjs on the WebAssembly engine (SIMD, XNNPACK): the default backend, no native build',
  options: wasmBackendOptions,
  register(container, options) {
    provide(container, Tokens.TensorBackend, createWasmBackend(options ?? {}));
  },
});
