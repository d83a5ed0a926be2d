/**
 * What the GEMM needs from the JavaScript runtime, in one small seam: how many cores, settings (environment
 * variables), switching on relaxed SIMD, starting a worker thread that shares the module's memory, and whether
 * memory can be shared at all. `nodeGemmPlatform` (platform-node.ts) is the default; a browser page passes
 * `browserGemmPlatform()` (`@topiary/backend-wasm/browser`: Web Workers, and shared memory only when the page is
 * cross-origin isolated). Nothing else in the package asks which runtime it is on.
 */

/**
 * What a GEMM worker is given when it starts: the compiled module, the memory it shares, its thread index, and
 * tfjs-wasm's heap when that is shared memory too (null otherwise: shared-heap.ts).
 */
export interface GemmWorkerData {
  module: object;
  memory: object;
  index: number;
  heap: object | null;
}

/** A started worker, as the pool holds it. */
export interface GemmWorkerHandle {
  terminate(): void;
}

/** Called (between products, never during one) when a worker fails or exits. */
export interface GemmWorkerEvents {
  error(message: string): void;
  exit(code: number): void;
}

export interface GemmPlatform {
  /** For messages and `capabilities()` notes: `node`, `browser`. */
  readonly name: string;
  /** A setting by name (an environment variable under Node; none in a browser). */
  setting(name: string): string | undefined;
  /** Cores the runtime reports (at least 1). */
  cores(): number;
  /** Whether memory can be shared between threads here (false: the GEMM runs on one thread, unshared memory). */
  sharedMemory(): boolean;
  /** Try to let the engine validate relaxed SIMD (Node: a V8 flag); true when the caller should probe again. */
  enableRelaxedSimd(): boolean;
  /**
   * Start a worker that runs `body` — plain JavaScript with `module`, `memory`, `index` and `heap` (GemmWorkerData) in
   * scope — on its own thread.
   */
  startWorker(body: string, data: GemmWorkerData, events: GemmWorkerEvents): GemmWorkerHandle;
  /**
   * Whether a started worker comes up while the thread that started it blocks (Node: yes; a browser: no — the
   * pool then runs products on the calling thread until its workers have started).
   */
  readonly startsWorkersWhileBlocked: boolean;
  /** A warning for the user (Node: process.emitWarning with `code`; a browser: the console). */
  warn(message: string, code: string): void;
  /** Whether @tensorflow/tfjs-backend-wasm can be loaded here (Node: it resolves; a bundled page: always). */
  tfjsWasmInstalled(): boolean;
  /** What tfjs-wasm's own multithreading does here, for `capabilities()`. */
  readonly tfjsThreadsNote: string;
}
