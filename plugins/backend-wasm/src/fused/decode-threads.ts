/**
 * The decode step on several threads. A one-token step reads every weight once and does two flops per float read,
 * so its speed is how fast the weights stream from memory: one thread reads ~12–20 GB/s on the machines measured,
 * two ~25–35. Each step runs `runStep` (decode.ts) — the few-row products split by rows over the threads, the rest
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
 * Hand-off: the caller writes the product into the control words, bumps a sequence number and runs its own share;
 * workers poll the sequence number (a decode step hands off ~7 products per block, microseconds apart: waking a
 * parked thread would cost more than the product) and park in Atomics.wait after ~0.1–0.3 ms without work; the
 * caller polls the done count briefly, then waits on it.
 */
import type { TensorInfo } from '@tensorflow/tfjs-core';
import { MAX_PAGES } from '../gemm/kernels.js';
import { roundUp } from '../gemm/plan.js';
import type { GemmPlatform, GemmWorkerHandle } from '../gemm/platform.js';
import { wasmApi, type WasmMemory } from '../gemm/wasm-api.js';
import { heapIsShared } from '../shared-heap.js';
import { mapPlan, planTensors, runStep, scratchLayout, stepInPlace, type StepMachine, type StepOffload, type StepPlan } from './decode.js';
import { heapMemory, type FusedExports, type WasmHeapBackend } from './heap.js';
import { fusedModuleBytes } from './module.js';

/** Control words (int32 indices) at the start of the shared memory. */
const SEQ = 0;
const DONE = 1;
const STOP = 2;
const PARKED = 3;
const READY = 4;
const FAILED = 5;
/** The product: w, x, y, rows, k, n, bias, add, threads. */
const TASK = 8;
const CONTROL_BYTES = 128;
/** Data starts here. */
const DATA_START = 256;
/**
 * Polls of the sequence number before a worker parks (~0.1–0.3 ms: longer than the gaps between a step's products,
 * shorter than a busy machine can afford — a spinning thread that holds a core another process needs makes both slow).
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

const WORKER_BODY = `
const k = new WebAssembly.Instance(module, { env: { memory: heap ?? memory } }).exports;
const c = new Int32Array(memory.buffer, 0, ${CONTROL_BYTES / 4});
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
  const w = c[${TASK}], x = c[${TASK + 1}], y = c[${TASK + 2}], rows = c[${TASK + 3}], kk = c[${TASK + 4}];
  const n = c[${TASK + 5}], bias = c[${TASK + 6}], add = c[${TASK + 7}], threads = c[${TASK + 8}];
  const per = Math.ceil(rows / threads / 4) * 4;
  const lo = Math.min(rows, index * per), hi = Math.min(rows, lo + per);
  if (hi > lo) {
    try { k.gemv(w + 4 * lo * kk, x, y + 4 * lo, hi - lo, kk, n, bias === 0 ? 0 : bias + 4 * lo, add, rows); }
    catch { Atomics.store(c, ${FAILED}, 1); }
  }
  Atomics.add(c, ${DONE}, 1);
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

  /** Products split over the threads so far (for tests and benchmarks). */
  handoffs = 0;

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
      return stepInPlace(backend, plan, ids, logits, (k) => (w, x, y, rows, kk, n, bias, add) => this.gemv(k, w, x, y, rows, kk, n, bias, add));
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
        this.machine = { k, view: () => new Float32Array(memory.buffer), gemv: (w, x, y, rows, kk, n, bias, add) => this.gemv(k, w, x, y, rows, kk, n, bias, add) };
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

  /** y = x·wᵀ over rows split among the threads (the calling thread takes the first share, with `k`). */
  private gemv(k: FusedExports, w: number, x: number, y: number, rows: number, kk: number, n: number, bias: number, add: number): void {
    if (rows * kk * n < this.serialMacs) {
      k.gemv(w, x, y, rows, kk, n, bias, add, rows);
      return;
    }
    const c = this.control!;
    const threads = this.threads;
    this.handoffs++;
    c.set([w, x, y, rows, kk, n, bias, add, threads], TASK);
    Atomics.store(c, DONE, 0);
    Atomics.add(c, SEQ, 1);
    if (Atomics.load(c, PARKED) > 0) Atomics.notify(c, SEQ);
    const per = Math.ceil(rows / threads / 4) * 4;
    k.gemv(w, x, y, Math.min(rows, per), kk, n, bias, add, rows);
    const want = threads - 1;
    for (let spins = 0; spins < CALLER_SPINS && Atomics.load(c, DONE) < want; spins++);
    const deadline = Date.now() + HANDOFF_TIMEOUT_MS;
    for (let done = Atomics.load(c, DONE); done < want; done = Atomics.load(c, DONE)) {
      // a worker off its core (a busy machine) would make a spinning caller burn the core it needs
      Atomics.wait(c, DONE, done, 1);
      if (this.failure !== undefined || Date.now() > deadline) {
        this.failure ??= 'a decode worker did not finish its share';
        throw new Error(`decode threads: ${this.failure}`);
      }
    }
    if (Atomics.load(c, FAILED) !== 0) {
      this.failure = 'a decode worker trapped';
      throw new Error(`decode threads: ${this.failure}`);
    }
  }
}
