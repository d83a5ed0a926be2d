/**
 * The GEMM's platform under Node: worker_threads, `v8.setFlagsFromString` for relaxed SIMD, `os` for the cores,
 * environment variables for settings. The only module of the package that imports Node built-ins.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import v8 from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { GemmPlatform, GemmWorkerData, GemmWorkerEvents, GemmWorkerHandle } from './platform.js';

const require = createRequire(import.meta.url);

export const nodeGemmPlatform: GemmPlatform = {
  name: 'node',
  setting: (name) => process.env[name],
  cores: () => Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length),
  sharedMemory: () => true,
  enableRelaxedSimd() {
    // Node 20's V8 has relaxed SIMD behind a flag that is safe to switch on at run time (it only widens what
    // wasm validation accepts).
    try {
      v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
      return true;
    } catch {
      return false;
    }
  },
  startWorker(body: string, data: GemmWorkerData, events: GemmWorkerEvents): GemmWorkerHandle {
    // Plain JavaScript evaluated by worker_threads (`eval: true`), so it runs the same from the TypeScript sources
    // under test and from dist/.
    const source = `const { module, memory, index, heap } = require('node:worker_threads').workerData;\n${body}`;
    const worker = new Worker(source, { eval: true, workerData: data });
    // Blocked in Atomics.wait, a worker would otherwise keep the process alive.
    worker.unref();
    // Without a listener a worker's error would end the process; with one, the pool is marked broken.
    worker.on('error', (err: Error) => events.error(err.message));
    worker.on('exit', (code: number) => events.exit(code));
    return { terminate: () => void worker.terminate() };
  },
  startsWorkersWhileBlocked: true,
  warn: (message, code) => process.emitWarning(message, { code }),
  tfjsWasmInstalled() {
    try {
      require.resolve('@tensorflow/tfjs-backend-wasm');
      return true;
    } catch {
      return false;
    }
  },
  tfjsThreadsNote: "tfjs-wasm's own multithreading: hard-wired off under Node (its pthread workers load from a blob: URL Node cannot import); our GEMM uses worker_threads instead",
};
