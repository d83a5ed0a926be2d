/**
 * What the in-place kernels need of tfjs-wasm's backend: outputs, the byte address of a tensor on the heap, and the
 * fused module (module.ts) instantiated once per heap memory.
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { tfjsHeapMemory, wasmApi, type EmscriptenHeap, type WasmMemory } from '../gemm/wasm-api.js';
import { fusedModuleBytes, type FusedExports } from './module.js';
import { heapIsShared } from '../shared-heap.js';

export type { FusedExports };

export interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
  disposeData(dataId: object): boolean;
  /** The Emscripten module: its heap memory (tfjsHeapMemory) and allocator. */
  wasm?: unknown;
}

/** The module importing an unshared memory, and the one importing a shared one (a shared heap: shared-heap.ts). */
const compiled = new Map<boolean, object>();
/** One instance per tfjs heap (a WebAssembly.Memory), made on first use. */
const instances = new WeakMap<object, FusedExports>();

/** The heap's memory, or undefined when this tfjs-wasm build does not expose it (then nothing is installed). */
export function heapMemory(backend: unknown): WasmMemory | undefined {
  return tfjsHeapMemory((backend as WasmHeapBackend | undefined)?.wasm);
}

export function exportsFor(backend: WasmHeapBackend): FusedExports {
  const memory = heapMemory(backend);
  if (!memory) throw new Error('the tfjs-wasm heap memory is not reachable (backend.wasm.asm.memory)');
  let inst = instances.get(memory);
  if (!inst) {
    const shared = heapIsShared(memory);
    let module = compiled.get(shared);
    if (!module) compiled.set(shared, (module = new wasmApi.Module(fusedModuleBytes(shared))));
    inst = new wasmApi.Instance(module, { env: { memory } }).exports as unknown as FusedExports;
    instances.set(memory, inst);
  }
  return inst;
}

const bitsView = new DataView(new ArrayBuffer(4));
/** A number as the bits of the nearest float32 (how float attributes reach the module). */
export function f32Bits(x: number): number {
  bitsView.setFloat32(0, x, true);
  return bitsView.getInt32(0, true);
}

export function size(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

