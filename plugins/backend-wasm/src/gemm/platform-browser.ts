/**
 * The GEMM's platform in a browser (a page or, better, a Web Worker: the pool's calling thread blocks in
 * Atomics.wait, which a page's main thread may not do). Workers are Web Workers started from a `blob:` URL; they
 * share the module's memory only when the page is cross-origin isolated (served with
 * `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp`); otherwise
 * `sharedMemory()` is false and the GEMM runs single-threaded on unshared memory.
 */
import type { GemmPlatform, GemmWorkerData, GemmWorkerEvents, GemmWorkerHandle } from './platform.js';

/** The slice of the browser globals used here (the project compiles without the DOM library). */
interface BrowserWorker {
  postMessage(message: unknown): void;
  terminate(): void;
  addEventListener(type: 'error', listener: (event: { message?: string }) => void): void;
}
interface BrowserGlobals {
  Worker?: new (url: string, options?: { name?: string }) => BrowserWorker;
  Blob: new (parts: string[], options: { type: string }) => object;
  URL: { createObjectURL(blob: object): string; revokeObjectURL(url: string): void };
  navigator?: { hardwareConcurrency?: number };
  crossOriginIsolated?: boolean;
  SharedArrayBuffer?: unknown;
  console: { warn(...args: unknown[]): void };
}

const browser = globalThis as unknown as BrowserGlobals;

export interface BrowserGemmPlatformOptions {
  /** Settings the page gives (the names Node reads from the environment: TOPIARY_WASM_THREADS, TOPIARY_WASM_FMA). */
  settings?: Readonly<Record<string, string>>;
}

/** The browser platform. Threads need cross-origin isolation and the Worker constructor in this scope. */
export function browserGemmPlatform(options: BrowserGemmPlatformOptions = {}): GemmPlatform {
  const settings = options.settings ?? {};
  return {
    name: 'browser',
    setting: (name) => settings[name],
    cores: () => Math.max(1, browser.navigator?.hardwareConcurrency ?? 1),
    sharedMemory: () => browser.crossOriginIsolated === true && typeof browser.SharedArrayBuffer === 'function' && typeof browser.Worker === 'function',
    // A page cannot change engine flags: relaxed SIMD is there or not.
    enableRelaxedSimd: () => false,
    startWorker(body: string, data: GemmWorkerData, events: GemmWorkerEvents): GemmWorkerHandle {
      const WorkerCtor = browser.Worker;
      if (!WorkerCtor) throw new Error('no Worker constructor in this scope: the GEMM cannot start threads');
      const source = `self.onmessage = (event) => {\n  self.onmessage = null;\n  const { module, memory, index, heap } = event.data;\n${body}\n};`;
      const url = browser.URL.createObjectURL(new browser.Blob([source], { type: 'text/javascript' }));
      const worker = new WorkerCtor(url, { name: `topiary-gemm-${data.index}` });
      worker.addEventListener('error', (event) => events.error(event.message ?? 'worker error'));
      worker.postMessage(data);
      return {
        terminate() {
          worker.terminate();
          browser.URL.revokeObjectURL(url);
          events.exit(0);
        },
      };
    },
    startsWorkersWhileBlocked: false,
    warn: (message, code) => browser.console.warn(`[${code}] ${message}`),
    tfjsWasmInstalled: () => true,
    tfjsThreadsNote: "tfjs-wasm's own multithreading: off (the page sets WASM_HAS_MULTITHREAD_SUPPORT false); our GEMM uses Web Workers when the page is cross-origin isolated",
  };
}
