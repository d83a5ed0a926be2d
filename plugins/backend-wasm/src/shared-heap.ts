/**
 * tfjs-wasm's heap as **shared memory**, so that the GEMM's worker threads read and write tensors where they are.
 *
 * tfjs-wasm's single-threaded builds define their own (unshared) memory, and its threaded build does not start under
 * Node (its pthread workers load from a `blob:` URL). A shared memory is what lets another thread see the heap, so
 * while tfjs-wasm initialises we rewrite its binary's one memory definition into an import of `env.memory` declared
 * shared (same initial size, same maximum) and hand it a `WebAssembly.Memory({ shared: true })`. Nothing else in
 * the binary changes: memory index 0 is the imported one, its data segments and `memory.grow` work on it, and the
 * export the Emscripten glue reads (`asm.memory`) is the same memory. Plain loads and stores on a shared memory are
 * ordinary wasm (no atomics needed); the pool orders them across threads with Atomics.
 *
 * Where the rewrite does not apply (another binary layout, memory that cannot be shared, TOPIARY_WASM_SHARED_HEAP=0,
 * or tfjs-wasm already initialised by someone else) the heap stays unshared and the kernels copy to their threads as
 * before: `heapIsShared` tells which.
 */
import type { WasmMemory } from './gemm/wasm-api.js';

/** Reads an unsigned LEB128 at `at`: [value, next offset]. */
function readUleb(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (;;) {
    const byte = bytes[at++];
    if (byte === undefined) throw new RangeError('truncated LEB128');
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return [value, at];
    scale *= 128;
  }
}

function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const utf8 = (s: string): number[] => [...new TextEncoder().encode(s)];

/** The largest wasm32 memory, in 64 KiB pages (a shared memory must declare a maximum). */
const WASM32_PAGES = 65536;

export interface SharedMemoryBinary {
  /** The rewritten module bytes: the defined memory replaced by an import of a shared `env.memory`. */
  bytes: Uint8Array;
  /** The memory to import: the definition's initial and maximum pages. */
  initial: number;
  maximum: number;
}

/**
 * A module binary that defines exactly one memory and imports none, rewritten to import that memory as a shared
 * `env.memory` with the same limits (no maximum → the wasm32 maximum). Undefined when the binary is not of that
 * shape (then it is used as it is).
 */
export function importSharedMemory(binary: Uint8Array): SharedMemoryBinary | undefined {
  const magic = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  if (binary.length < 8 || magic.some((b, i) => binary[i] !== b)) return undefined;
  const sections: Array<{ id: number; start: number; body: number; end: number }> = [];
  for (let at = 8; at < binary.length; ) {
    const id = binary[at]!;
    const [length, body] = readUleb(binary, at + 1);
    sections.push({ id, start: at, body, end: body + length });
    at = body + length;
  }
  const memories = sections.filter((s) => s.id === 5);
  const imports = sections.filter((s) => s.id === 2);
  if (memories.length !== 1 || imports.length > 1) return undefined;
  const memory = memories[0]!;
  const [count, limitsAt] = readUleb(binary, memory.body);
  if (count !== 1) return undefined;
  const flags = binary[limitsAt]!;
  if (flags !== 0x00 && flags !== 0x01) return undefined; // already shared, or 64-bit: leave it alone
  const [initial, afterMin] = readUleb(binary, limitsAt + 1);
  const maximum = flags === 0x01 ? readUleb(binary, afterMin)[0] : WASM32_PAGES;
  const entry = Uint8Array.from([...uleb(3), ...utf8('env'), ...uleb(6), ...utf8('memory'), 0x02, 0x03, ...uleb(initial), ...uleb(maximum)]);
  // An imported memory already in the import section would clash with ours (wasm allows one memory here).
  let importBody: Uint8Array;
  if (imports.length === 1) {
    const section = imports[0]!;
    const [n, entriesAt] = readUleb(binary, section.body);
    for (let i = 0, at = entriesAt; i < n; i++) {
      const [moduleLength, m] = readUleb(binary, at);
      const [fieldLength, f] = readUleb(binary, m + moduleLength);
      const kind = binary[f + fieldLength]!;
      if (kind === 0x02) return undefined;
      at = skipImportDescription(binary, kind, f + fieldLength + 1);
    }
    importBody = concat([Uint8Array.from(uleb(n + 1)), binary.subarray(entriesAt, section.end), entry]);
  } else {
    importBody = concat([Uint8Array.from(uleb(1)), entry]);
  }
  const importSection = concat([Uint8Array.from([2, ...uleb(importBody.length)]), importBody]);
  const parts: Uint8Array[] = [binary.subarray(0, 8)];
  let placed = false;
  for (const s of sections) {
    // the import section goes where it was, or (there was none) before the first section that must follow it
    if (!placed && s.id >= 2) {
      parts.push(importSection);
      placed = true;
    }
    if (s.id === 2 || s.id === 5) continue;
    parts.push(binary.subarray(s.start, s.end));
  }
  if (!placed) parts.push(importSection);
  return { bytes: concat(parts), initial, maximum };
}

/** Past one import's description (kind: 0 function, 1 table, 2 memory, 3 global, 4 tag). */
function skipImportDescription(binary: Uint8Array, kind: number, at: number): number {
  const limits = (p: number): number => {
    const flags = binary[p]!;
    let next = readUleb(binary, p + 1)[1];
    if (flags & 0x01) next = readUleb(binary, next)[1];
    return next;
  };
  switch (kind) {
    case 0x00:
      return readUleb(binary, at)[1];
    case 0x01:
      return limits(at + 1);
    case 0x03:
      return at + 2;
    case 0x04:
      return readUleb(binary, at + 1)[1];
    default:
      throw new RangeError(`unknown import kind ${kind}`);
  }
}

/** Whether a memory is shared between threads (its buffer a SharedArrayBuffer). */
export function heapIsShared(memory: WasmMemory | undefined): boolean {
  return typeof SharedArrayBuffer === 'function' && memory?.buffer instanceof SharedArrayBuffer;
}

type Instantiate = (source: unknown, imports?: Record<string, Record<string, unknown>>) => Promise<unknown>;
interface InstantiateHost {
  instantiate: Instantiate;
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
}

/** tfjs-wasm's Emscripten glue: its import object has these (other modules instantiated meanwhile are left alone). */
function isTfjsWasmImports(imports: Record<string, Record<string, unknown>> | undefined): boolean {
  return typeof imports?.['env']?.['emscripten_resize_heap'] === 'function' && imports['wasi_snapshot_preview1'] !== undefined && imports['env']['memory'] === undefined;
}

/**
 * Run `init` (tfjs-wasm's initialisation) with its module instantiated on a shared memory (the binary rewritten by
 * `importSharedMemory`). `WebAssembly.instantiate` is wrapped only while `init` runs, and only calls with tfjs-wasm's
 * imports and the bytes of a binary are changed. Returns what `init` returns.
 */
export async function withSharedTfjsHeap<T>(init: () => Promise<T>): Promise<T> {
  const host = (globalThis as unknown as { WebAssembly: InstantiateHost }).WebAssembly;
  const original = host.instantiate;
  host.instantiate = function (this: unknown, source: unknown, imports?: Record<string, Record<string, unknown>>): Promise<unknown> {
    const bytes = source instanceof ArrayBuffer ? new Uint8Array(source) : ArrayBuffer.isView(source) ? new Uint8Array(source.buffer, source.byteOffset, source.byteLength) : undefined;
    const rewritten = bytes && isTfjsWasmImports(imports) ? importSharedMemory(bytes) : undefined;
    if (!rewritten) return original.call(host, source, imports);
    const memory = new host.Memory({ initial: rewritten.initial, maximum: rewritten.maximum, shared: true });
    return original.call(host, rewritten.bytes, { ...imports, env: { ...imports!['env'], memory } });
  } as Instantiate;
  try {
    return await init();
  } finally {
    host.instantiate = original;
  }
}
