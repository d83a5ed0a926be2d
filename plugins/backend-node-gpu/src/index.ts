/**
 * @topiary/backend-node-gpu — tfjs on native libtensorflow with CUDA (`@tensorflow/tfjs-node-gpu`, an optional
 * peer dependency you install yourself, on a machine with an NVIDIA GPU). The detection and loading code is the
 * one of @topiary/backend-node (same package layout, same libtensorflow), used as a library, not as a plugin.
 */
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { definePlugin, provide, Tokens } from '@topiary/kernel';
import { NativeBackend, nativeBackendOptions, type NativeBackendOptions } from '@topiary/backend-node';

export { inspectNativeInstall, NativeBackend, type NativeBackendOptions } from '@topiary/backend-node';

export function createNodeGpuBackend(options: NativeBackendOptions = {}): NativeBackend {
  // Resolve the optional peer from the project first, then from this package (where a peer install lands).
  const searchPaths = options.searchPaths ?? [process.cwd(), dirname(fileURLToPath(import.meta.url))];
  return new NativeBackend('gpu', { ...options, searchPaths });
}

export default definePlugin<NativeBackendOptions>({
  name: 'backend-node-gpu',
  description: 'tfjs on native libtensorflow with CUDA via the optional @tensorflow/tfjs-node-gpu',
  options: nativeBackendOptions,
  register(container, options) {
    provide(container, Tokens.TensorBackend, createNodeGpuBackend(options ?? {}));
  },
});
