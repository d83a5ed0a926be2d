/**
 * The slice of the WebAssembly JavaScript API the GEMM uses, typed here: the project compiles without the DOM
 * library (where TypeScript declares `WebAssembly`), and Node's types do not declare it.
 */
export interface WasmMemory {
  /** A SharedArrayBuffer when the memory is shared. */
  readonly buffer: SharedArrayBuffer | ArrayBuffer;
  grow(pages: number): number;
}
export type WasmModule = object;
export interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: { env: { memory: WasmMemory } }) => { exports: object };
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  validate(bytes: Uint8Array): boolean;
}

export const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** What the kernels need of tfjs-wasm's Emscripten module: its exports (`asm`) include the heap's memory. */
export interface EmscriptenHeap {
  asm?: { memory?: WasmMemory };
  _malloc(bytes: number): number;
  _free(address: number): void;
}

/**
 * tfjs-wasm's heap memory from its Emscripten module (`backend.wasm`), or undefined where a build does not expose
 * it — then kernels that work in place on the heap are not used.
 */
export function tfjsHeapMemory(module: unknown): WasmMemory | undefined {
  return (module as Partial<EmscriptenHeap> | undefined)?.asm?.memory;
}
