/**
 * @topiary/backend-native — opt-in: tfjs-wasm with its matrix products on OpenBLAS through a small N-API addon.
 * Build the addon once with `pnpm --filter @topiary/backend-native build:native`.
 */
import { definePlugin, provide, Tokens } from '@topiary/kernel';
import { NativeBackend, nativeBackendOptions, type NativeBackendOptions } from './backend.js';

export { NativeBackend, nativeBackendOptions, type NativeBackendOptions } from './backend.js';
export { ADDON_PATH, BUILD_COMMAND, addonAvailability, buildPrerequisites, loadAddon, missingPrerequisites, type BlasAddon, type BuildPrerequisites } from './addon.js';
export { installFusedKernels, installNativeBatchMatMul, uninstallFusedKernels, uninstallNativeBatchMatMul, nativeBatchMatMulInstalled } from './kernel.js';
export { nativePrimitives, GRAM_BLOCK_ROWS } from './primitives.js';

export function createNativeBackend(options: NativeBackendOptions = {}): NativeBackend {
  return new NativeBackend(options);
}

export default definePlugin<NativeBackendOptions>({
  name: 'backend-native',
  description: 'tfjs-wasm with matrix products on OpenBLAS (opt-in N-API addon, built by `build:native`)',
  options: nativeBackendOptions,
  register(container, options) {
    provide(container, Tokens.TensorBackend, createNativeBackend(options ?? {}));
  },
});
