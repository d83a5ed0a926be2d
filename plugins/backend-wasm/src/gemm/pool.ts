/**
 * Runs the generated GEMM on several threads. tfjs-wasm's own threaded build does not start under Node (its
 * pthread workers load from a `blob:` URL), so this is our own: one WebAssembly memory shared by the main thread
 * and `threads − 1` workers (worker_threads under Node, Web Workers in a browser: the platform seam, platform.ts),
 * each with an instance of the same compiled module. Where memory cannot be shared (a page that is not
 * cross-origin isolated) the pool has one thread and an unshared memory.
 *
 * A product goes: copy A and B from the tfjs heap into the shared memory → write each thread's operation list
 * (plan.ts) → bump a sequence number and wake the workers (Atomics.notify) → the main thread runs its own list
 * → wait until every worker has counted itself done → copy C out. Workers never touch JavaScript objects, only
 * the shared memory; products too small to repay the handshake run on the main thread alone.
 *
 * Waking a thread parked in Atomics.wait costs ~30 µs here, and a block's forward hands the workers ~17 products
 * and kernels tens of µs apart. So a worker polls the sequence number for a while (SPIN_POLLS, ~0.1 ms) before it
 * parks, and the calling thread polls the done count as long before it waits: back-to-back work pays no wake-up
 * (a 524 K multiply-add product on two threads: ~62 µs parked, ~35 µs polling; 52 µs on one thread), and an idle
 * pool still parks (a spinning thread would hold a core another process needs).
 *
 * When tfjs-wasm's heap is shared memory too (shared-heap.ts), each thread also holds an instance on the heap, and
 * `runOnHeap` runs lists whose addresses are tensors' own: products and fused kernels read and write tensors where
 * they are (in-place.ts, fused/install.ts), with no copy in or out.
 */
import { gemmModuleBytes, MAX_PAGES, OP_SOFTMAX_ROWS, OP_WORDS, TILE, type GemmExports, type TileShape } from './kernels.js';
import { TopiaryError } from '@topiary/kernel';
import { tfjsHeapMemory, wasmApi, type EmscriptenHeap, type WasmMemory } from './wasm-api.js';
import { heapIsShared } from '../shared-heap.js';
import { BLOCKS, outputFloats, planProduct, roundUp, scratchFloats, type BlockSizes, type ProductSpec } from './plan.js';
import type { GemmPlatform, GemmWorkerHandle } from './platform.js';
import { nodeGemmPlatform } from './platform-node.js';

/** Control words at the start of the shared memory. */
const SEQ = 0;
const DONE = 1;
const FAILED = 2;
const STOP = 3;
/** Workers that have instantiated the module and entered their loop. */
const READY = 4;
/** Workers parked in Atomics.wait (the caller notifies only when there are some). */
const PARKED = 6;
/** Polls of the sequence number (a worker) or the done count (the caller) before parking in Atomics.wait. */
const SPIN_POLLS = 1 << 16;
/** 1: this round's lists are on tfjs's heap (run by each thread's heap instance); 0: on the pool's memory. */
const ON_HEAP = 5;
/** Thread t's list: address at LISTS + 2t, operation count at LISTS + 2t + 1. */
const LISTS = 8;
export const MAX_THREADS = 16;
const CONTROL_BYTES = 4 * (LISTS + 2 * MAX_THREADS);
/** Operands start here (room for the control words, 64-byte aligned). */
const HEAP_START = roundUp(CONTROL_BYTES, 64);
/** Below this many multiply-adds a product runs on the calling thread only (waking workers costs ~20–50 µs). */
export const SERIAL_MACS = 1 << 19;
/**
 * Below this many multiply-adds per float copied (A, B and C through the shared memory), threads lose: a float
 * copied costs about as much as 6–12 multiply-adds on one thread here (5–10 GB/s against ~15 G MAC/s), and two
 * threads save half the multiply-adds. A one-token step's LM head ([1, d]·[d, 32000]) is one MAC per float: copying
 * its 37 MB weight to the workers took ~70 % of a 15M decode step.
 */
export const THREADED_MACS_PER_FLOAT = 24;
/** A worker that has not answered in this long is treated as dead (no product here takes a fraction of it). */
const WORKER_TIMEOUT_MS = 300_000;
/** Workers that have not started in this long never will (a start takes milliseconds). */
const WORKER_START_MS = 30_000;

/**
 * The worker's whole program, with `module`, `memory` and `index` in scope (the platform starts it: platform.ts).
 * Plain JavaScript, so it runs the same from the TypeScript sources under test, from dist/ and from a bundle.
 */
const WORKER_BODY = `
const { exec } = new WebAssembly.Instance(module, { env: { memory } }).exports;
const heapExec = heap ? new WebAssembly.Instance(module, { env: { memory: heap } }).exports.exec : exec;
const control = new Int32Array(memory.buffer, 0, ${CONTROL_BYTES / 4});
Atomics.add(control, ${READY}, 1);
let seen = 0;
for (;;) {
  let spins = 0;
  while (Atomics.load(control, ${SEQ}) === seen) {
    if (++spins > ${SPIN_POLLS}) {
      Atomics.add(control, ${PARKED}, 1);
      Atomics.wait(control, ${SEQ}, seen);
      Atomics.sub(control, ${PARKED}, 1);
      spins = 0;
    }
  }
  seen = Atomics.load(control, ${SEQ});
  if (Atomics.load(control, ${STOP}) !== 0) break;
  const list = Atomics.load(control, ${LISTS} + 2 * index);
  const count = Atomics.load(control, ${LISTS} + 2 * index + 1);
  if (count > 0) {
    try { (Atomics.load(control, ${ON_HEAP}) !== 0 ? heapExec : exec)(list, count); } catch { Atomics.store(control, ${FAILED}, 1); }
  }
  Atomics.add(control, ${DONE}, 1);
  Atomics.notify(control, ${DONE});
}
`;

/** One f32x4.relaxed_madd function: valid only where the engine has relaxed SIMD switched on. */
const RELAXED_SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b, 0x03,
  0x02, 0x01, 0x00, 0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfd, 0x85, 0x02, 0x0b,
]);

/**
 * Whether fused multiply-add (relaxed SIMD) can be used. Node 20's V8 has relaxed SIMD behind a flag that is
 * safe to switch on at run time (the platform does it); TOPIARY_WASM_FMA=0 keeps it off.
 */
export function relaxedSimdAvailable(platform: GemmPlatform = nodeGemmPlatform): boolean {
  if (platform.setting('TOPIARY_WASM_FMA') === '0') return false;
  if (wasmApi.validate(RELAXED_SIMD_PROBE)) return true;
  if (!platform.enableRelaxedSimd()) return false;
  return wasmApi.validate(RELAXED_SIMD_PROBE);
}

/**
 * Threads to use by default: TOPIARY_WASM_THREADS if set, else the cores the runtime reports (at most 16); 1
 * where memory cannot be shared.
 */
export function defaultThreads(platform: GemmPlatform = nodeGemmPlatform): number {
  if (!platform.sharedMemory()) return 1;
  const env = platform.setting('TOPIARY_WASM_THREADS');
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1) {
      throw new TopiaryError('E_CONFIG', `TOPIARY_WASM_THREADS must be a whole number ≥ 1, got "${env}"`, { where: 'environment variable TOPIARY_WASM_THREADS' });
    }
    return Math.min(n, MAX_THREADS);
  }
  return Math.max(1, Math.min(platform.cores(), MAX_THREADS));
}

/** A thread count as asked (or the default), checked and capped at MAX_THREADS (1 where memory cannot be shared). */
export function resolveThreads(threads: number | undefined, platform: GemmPlatform = nodeGemmPlatform): number {
  const n = threads ?? defaultThreads(platform);
  if (!Number.isInteger(n) || n < 1) {
    throw new TopiaryError('E_CONFIG', `backend-wasm: threads must be a whole number ≥ 1, got ${String(n)}`, { where: 'backend wasm option threads' });
  }
  return platform.sharedMemory() ? Math.min(n, MAX_THREADS) : 1;
}

export interface GemmPoolOptions {
  /** Threads in all, the caller's included (default: defaultThreads()). */
  threads?: number;
  /** Use fused multiply-add when the engine allows it (default true). */
  fma?: boolean;
  /** Cache block sizes (default plan.ts BLOCKS; for tuning). */
  blocks?: BlockSizes;
  /** The runtime (default: Node; `browserGemmPlatform()` in a page). */
  platform?: GemmPlatform;
  /** Products the calling thread does alone run in place on tfjs's heap (default true; false copies them too). */
  inPlace?: boolean;
  /**
   * tfjs-wasm's Emscripten module, when its heap is shared memory (shared-heap.ts): the threads then also run lists
   * on it (`runOnHeap`). Ignored when its memory is not shared.
   */
  heap?: EmscriptenHeap;
}

/** Where `runOnHeap` writes its lists: a block malloc'ed from tfjs's heap, grown when a round needs more. */
interface HeapLists {
  heap: EmscriptenHeap;
  memory: WasmMemory;
  exec: GemmExports['exec'];
  allocated: number;
  at: number;
  bytes: number;
}

/** loss_i = logsumexp(z_i) − z_i[t_i] from each row's (max, Σ exp(z − max)) statistics. */
function lossFromStats(stats: Float32Array, logits: Float32Array, targets: Int32Array, vocab: number, loss: Float32Array): void {
  for (let i = 0; i < targets.length; i++) {
    const t = targets[i]!;
    const picked = t >= 0 && t < vocab ? logits[i * vocab + t]! : 0;
    loss[i] = stats[2 * i]! + Math.log(stats[2 * i + 1]!) - picked;
  }
}

export class GemmPool {
  readonly threads: number;
  readonly fma: boolean;
  readonly tile: TileShape = TILE;
  readonly blocks: BlockSizes;
  private readonly memory: WasmMemory;
  private readonly gemm: GemmExports;
  readonly platform: GemmPlatform;
  private readonly workers: GemmWorkerHandle[] = [];
  private controlView: Int32Array;
  private readonly sharedMemory: boolean;
  /** A view of the memory `run` last wrote lists into, kept while it covers them. */
  private listWords: Int32Array | undefined;
  private listMemory: WasmMemory | undefined;
  private readonly heapLists: HeapLists | undefined;
  private disposed = false;
  private failure: string | undefined;

  constructor(options: GemmPoolOptions = {}) {
    this.platform = options.platform ?? nodeGemmPlatform;
    this.threads = resolveThreads(options.threads, this.platform);
    this.fma = (options.fma ?? true) && relaxedSimdAvailable(this.platform);
    this.blocks = options.blocks ?? BLOCKS;
    const shared = this.platform.sharedMemory();
    this.sharedMemory = shared;
    const module = new wasmApi.Module(gemmModuleBytes(this.tile, this.fma, shared));
    const scratchBytes = this.threads * 4 * scratchFloats(this.tile, this.blocks);
    this.memory = new wasmApi.Memory({ initial: Math.ceil((HEAP_START + scratchBytes) / 65536) + 16, maximum: MAX_PAGES, shared });
    this.gemm = new wasmApi.Instance(module, { env: { memory: this.memory } }).exports as unknown as GemmExports;
    this.controlView = new Int32Array(this.memory.buffer, 0, CONTROL_BYTES / 4);
    const heapMemory = tfjsHeapMemory(options.heap);
    if (options.heap && heapMemory && shared && heapIsShared(heapMemory)) {
      const heapExec = (new wasmApi.Instance(module, { env: { memory: heapMemory } }).exports as unknown as GemmExports).exec;
      this.heapLists = { heap: options.heap, memory: heapMemory, exec: heapExec, allocated: 0, at: 0, bytes: 0 };
    }
    for (let index = 1; index < this.threads; index++) {
      // Without listeners a worker's error would end the process; with them, the pool is marked broken (the
      // kernels then carry on without workers). These events arrive between products, never during one.
      const worker = this.platform.startWorker(WORKER_BODY, { module, memory: this.memory, index, heap: this.heapLists?.memory ?? null }, {
        error: (message) => this.fail(`worker ${index}: ${message}`),
        exit: (code) => this.fail(`worker ${index} exited (code ${code})`),
      });
      this.workers.push(worker);
    }
  }

  /** The control words. An unshared memory's buffer is replaced when it grows, so the view follows it. */
  private get control(): Int32Array {
    // A shared memory's views stay valid when it grows (the control words never move); reading `memory.buffer` is
    // not free (it showed in profiles of small products), so only an unshared memory's is checked.
    if (!this.sharedMemory && this.controlView.buffer !== this.memory.buffer) this.controlView = new Int32Array(this.memory.buffer, 0, CONTROL_BYTES / 4);
    return this.controlView;
  }

  /** Whether every worker has started (a browser starts workers only while the creating thread is not blocked). */
  get started(): boolean {
    return Atomics.load(this.control, READY) >= this.workers.length;
  }

  /**
   * Resolves once every worker has started. Products before that run on the calling thread alone where the
   * platform cannot start workers while the caller blocks (a browser); under Node they wait for the workers.
   */
  async ready(timeoutMs = WORKER_START_MS): Promise<void> {
    const start = Date.now();
    while (!this.started) {
      if (this.failure) throw new Error(`GEMM worker threads failed: ${this.failure}`);
      if (Date.now() - start > timeoutMs) throw new Error(`GEMM worker threads did not start within ${timeoutMs / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /**
   * Threads a product of `work` multiply-adds runs on now (1: the calling thread alone); `copied`, the floats its
   * operands and result would move through the shared memory (omitted: enough work to repay any copy).
   */
  threadsFor(work: number, copied = 0): number {
    if (work < SERIAL_MACS || work < THREADED_MACS_PER_FLOAT * copied) return 1;
    if (!this.platform.startsWorkersWhileBlocked && !this.started) return 1;
    return this.threads;
  }

  /**
   * C = op(A)·op(B) for every item. `a`, `b` hold the operands as stored (row-major, per item; transposed
   * operands as their untransposed storage), `out` receives batch×m×n row-major.
   */
  matmul(spec: ProductSpec, a: Float32Array, b: Float32Array, out: Float32Array): void {
    this.checkUsable();
    const { batch, m, n, k } = spec;
    const items = (index: Int32Array | undefined, batched: boolean): number => (index ? Math.max(0, ...index) + 1 : batched ? batch : 1);
    const want = [items(spec.aIndex, spec.aBatched) * m * k, items(spec.bIndex, spec.bBatched) * k * n, batch * m * n];
    if ((spec.aIndex ? a.length < want[0]! : a.length !== want[0]) || (spec.bIndex ? b.length < want[1]! : b.length !== want[1]) || out.length !== want[2]) {
      throw new RangeError(`GemmPool.matmul: operand sizes ${a.length}, ${b.length}, ${out.length} do not fit ${JSON.stringify(spec)} (want ${want.join(', ')})`);
    }
    if (batch * m * n === 0) return;
    if (k === 0) {
      out.fill(0);
      return;
    }
    const macs = batch * m * n * k;
    const threads = this.threadsFor(macs);
    // Layout: per-thread scratch (fixed), then A, B, C, then the operation lists.
    const aAddr = this.operandBase();
    const bAddr = roundUp(aAddr + 4 * a.length, 64);
    const cAddr = roundUp(bAddr + 4 * b.length, 64);
    const listAddr = roundUp(cAddr + 4 * outputFloats(spec, this.tile), 64);
    const scratch = Array.from({ length: threads }, (_, t) => HEAP_START + t * 4 * scratchFloats(this.tile, this.blocks));
    const plan = planProduct(spec, { a: aAddr, b: bAddr, c: cAddr, scratch }, threads, this.tile, this.blocks);
    this.ensureBytes(listAddr + 4 * plan.lists.reduce((s, l) => s + l.length, 0));
    const heap = this.memory.buffer;
    new Float32Array(heap, aAddr, a.length).set(a);
    new Float32Array(heap, bAddr, b.length).set(b);
    this.run(plan.lists, listAddr);

    // Copy C out of its padded tiles.
    const c = new Float32Array(this.memory.buffer, cAddr, outputFloats(spec, this.tile));
    const itemFloats = plan.rowsPerItem * plan.ldc;
    for (let item = 0; item < batch; item++) {
      const from = item * itemFloats;
      if (plan.ldc === n) out.set(c.subarray(from, from + m * n), item * m * n);
      else for (let i = 0; i < m; i++) out.set(c.subarray(from + i * plan.ldc, from + i * plan.ldc + n), (item * m + i) * n);
    }
  }

  /**
   * Row-wise softmax cross-entropy of `logits` [rows, vocab] against `targets` (FusedKernel.softmaxCrossEntropy):
   * loss_i = logsumexp(z_i) − z_i[t_i] into `loss`; when `grad` is given, (softmax(z_i) − onehot(t_i))·scale into
   * it. Rows are split across the threads. A target outside [0, vocab) picks nothing (its loss is logsumexp).
   */
  softmaxCrossEntropy(logits: Float32Array, targets: Int32Array, vocab: number, scale: number, loss: Float32Array, grad?: Float32Array): void {
    this.checkUsable();
    const rows = targets.length;
    if (logits.length !== rows * vocab || loss.length !== rows || (grad && grad.length !== logits.length)) {
      throw new RangeError(`softmaxCrossEntropy: sizes disagree (logits ${logits.length}, targets ${rows}, vocab ${vocab})`);
    }
    if (rows === 0) return;
    const zAddr = this.operandBase();
    const tAddr = roundUp(zAddr + 4 * logits.length, 64);
    const statsAddr = roundUp(tAddr + 4 * rows, 64);
    const gAddr = roundUp(statsAddr + 8 * rows, 64);
    const listAddr = roundUp(gAddr + (grad ? 4 * logits.length : 0), 64);
    const lists = this.softmaxLists(rows, vocab, scale, zAddr, tAddr, grad ? gAddr : 0, statsAddr);
    this.ensureBytes(listAddr + 4 * OP_WORDS * lists.length);
    const heap = this.memory.buffer;
    new Float32Array(heap, zAddr, logits.length).set(logits);
    new Int32Array(heap, tAddr, rows).set(targets);
    this.run(lists, listAddr);
    lossFromStats(new Float32Array(heap, statsAddr, 2 * rows), logits, targets, vocab, loss);
    if (grad) grad.set(new Float32Array(heap, gAddr, logits.length));
  }

  /**
   * `softmaxCrossEntropy` in place on tfjs's heap (needs `heap`): logits, targets (int32), loss and gradient given
   * as heap byte addresses (`grad` 0: no gradient). Only the per-row statistics (8 bytes a row) are allocated.
   */
  softmaxCrossEntropyOnHeap(logits: number, targets: number, rows: number, vocab: number, scale: number, loss: number, grad: number): void {
    this.checkUsable();
    const h = this.heapLists;
    if (!h) throw new Error('GemmPool.softmaxCrossEntropyOnHeap: the tfjs heap is not shared with this pool');
    if (rows === 0) return;
    const block = h.heap._malloc(8 * rows + 64);
    if (!block) throw new RangeError(`softmaxCrossEntropy: tfjs's heap could not allocate ${8 * rows} bytes of row statistics`);
    try {
      const stats = roundUp(block, 64);
      this.runOnHeap(this.softmaxLists(rows, vocab, scale, logits, targets, grad, stats));
      // views after the lists' allocation (it may grow the heap)
      const buffer = h.memory.buffer;
      lossFromStats(new Float32Array(buffer, stats, 2 * rows), new Float32Array(buffer, logits, rows * vocab), new Int32Array(buffer, targets, rows), vocab, new Float32Array(buffer, loss, rows));
    } finally {
      h.heap._free(block);
    }
  }

  /** The softmax cross-entropy's rows split across the threads (addresses in one memory; `grad` 0: none). */
  private softmaxLists(rows: number, vocab: number, scale: number, z: number, t: number, grad: number, stats: number): Int32Array[] {
    const threads = Math.min(this.threadsFor(rows * vocab), rows);
    const scaleBits = new Int32Array(new Float32Array([scale]).buffer)[0]!;
    return Array.from({ length: threads }, (_, i) => {
      const r0 = Math.floor((rows * i) / threads);
      const r1 = Math.floor((rows * (i + 1)) / threads);
      return Int32Array.of(OP_SOFTMAX_ROWS, z + 4 * r0 * vocab, t + 4 * r0, r1 - r0, vocab, grad ? grad + 4 * r0 * vocab : 0, stats + 8 * r0, scaleBits, 0);
    });
  }

  /**
   * A fused elementwise kernel split between the threads: the workers run one operation each (opcode and 8 words:
   * OP_CAUSAL_SOFTMAX, OP_SWIGLU) on their shares, copied into the shared memory, while the calling thread runs
   * `own` — its share, in place where its tensors are. `copyIn(heap, base)` writes the workers' inputs from byte
   * `base` on (at most `bytes` bytes, inputs and outputs) and returns the workers' operations; `copyOut(heap, base)`
   * reads their outputs back once every thread is done. Needs worker threads (`threads` > 1, not broken).
   */
  runShares(bytes: number, copyIn: (heap: Uint8Array, base: number) => Int32Array[], own: () => void, copyOut: (heap: Uint8Array, base: number) => void): void {
    this.checkUsable();
    if (this.threads < 2 || this.failure) throw new Error(`GemmPool.runShares: no worker threads${this.failure ? ` (${this.failure})` : ''}`);
    const base = this.operandBase();
    const listAddr = roundUp(base + bytes, 64);
    this.ensureBytes(listAddr + 4 * OP_WORDS * this.threads);
    const ops = copyIn(new Uint8Array(this.memory.buffer), base);
    if (ops.length !== this.threads - 1 || ops.some((op) => op.length !== OP_WORDS)) throw new RangeError('GemmPool.runShares: one operation per worker thread');
    this.run([new Int32Array(0), ...ops], listAddr, own);
    copyOut(new Uint8Array(this.memory.buffer), base);
  }

  /**
   * The tfjs heap this pool's threads work on in place (its memory is shared), or undefined: then operands are
   * copied into the pool's memory (`matmul`, `runShares`).
   */
  get heap(): EmscriptenHeap | undefined {
    return this.heapLists && !this.failure ? this.heapLists.heap : undefined;
  }

  /** Whether this pool's threads work in place on `heap` (an Emscripten module: a wasm backend's `wasm`). */
  worksOn(heap: unknown): boolean {
    return heap !== undefined && this.heap === heap;
  }

  /**
   * Run one operation list per thread on tfjs's heap (lists[0] on this thread; the addresses in them are heap byte
   * addresses), then `own` on this thread, and return when every thread is done. The lists are written into a block
   * of the heap kept for them. Needs `heap`.
   */
  runOnHeap(lists: Int32Array[], own?: () => void): void {
    this.checkUsable();
    const h = this.heapLists;
    if (!h) throw new Error('GemmPool.runOnHeap: the tfjs heap is not shared with this pool');
    if (lists.length > this.threads) throw new RangeError(`GemmPool.runOnHeap: ${lists.length} lists for ${this.threads} threads`);
    const bytes = lists.reduce((s, l) => s + 4 * l.length, 0);
    if (bytes > h.bytes) {
      if (h.allocated) h.heap._free(h.allocated);
      const size = roundUp(Math.max(2 * bytes, 4096) + 64, 4096);
      h.allocated = h.heap._malloc(size);
      if (!h.allocated) throw new RangeError(`GemmPool.runOnHeap: tfjs's heap could not allocate ${size} bytes of operation lists`);
      h.at = roundUp(h.allocated, 64);
      h.bytes = size - (h.at - h.allocated);
    }
    Atomics.store(this.control, ON_HEAP, 1);
    try {
      this.run(lists, h.at, own, h);
    } finally {
      Atomics.store(this.control, ON_HEAP, 0);
    }
  }

  /** Why the worker threads cannot be used any more (undefined while they can). */
  get broken(): string | undefined {
    return this.failure;
  }

  /** Stop the workers. The pool cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    Atomics.store(this.control, STOP, 1);
    Atomics.add(this.control, SEQ, 1);
    Atomics.notify(this.control, SEQ);
    for (const w of this.workers) void w.terminate();
    if (this.heapLists?.allocated) this.heapLists.heap._free(this.heapLists.allocated);
  }

  private checkUsable(): void {
    if (this.disposed) throw new Error(`GemmPool: used after dispose()${this.failure ? ` (${this.failure})` : ''}`);
  }

  private fail(reason: string): void {
    if (this.disposed || this.failure) return;
    this.failure = reason;
  }

  /** First byte after the per-thread packing scratch: where a call's operands go. */
  private operandBase(): number {
    return roundUp(HEAP_START + this.threads * 4 * scratchFloats(this.tile, this.blocks), 64);
  }

  /**
   * Run one operation list per thread (lists[0] on this thread), written at `listAddr` and on; returns when every
   * thread is done. The operands must already be in place.
   */
  private run(lists: Int32Array[], listAddr: number, own?: () => void, onHeap?: HeapLists): void {
    const parallel = lists.length > 1;
    if (parallel && this.failure) throw new Error(`GEMM worker threads failed: ${this.failure}`);
    const memory = onHeap?.memory ?? this.memory;
    const end = listAddr + lists.reduce((sum, l) => sum + 4 * l.length, 0);
    // a view of a shared memory stays valid as it grows, but does not reach past the length it was made with
    let words = this.sharedMemory && this.listMemory === memory ? this.listWords : undefined;
    if (!words || words.byteLength < end) {
      words = new Int32Array(memory.buffer);
      if (this.sharedMemory) {
        this.listWords = words;
        this.listMemory = memory;
      }
    }
    let at = listAddr;
    const starts = lists.map((list) => {
      words.set(list, at / 4);
      const start = at;
      at += 4 * list.length;
      return start;
    });
    if (parallel) {
      for (let t = 1; t < this.threads; t++) {
        Atomics.store(this.control, LISTS + 2 * t, starts[t] ?? 0);
        Atomics.store(this.control, LISTS + 2 * t + 1, t < lists.length ? lists[t]!.length / OP_WORDS : 0);
      }
      Atomics.store(this.control, DONE, 0);
      Atomics.store(this.control, FAILED, 0);
      Atomics.add(this.control, SEQ, 1);
      if (Atomics.load(this.control, PARKED) > 0) Atomics.notify(this.control, SEQ);
    }
    try {
      (onHeap?.exec ?? this.gemm.exec)(starts[0]!, lists[0]!.length / OP_WORDS);
      own?.();
    } finally {
      // Even when this thread's share trapped, the workers' shares finish before anything touches the memory.
      if (parallel) this.waitForWorkers();
    }
  }

  private waitForWorkers(): void {
    const expected = this.workers.length;
    for (let spins = 0; spins < SPIN_POLLS && Atomics.load(this.control, DONE) < expected; spins++);
    const start = Date.now();
    for (;;) {
      const done = Atomics.load(this.control, DONE);
      if (done >= expected) break;
      const waited = Date.now() - start;
      if (waited > WORKER_START_MS && Atomics.load(this.control, READY) < expected) {
        this.fail(`${Atomics.load(this.control, READY)} of ${expected} started within ${WORKER_START_MS / 1000} s`);
        throw new Error(`GEMM worker threads did not start (${this.failure})`);
      }
      if (waited > WORKER_TIMEOUT_MS) {
        this.fail(`${done} of ${expected} answered within ${WORKER_TIMEOUT_MS / 1000} s`);
        throw new Error(`GEMM worker threads stopped answering (${this.failure})`);
      }
      Atomics.wait(this.control, DONE, done, 1000);
    }
    if (Atomics.load(this.control, FAILED) !== 0) throw new Error('a GEMM worker thread failed (wasm trap); the product was not computed');
  }

  private ensureBytes(bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytes <= have) return;
    const pages = Math.ceil((bytes - have) / 65536);
    if (have / 65536 + pages > MAX_PAGES) throw new RangeError(`GEMM operands need ${(bytes / 2 ** 30).toFixed(2)} GiB, past the 4 GiB wasm memory`);
    this.memory.grow(pages);
  }
}
