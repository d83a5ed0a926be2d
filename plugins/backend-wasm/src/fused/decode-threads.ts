/**
 * The decode step on several threads. A one-token step reads every weight once and does two flops per float read,
 * so its speed is how fast the weights stream from memory (one thread streams a big weight at ~25–35 GB/s here with
 * module.ts's one-row gemv). Each step runs `runStep` (decode.ts) — the few-row products on every thread, the rest
 * (norms, RoPE, attention over the cache) on the calling thread.
 *
 * - **On a shared tfjs heap** (../shared-heap.ts: the default under Node) the workers run the fused module on the heap
 *   itself, so the step runs in place: weights, caches and logits where tfjs keeps them, no copy.
 * - **Otherwise** the first step of a generation copies the weights and caches into this object's shared memory (a
 *   weight copied once serves every step), and each step writes the new keys/values back into the caller's cache
 *   tensors and copies the logits out. The copy is the session: it is kept while the same weights and caches come
 *   back at the next position, and made again otherwise (the weights' tensors, the caches or the position changed).
 *   The memory is reused by the next session and never shrinks (a WebAssembly memory cannot): after generating with
 *   a model, the process holds about one more copy of its weights.
 *
 * Hand-off: a list of independent products (per block q, k, v; o; gate, up; down — then the head) cut into chunks of
 * rows. The caller writes the list into the control words, opens the chunks to claims under the hand-off's tag, bumps
 * a sequence number and claims chunks itself; workers poll the sequence number (hand-offs come microseconds apart:
 * waking a parked thread would cost more than the product) and claim chunks until none are left, and park in
 * Atomics.wait after ~0.1–0.3 ms without work. The caller moves on once every chunk is done. A static share per
 * thread made the caller wait out a worker the system had taken off its core: ~1.5 ms at a time, and a 15M model's
 * generation fell from ~550 to ~100 tokens/s beside one busy process (bench/README.md, 2026-12-06 third session);
 * claimed chunks hold it to ~220–370.
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { MAX_PAGES } from '../gemm/kernels.js';
import { roundUp } from '../gemm/plan.js';
import type { GemmPlatform, GemmWorkerHandle } from '../gemm/platform.js';
import { wasmApi, type WasmMemory } from '../gemm/wasm-api.js';
import { heapIsShared } from '../shared-heap.js';
import { mapPlan, planTensors, runStep, scratchLayout, serialGemv, stepInPlace, type Product, type StepMachine, type StepOffload, type StepPlan } from './decode.js';
import { heapMemory, type FusedExports, type WasmHeapBackend } from './heap.js';
import { fusedModuleBytes } from './module.js';

/** Control words (int32 indices) at the start of the shared memory. */
const SEQ = 0;
/** Chunks finished in the current hand-off. */
const DONE = 1;
const STOP = 2;
const PARKED = 3;
const READY = 4;
const FAILED = 5;
/**
 * The next chunk to claim: the hand-off's tag (its sequence number's low 15 bits) << 16 | the chunk's index; CLOSED
 * (no tag matches, no index is in range) while the calling thread writes a hand-off's words.
 */
const NEXT = 6;
const CLOSED = -1;
/** The hand-off: the number of products, the number of chunks, then each product's words (PRODUCT_WORDS). */
const TASK = 8;
/** w, x, y, rows, k, n, bias, add, rows per chunk, the product's first chunk. */
const PRODUCT_WORDS = 10;
/** Products handed off at once, at most (a block's q, k, v). */
const MAX_PRODUCTS = 4;
const CONTROL_BYTES = 256;
/** Data starts here. */
const DATA_START = 256;
/**
 * Multiply-adds per chunk of rows (~128 K: 512 KB of weights, ~20 µs on one thread). Threads claim chunks until none
 * are left, so a thread the system has taken off its core for a while (this machine's two cores also run V8's garbage
 * collector and compiler threads; a 15M model's step had ~40 of 5000 hand-offs start ≥ 50 µs late, ~1.5 ms on
 * average) costs at most the chunk it holds, not its fixed share of the product.
 */
const CHUNK_MACS = 1 << 17;
/** Chunks per hand-off, at most (the index has 16 bits of NEXT). */
const MAX_CHUNKS = 1 << 15;
/**
 * Polls of the sequence number before a worker parks (~0.1–0.3 ms: longer than the gaps between a step's products,
 * shorter than a busy machine can afford — a spinning thread that holds a core another process needs makes both slow).
 * A parked worker delays nothing: the calling thread claims the chunks it has not.
 */
const SPINS = 1 << 18;
/** Polls of the done count before the calling thread waits in Atomics.wait instead. */
const CALLER_SPINS = 1 << 18;
/** Weights smaller than this stay on one thread in place (they fit the caches; a copy would not pay). */
export const THREADED_DECODE_BYTES = 8 << 20;
/** Products smaller than this (multiply-adds) run on the calling thread alone. */
const SERIAL_MACS = 1 << 15;
/** Workers not up this long after they were started never will be. */
const WORKER_START_MS = 30_000;
/** A hand-off not finished in this long means a worker is gone. */
const HANDOFF_TIMEOUT_MS = 60_000;

/**
 * Run chunk `i` of the hand-off in the control words `c` (its words from index `task`, `words` per product) with the
 * fused exports `k`. Self-contained: the workers run its source (one definition of what a chunk is).
 */
function runChunk(c: Int32Array, k: FusedExports, i: number, task: number, words: number): void {
  const count = c[task]!;
  let at = task + 2;
  for (let p = 1; p < count && i >= c[at + words + 9]!; p++) at += words;
  const rows = c[at + 3]!;
  const kk = c[at + 4]!;
  const chunkRows = c[at + 8]!;
  const lo = (i - c[at + 9]!) * chunkRows;
  const hi = Math.min(rows, lo + chunkRows);
  const bias = c[at + 6]!;
  k.gemv(c[at]! + 4 * lo * kk, c[at + 1]!, c[at + 2]! + 4 * lo, hi - lo, kk, c[at + 5]!, bias === 0 ? 0 : bias + 4 * lo, c[at + 7]!, rows);
}

const WORKER_BODY = `
const k = new WebAssembly.Instance(module, { env: { memory: heap ?? memory } }).exports;
const c = new Int32Array(memory.buffer, 0, ${CONTROL_BYTES / 4});
const runChunk = ${runChunk.toString()};
Atomics.add(c, ${READY}, 1);
let seen = 0;
for (;;) {
  let s = Atomics.load(c, ${SEQ});
  let spins = 0;
  while (s === seen) {
    if (++spins > ${SPINS}) {
      Atomics.add(c, ${PARKED}, 1);
      Atomics.wait(c, ${SEQ}, seen);
      Atomics.sub(c, ${PARKED}, 1);
      spins = 0;
    }
    s = Atomics.load(c, ${SEQ});
  }
  seen = s;
  if (Atomics.load(c, ${STOP}) !== 0) break;
  // claim chunks of this hand-off (its tag in NEXT) until none are left. A worker that comes late finds another
  // tag and claims nothing. A claim holds the hand-off open (the calling thread moves on only when every chunk is
  // done), so the words read after it are the claimed hand-off's, whichever that is.
  const tag = (s & 0x7fff) << 16;
  for (;;) {
    const next = Atomics.load(c, ${NEXT});
    if ((next & ~0xffff) !== tag || (next & 0xffff) >= c[${TASK + 1}]) break;
    if (Atomics.compareExchange(c, ${NEXT}, next, next + 1) !== next) continue;
    if ((next & 0xffff) >= c[${TASK + 1}]) break;
    try { runChunk(c, k, next & 0xffff, ${TASK}, ${PRODUCT_WORDS}); }
    catch { Atomics.store(c, ${FAILED}, 1); }
    Atomics.add(c, ${DONE}, 1);
  }
  Atomics.notify(c, ${DONE});
}
`;

interface Session {
  /** The dataIds of the plan's tensors (planTensors order) this copy was made from. */
  ids: object[];
  n: number;
  capacity: number;
  /** The next position this copy expects. */
  pos: number;
  /** Where each tensor's copy starts in the shared memory (by dataId). */
  where: Map<object, number>;
  scratch: number;
  logits: number;
}


export class DecodeThreads implements StepOffload {
  private memory: WasmMemory | undefined;
  private control: Int32Array | undefined;
  private readonly workers: GemmWorkerHandle[] = [];
  private failure: string | undefined;
  private disposed = false;
  private session: Session | undefined;
  private machine: StepMachine | undefined;
  /** The shared tfjs heap the workers run on (set when they start on one), else undefined: they work on copies. */
  private heap: WasmMemory | undefined;
  private startedAt = 0;

  constructor(
    private readonly platform: GemmPlatform,
    readonly threads: number,
    private readonly minBytes = THREADED_DECODE_BYTES,
    /** Products below this many multiply-adds stay on the calling thread (tests pass 0 to split every one). */
    private readonly serialMacs = SERIAL_MACS,
    /** Work in place on a shared tfjs heap when there is one (default); false copies as on an unshared heap. */
    private readonly inPlace = true,
  ) {}

  /** Whether the steps run in place on the tfjs heap (known once the threads have started). */
  get onHeap(): boolean {
    return this.heap !== undefined;
  }

  /** Hand-offs so far (lists of products split over the threads), for tests and benchmarks. */
  handoffs = 0;
  /** Chunks of rows handed off so far, and how many of them the calling thread ran itself. */
  chunks = 0;
  chunksHere = 0;

  run(plan: StepPlan<TensorInfo>, ids: Int32Array, backend: WasmHeapBackend, logits: TensorInfo): boolean {
    if (this.threads < 2 || this.disposed || this.failure !== undefined || !this.platform.sharedMemory()) return false;
    const tensors = planTensors(plan);
    const caches = new Set(plan.blocks.flatMap((b) => (b.attention ? [b.attention.kCache, b.attention.vCache] : [])));
    const weights = new Map(tensors.filter((t) => !caches.has(t)).map((t) => [t.dataId, 4 * t.shape.reduce((p, d) => p * d, 1)]));
    if ([...weights.values()].reduce((a, b) => a + b, 0) < this.minBytes) return false;
    if (!this.start(backend)) return false;
    if (this.heap) return this.heap === heapMemory(backend) && this.runOnHeap(plan, ids, backend, logits);
    const machine = this.machine!;
    const heapView = (t: TensorInfo): Float32Array => backend.typedArrayFromHeap(t);
    let s = this.session;
    const same = s !== undefined && s.pos === plan.pos && s.n === plan.n && s.capacity === plan.capacity && s.ids.length === tensors.length && s.ids.every((id, i) => id === tensors[i]!.dataId);
    if (!same) {
      try {
        s = this.session = this.copyIn(plan, tensors, heapView);
      } catch {
        // the copy does not fit the shared memory (4 GiB at most) or memory is short: this generation stays in place
        this.session = undefined;
        return false;
      }
    }
    // this step's plan (its position, sizes and settings) over the session's copies
    const step = mapPlan(plan, (t) => s!.where.get(t.dataId)!);
    try {
      runStep(machine, step, ids, s!.scratch, s!.logits);
    } catch (err) {
      // a worker died or trapped: nothing of the caller's has been written yet, so the step runs again in place
      this.failure ??= err instanceof Error ? err.message : String(err);
      this.session = undefined;
      return false;
    }
    const shared = machine.view();
    // the contract: the caller's caches hold position pos too (so a later copy, or another backend, can go on)
    const { n, capacity, headDim: hd, pos } = plan;
    plan.blocks.forEach((b, l) => {
      const A = b.attention;
      const mine = step.blocks[l]!.attention;
      if (!A || !mine) return;
      for (const [tensor, from] of [[A.kCache, mine.kCache], [A.vCache, mine.vCache]] as const) {
        const out = heapView(tensor);
        for (let r = 0; r < n * b.kvHeads; r++) {
          const at = (r * capacity + pos) * hd;
          out.set(shared.subarray((from >>> 2) + at, (from >>> 2) + at + hd), at);
        }
      }
    });
    heapView(logits).set(shared.subarray(s!.logits >>> 2, (s!.logits >>> 2) + plan.n * plan.vocab));
    s!.pos = plan.pos + 1;
    return true;
  }

  /** The step in place on the shared heap (decode.ts stepInPlace), its products split over the threads. */
  private runOnHeap(plan: StepPlan<TensorInfo>, ids: Int32Array, backend: WasmHeapBackend, logits: TensorInfo): boolean {
    try {
      return stepInPlace(backend, plan, ids, logits, (k) => (products) => this.gemv(k, products));
    } catch (err) {
      // a worker died or trapped: the step runs again in place on one thread (it rewrites the same cache position
      // and the whole logits, so what this one wrote is overwritten)
      this.failure ??= err instanceof Error ? err.message : String(err);
      return false;
    }
  }

  /** Stop the workers (the memory goes with the last reference to this object). */
  dispose(): void {
    this.disposed = true;
    if (this.control) {
      Atomics.store(this.control, STOP, 1);
      Atomics.add(this.control, SEQ, 1);
      Atomics.notify(this.control, SEQ);
    }
    for (const w of this.workers.splice(0)) w.terminate();
    this.session = undefined;
  }

  /**
   * Start the memory and workers on first use — on `backend`'s heap when that is shared memory (then this object's
   * memory holds only the control words). False while they cannot run: failed, or not started yet. The caller does
   * not wait for them (a worker takes ~50–70 ms to start here, ~15 one-thread steps of a 15M model): the steps before
   * they are up run in place on one thread, with the same numbers.
   */
  private start(backend: WasmHeapBackend): boolean {
    if (!this.memory) {
      this.startedAt = Date.now();
      const module = new wasmApi.Module(fusedModuleBytes(true));
      const heap = heapMemory(backend);
      this.heap = this.inPlace && heapIsShared(heap) ? heap : undefined;
      this.memory = new wasmApi.Memory({ initial: 1, maximum: this.heap ? 1 : MAX_PAGES, shared: true });
      if (!this.heap) {
        const k = new wasmApi.Instance(module, { env: { memory: this.memory } }).exports as unknown as FusedExports;
        const memory = this.memory;
        this.machine = { k, view: () => new Float32Array(memory.buffer), gemv: (products) => this.gemv(k, products) };
      }
      this.control = new Int32Array(this.memory.buffer, 0, CONTROL_BYTES / 4);
      for (let index = 1; index < this.threads; index++) {
        this.workers.push(
          this.platform.startWorker(WORKER_BODY, { module, memory: this.memory, index, heap: this.heap ?? null }, {
            error: (message) => void (this.failure ??= `decode worker ${index}: ${message}`),
            exit: (code) => void (this.failure ??= `decode worker ${index} exited (code ${code})`),
          }),
        );
      }
    }
    if (Atomics.load(this.control!, READY) >= this.workers.length) return true;
    if (Date.now() - this.startedAt > WORKER_START_MS) this.failure ??= `decode workers did not start within ${WORKER_START_MS / 1000} s`;
    return false;
  }

  /** Resolves once the workers are up on `backend`'s heap (or copies); rejects if they failed to start. */
  async ready(backend: WasmHeapBackend): Promise<void> {
    while (!this.start(backend)) {
      if (this.failure !== undefined) throw new Error(`decode threads: ${this.failure}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Lay the plan's tensors out in the shared memory (each distinct tensor once) and copy them in. */
  private copyIn(plan: StepPlan<TensorInfo>, tensors: TensorInfo[], heapView: (t: TensorInfo) => Float32Array): Session {
    this.session = undefined;
    const where = new Map<object, number>();
    let end = DATA_START;
    for (const t of tensors) {
      if (where.has(t.dataId)) continue;
      where.set(t.dataId, end);
      end = roundUp(end + 4 * t.shape.reduce((p, d) => p * d, 1), 64);
    }
    const scratch = end;
    end = roundUp(scratch + scratchLayout({ ...plan, pos: plan.capacity - 1 }).bytes, 64);
    const logits = end;
    end += 4 * plan.n * plan.vocab;
    const have = this.memory!.buffer.byteLength;
    if (end > have) {
      if (end > MAX_PAGES * 65536) throw new Error(`the decode threads' memory cannot hold ${(end / 2 ** 30).toFixed(2)} GiB (a wasm32 memory holds 4 GiB)`);
      this.memory!.grow(Math.ceil((end - have) / 65536));
    }
    const shared = this.machine!.view();
    const copied = new Set<object>();
    for (const t of tensors) {
      if (copied.has(t.dataId)) continue;
      copied.add(t.dataId);
      shared.set(heapView(t), where.get(t.dataId)! >>> 2);
    }
    return { ids: tensors.map((t) => t.dataId), n: plan.n, capacity: plan.capacity, pos: plan.pos, where, scratch, logits };
  }

  /**
   * The products, their rows in chunks that the threads claim until none are left (the calling thread too, with `k`),
   * in one hand-off; all on the calling thread when together they are small. Each row is one gemv call's, whoever
   * runs it: the same bits as on one thread.
   */
  private gemv(k: FusedExports, products: readonly Product[]): void {
    const macs = products.reduce((sum, [, , , rows, kk, n]) => sum + rows * kk * n, 0);
    if (macs < this.serialMacs || products.length > MAX_PRODUCTS) {
      serialGemv(k)(products);
      return;
    }
    const c = this.control!;
    // closed while the words are written: no worker claims a chunk of a half-written hand-off
    Atomics.store(c, NEXT, CLOSED);
    let chunks = 0;
    products.forEach(([w, x, y, rows, kk, n, bias, add], p) => {
      // CHUNK_MACS a chunk, or less so that every thread has one; at most MAX_CHUNKS / MAX_PRODUCTS a product (a
      // 150 K vocabulary's head takes bigger chunks)
      const rowsPerChunk = Math.min(Math.ceil(CHUNK_MACS / (kk * n)), Math.ceil(rows / this.threads));
      const chunkRows = roundUp(Math.max(1, rowsPerChunk, Math.ceil(rows / (MAX_CHUNKS / MAX_PRODUCTS))), 4);
      c.set([w, x, y, rows, kk, n, bias, add, chunkRows, chunks], TASK + 2 + p * PRODUCT_WORDS);
      chunks += Math.ceil(rows / chunkRows);
    });
    this.handoffs++;
    this.chunks += chunks;
    const seq = (Atomics.load(c, SEQ) + 1) | 0;
    const tag = (seq & 0x7fff) << 16;
    c[TASK] = products.length;
    c[TASK + 1] = chunks;
    Atomics.store(c, DONE, 0);
    Atomics.store(c, NEXT, tag);
    Atomics.store(c, SEQ, seq);
    if (Atomics.load(c, PARKED) > 0) Atomics.notify(c, SEQ);
    for (let i = Atomics.add(c, NEXT, 1) & 0xffff; i < chunks; i = Atomics.add(c, NEXT, 1) & 0xffff) {
      runChunk(c, k, i, TASK, PRODUCT_WORDS);
      Atomics.add(c, DONE, 1);
      this.chunksHere++;
    }
    for (let spins = 0; spins < CALLER_SPINS && Atomics.load(c, DONE) < chunks; spins++);
    const deadline = Date.now() + HANDOFF_TIMEOUT_MS;
    for (let done = Atomics.load(c, DONE); done < chunks; done = Atomics.load(c, DONE)) {
      // a worker off its core (a busy machine) would make a spinning caller burn the core it needs
      Atomics.wait(c, DONE, done, 1);
      if (this.failure !== undefined || Date.now() > deadline) {
        this.failure ??= 'a decode worker did not finish its chunk';
        throw new Error(`decode threads: ${this.failure}`);
      }
    }
    if (Atomics.load(c, FAILED) !== 0) {
      this.failure = 'a decode worker trapped';
      throw new Error(`decode threads: ${this.failure}`);
    }
  }
}
