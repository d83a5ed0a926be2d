/**
 * @topiary/backend-node — tfjs on native libtensorflow (`@tensorflow/tfjs-node`, an optional peer dependency
 * you install yourself). When it is missing or broken, `available()` says which piece and how to fix it.
 */
import { definePlugin, provide, Tokens } from '@topiary/kernel';
import { NativeBackend, nativeBackendOptions, type NativeBackendOptions } from './native.js';

export { inspectNativeInstall, LIBTENSORFLOW_VERSION, NativeBackend, nativeBackendOptions, type NativeBackendOptions, type NativeVariant } from './native.js';

export function createNodeBackend(options: NativeBackendOptions = {}): NativeBackend {
  return new NativeBackend('cpu', options);
}

export default definePlugin<NativeBackendOptions>({
  name: 'backend-node',
  description: 'tfjs on native libtensorflow (CPU) via the optional @tensorflow/tfjs-node',
  options: nativeBackendOptions,
  register(container, options) {
    provide(container, Tokens.TensorBackend, createNodeBackend(options ?? {}));
  },
});
