/**
 * The Node globals the packages use (`Buffer`, a small `process`, `setImmediate`), installed before any package
 * module runs: the worker imports this module first. `process.versions` has no `node`, so tfjs and the packages
 * see a browser.
 */
import { Buffer } from 'buffer';

interface PageProcess {
  env: Record<string, string | undefined>;
  argv: string[];
  platform: string;
  versions: Record<string, string>;
  exitCode: number | undefined;
  cwd(): string;
  emitWarning(message: string | Error): void;
  memoryUsage(): { rss: number; heapUsed: number; heapTotal: number; external: number; arrayBuffers: number };
  hrtime: { bigint(): bigint };
  nextTick(callback: (...args: unknown[]) => void, ...args: unknown[]): void;
  on(): PageProcess;
  off(): PageProcess;
  once(): PageProcess;
}

const scope = globalThis as unknown as { Buffer?: typeof Buffer; process?: PageProcess; setImmediate?: (callback: (...args: unknown[]) => void, ...args: unknown[]) => number };

scope.Buffer ??= Buffer;

if (scope.process === undefined) {
  const heap = (): number => (globalThis as { performance?: { memory?: { usedJSHeapSize?: number } } }).performance?.memory?.usedJSHeapSize ?? 0;
  const page: PageProcess = {
    env: {},
    argv: [],
    platform: 'browser',
    versions: {},
    exitCode: undefined,
    cwd: () => '/',
    emitWarning: (message) => console.warn(message instanceof Error ? message.message : message),
    memoryUsage: () => ({ rss: heap(), heapUsed: heap(), heapTotal: heap(), external: 0, arrayBuffers: 0 }),
    hrtime: { bigint: () => BigInt(Math.round(performance.now() * 1e6)) },
    nextTick: (callback, ...args) => void queueMicrotask(() => callback(...args)),
    on: () => page,
    off: () => page,
    once: () => page,
  };
  scope.process = page;
}

if (scope.setImmediate === undefined) {
  // A macrotask (as Node's is), so progress messages and a cancel get through between batches.
  const channel = new MessageChannel();
  const queue: Array<() => void> = [];
  channel.port1.onmessage = () => queue.shift()?.();
  scope.setImmediate = (callback, ...args) => {
    queue.push(() => callback(...args));
    channel.port2.postMessage(0);
    return queue.length;
  };
}
