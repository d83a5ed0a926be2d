/**
 * `Identity` that shares the input's data instead of copying it. tfjs clones every tensor a gradient will need
 * (`saveTensorsForBackwardMode` → `clone` → Identity), and the stock wasm kernel copies the bytes, so a training
 * step held every saved activation twice until its forward scope ended. tfjs tensors are immutable (a variable's
 * `assign` swaps its data id, nothing writes into an existing buffer), so sharing is safe: it is what the cpu backend
 * and the wasm backend's own `Reshape` do — one more reference on the data id, freed with the last tensor.
 */
import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { replaceWasmKernel, restoreWasmKernel } from './replace.js';

interface RefCountingBackend {
  incRef(dataId: object): void;
}

const SHARED = Symbol.for('topiary:shared-identity');

const sharedIdentity: KernelFunc = (args) => {
  const x = args.inputs['x'] as TensorInfo;
  (args.backend as unknown as RefCountingBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
};

/** Replace the wasm Identity with the sharing one (idempotent). */
export function installSharedIdentity(): void {
  replaceWasmKernel('Identity', SHARED, () => sharedIdentity);
}

/** Put the stock (copying) Identity back. */
export function uninstallSharedIdentity(): void {
  restoreWasmKernel('Identity', SHARED);
}
