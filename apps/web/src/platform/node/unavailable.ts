/**
 * Node built-ins the packages import but the page never calls (worker_threads, v8, vm, child_process, …: the GEMM's
 * threads go through its browser platform instead). Any use names the call.
 */
function unavailable(name: string): never {
  throw new Error(`${name} is not available in the browser`);
}

export class Worker {
  constructor() {
    unavailable('worker_threads.Worker');
  }
}
export const workerData: undefined = undefined;
export const parentPort: null = null;
export const isMainThread = true;
export const setFlagsFromString = (): never => unavailable('v8.setFlagsFromString');
export const runInNewContext = (): never => unavailable('vm.runInNewContext');
export const getHeapStatistics = (): { used_heap_size: number; total_heap_size: number; heap_size_limit: number } => ({ used_heap_size: 0, total_heap_size: 0, heap_size_limit: 0 });
export const fork = (): never => unavailable('child_process.fork');
export const spawn = (): never => unavailable('child_process.spawn');
export const execFileSync = (): never => unavailable('child_process.execFileSync');
export const createServer = (): never => unavailable('net.createServer');
export const promisify = <T>(f: T): T => f;
export const inspect = (value: unknown): string => String(value);
export class EventEmitter {}
export const performance = globalThis.performance;
export default { Worker, workerData, parentPort, isMainThread, setFlagsFromString, runInNewContext, getHeapStatistics, fork, spawn, execFileSync, createServer, promisify, inspect, EventEmitter, performance };
