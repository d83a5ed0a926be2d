/**
 * @topiary/backend-gpujs — gpu.js kernels for the heavy pruning primitives; tfjs cpu engine for tensor ops.
 */
import { definePlugin, provide, Tokens } from '@topiary/kernel';
import { GpujsBackend, gpujsBackendOptions, type GpujsBackendOptions } from './backend.js';

export { GpujsBackend, gpujsBackendOptions, type GpujsBackendOptions } from './backend.js';
export { GpuKernels, GRAM_BLOCK_ROWS, type GpuJsMode } from './kernels.js';
export { ensureWebGL, hasXvfb, loadHeadlessGl, probeWebGL, startVirtualDisplay, type VirtualDisplay, type WebGLProbe } from './webgl.js';

export function createGpujsBackend(options: GpujsBackendOptions = {}): GpujsBackend {
  return new GpujsBackend(options);
}

export default definePlugin<GpujsBackendOptions>({
  name: 'backend-gpujs',
  description: 'gpu.js kernels (Gram, matmul, row norms) for pruning; tfjs cpu engine for tensor ops',
  options: gpujsBackendOptions,
  register(container, options) {
    provide(container, Tokens.TensorBackend, createGpujsBackend(options ?? {}));
  },
});
