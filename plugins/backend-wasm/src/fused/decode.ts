/**
 * `FusedKernel.decodeStep` for the wasm engine: one kv-cache decode step of the whole model as a loop of calls into
 * the fused module (module.ts). tfjs takes ~20 dispatches per block for one new token (15–20 µs each: at 0.26M
 * parameters that is the whole step) and packs each weight before a one-row product (a copy of the weight per
 * step); here `gemv` reads each weight row once for every sequence, and the new keys/values go into the caller's
 * cache tensors at their position.
 *
 * Per block, with x [n, dim] the residual stream (the model's block-grad forward for t = 1):
 *   h = rmsNorm(x)·w₁;  q, k, v = h Wqᵀ (+ b_q), …;  q, k = rope(q, pos), rope(k, pos);  cache[pos] = k, v
 *   P = softmax(q·K[0..pos]ᵀ / √hd);  x += (P·V[0..pos]) Woᵀ
 *   h₂ = rmsNorm(x)·w₂;  x += swiglu(h₂ Wgᵀ, h₂ Wuᵀ) Wdᵀ
 * then logits = rmsNorm(x)·w_f Whᵀ.
 *
 * The step runs on one of two machines (`runStep` is the same program on both):
 * - **in place on tfjs's heap, one thread** — small models, and wherever memory cannot be shared;
 * - **on the decode threads** (decode-threads.ts) — a model whose weights are too big for the caches: a decode step
 *   reads every weight once, and two threads stream more of them than one. In place on a shared tfjs heap (the
 *   default under Node); on an unshared one the weights are copied once per generation into the threads' memory.
 */
import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { FusedKernel } from '@topiary/kernel';
import type { EmscriptenHeap } from '../gemm/wasm-api.js';
import { exportsFor, f32Bits, type FusedExports, type WasmHeapBackend } from './heap.js';

interface DecodeAttrs {
  ids: number[];
  pos: number;
  headDim: number;
  eps: number;
  activeDim: number;
  bias: boolean;
  heads: number[];
  kvHeads: number[];
  hidden: number[];
  headKvMap: number[];
}

const NAME = FusedKernel.decodeStep;

function fail(message: string): never {
  throw new Error(`${NAME}: ${message}`);
}

export interface AttentionInputs<T> {
  inputNorm: T;
  q: T;
  k: T;
  v: T;
  o: T;
  qBias?: T;
  kBias?: T;
  vBias?: T;
  kCache: T;
  vCache: T;
}

export interface FfnInputs<T> {
  postNorm: T;
  gate: T;
  up: T;
  down: T;
}

/** One block of a checked step: its sizes, query-head runs per kv head, and its tensors (or their addresses). */
export interface StepBlock<T> {
  heads: number;
  kvHeads: number;
  hidden: number;
  /** Runs of consecutive query heads reading one kv head: [first head, count, kv head]. */
  runs: [number, number, number][];
  attention?: AttentionInputs<T>;
  ffn?: FfnInputs<T>;
}

/** A decode step's inputs, checked: sizes, and the tensors (`T = TensorInfo`) or their byte addresses (`T = number`). */
export interface StepPlan<T> {
  n: number;
  vocab: number;
  dim: number;
  headDim: number;
  capacity: number;
  pos: number;
  eps: number;
  activeDim: number;
  embedding: T;
  head: T;
  finalNorm: T;
  cos: T;
  sin: T;
  blocks: StepBlock<T>[];
}

/** Scratch floats a step needs: x, h [n, dim]; q, attended [n, maxQ]; k, v [n, maxKv]; gate, up [n, maxHidden]; scores [n·heads, pos+1]; r [n]. */
function scratchParts(p: StepPlan<unknown>): number[] {
  const maxQ = Math.max(0, ...p.blocks.map((b) => b.heads * p.headDim));
  const maxKv = Math.max(0, ...p.blocks.map((b) => b.kvHeads * p.headDim));
  const maxHidden = Math.max(0, ...p.blocks.map((b) => b.hidden));
  const { n, dim } = p;
  return [n * dim, n * dim, n * maxQ, n * maxQ, n * maxKv, n * maxKv, n * maxHidden, n * maxHidden, n * (maxQ / p.headDim) * (p.pos + 1), n];
}

/** Byte size of the scratch, and where each part starts relative to a 16-byte aligned base. */
export function scratchLayout(p: StepPlan<unknown>): { bytes: number; offsets: number[] } {
  const offsets: number[] = [];
  let floats = 0;
  for (const count of scratchParts(p)) {
    offsets.push(4 * floats);
    floats += Math.ceil(count / 4) * 4; // 16-byte aligned parts
  }
  return { bytes: 4 * floats, offsets };
}

function headRuns(map: readonly number[]): [number, number, number][] {
  const runs: [number, number, number][] = [];
  map.forEach((g, h) => {
    const last = runs.at(-1);
    if (last && last[2] === g && last[0] + last[1] === h) last[1]++;
    else runs.push([h, 1, g]);
  });
  return runs;
}

/** Check the kernel's inputs and attributes against each other (nothing is written before this passes). */
function checkInputs(inputs: Record<string, unknown>, attrs: unknown): { plan: StepPlan<TensorInfo>; ids: Int32Array } {
  const a = attrs as DecodeAttrs;
  const { pos, headDim: hd, eps, activeDim } = a;
  const layers = a.heads.length;
  if (a.kvHeads.length !== layers || a.hidden.length !== layers) fail('heads, kvHeads and hidden must have one entry per block');
  const input = (name: string, shape: number[]): TensorInfo => {
    const t = inputs[name] as TensorInfo | undefined;
    if (!t) fail(`missing input "${name}"`);
    if (t.dtype !== 'float32' || t.shape.join() !== shape.join()) fail(`"${name}" is ${t.dtype} [${t.shape}], expected float32 [${shape}]`);
    return t;
  };
  if (!Array.isArray(a.ids) || a.ids.length === 0 || !a.ids.every((id) => Number.isInteger(id))) fail('attrs.ids must list the new token (an integer) of each sequence');
  const ids = Int32Array.from(a.ids);
  const n = ids.length;
  const emb = inputs['embedding'] as TensorInfo | undefined;
  if (!emb || emb.shape.length !== 2) fail('missing input "embedding" [vocab, dim]');
  const [vocab, dim] = emb.shape as [number, number];
  const cosT = inputs['cos'] as TensorInfo | undefined;
  if (!cosT || cosT.shape.length !== 2 || cosT.shape[1] !== hd) fail(`cos must be [capacity, ${hd}]`);
  const capacity = cosT.shape[0]!;
  if (!(Number.isInteger(pos) && pos >= 0 && pos < capacity)) fail(`position ${pos} is outside the cache's ${capacity} positions`);
  if (hd % 2 !== 0 || !(activeDim > 0)) fail(`headDim ${hd} must be even and activeDim ${activeDim} positive`);
  let mapAt = 0;
  const blocks = a.heads.map((heads, l): StepBlock<TensorInfo> => {
    const kvHeads = a.kvHeads[l]!;
    const hidden = a.hidden[l]!;
    const map = a.headKvMap.slice(mapAt, mapAt + heads);
    mapAt += heads;
    if (map.length !== heads || map.some((g) => !(g >= 0 && g < kvHeads))) fail(`block ${l}: headKvMap does not map ${heads} heads onto ${kvHeads} kv heads`);
    const p = (name: string, shape: number[]): TensorInfo => input(`${l}.${name}`, shape);
    const attention =
      heads > 0
        ? {
            inputNorm: p('inputNorm', [dim]),
            q: p('q', [heads * hd, dim]),
            k: p('k', [kvHeads * hd, dim]),
            v: p('v', [kvHeads * hd, dim]),
            o: p('o', [dim, heads * hd]),
            ...(a.bias ? { qBias: p('qBias', [heads * hd]), kBias: p('kBias', [kvHeads * hd]), vBias: p('vBias', [kvHeads * hd]) } : {}),
            kCache: p('kCache', [n, kvHeads, capacity, hd]),
            vCache: p('vCache', [n, kvHeads, capacity, hd]),
          }
        : undefined;
    const ffn = hidden > 0 ? { postNorm: p('postNorm', [dim]), gate: p('gate', [hidden, dim]), up: p('up', [hidden, dim]), down: p('down', [dim, hidden]) } : undefined;
    return { heads, kvHeads, hidden, runs: headRuns(map), ...(attention ? { attention } : {}), ...(ffn ? { ffn } : {}) };
  });
  if (mapAt !== a.headKvMap.length) fail(`headKvMap has ${a.headKvMap.length} entries, the blocks have ${mapAt} heads`);
  const plan: StepPlan<TensorInfo> = {
    n,
    vocab,
    dim,
    headDim: hd,
    capacity,
    pos,
    eps,
    activeDim,
    embedding: input('embedding', [vocab, dim]),
    head: input('head', [vocab, dim]),
    finalNorm: input('finalNorm', [dim]),
    cos: input('cos', [capacity, hd]),
    sin: input('sin', [capacity, hd]),
    blocks,
  };
  return { plan, ids };
}

/** Every tensor of a plan, in one fixed order (for copying them, or comparing two plans' tensors). */
export function planTensors<T>(p: StepPlan<T>): T[] {
  const out: T[] = [p.embedding, p.head, p.finalNorm, p.cos, p.sin];
  for (const b of p.blocks) {
    if (b.attention) {
      const A = b.attention;
      out.push(A.inputNorm, A.q, A.k, A.v, A.o, ...(A.qBias ? [A.qBias, A.kBias!, A.vBias!] : []), A.kCache, A.vCache);
    }
    if (b.ffn) out.push(b.ffn.postNorm, b.ffn.gate, b.ffn.up, b.ffn.down);
  }
  return out;
}

/** The same plan with every tensor replaced by `f(tensor)` (its address in the memory the step runs on). */
export function mapPlan<T, U>(p: StepPlan<T>, f: (t: T) => U): StepPlan<U> {
  return {
    ...p,
    embedding: f(p.embedding),
    head: f(p.head),
    finalNorm: f(p.finalNorm),
    cos: f(p.cos),
    sin: f(p.sin),
    blocks: p.blocks.map((b): StepBlock<U> => {
      const A = b.attention;
      const F = b.ffn;
      return {
        heads: b.heads,
        kvHeads: b.kvHeads,
        hidden: b.hidden,
        runs: b.runs,
        ...(A
          ? {
              attention: {
                inputNorm: f(A.inputNorm),
                q: f(A.q),
                k: f(A.k),
                v: f(A.v),
                o: f(A.o),
                ...(A.qBias ? { qBias: f(A.qBias), kBias: f(A.kBias!), vBias: f(A.vBias!) } : {}),
                kCache: f(A.kCache),
                vCache: f(A.vCache),
              },
            }
          : {}),
        ...(F ? { ffn: { postNorm: f(F.postNorm), gate: f(F.gate), up: f(F.up), down: f(F.down) } } : {}),
      };
    }),
  };
}

/** One few-row product y = x·wᵀ (+ bias) (+ y when add ≠ 0): w [rows, k], x [n, k], y [n, rows], byte addresses. */
export type Product = readonly [w: number, x: number, y: number, rows: number, k: number, n: number, bias: number, add: number];

/** What runs a step: the fused module on some memory, and its row-parallel (or plain) few-row products. */
export interface StepMachine {
  readonly k: FusedExports;
  /** A float view of the whole memory (taken after every allocation). */
  view(): Float32Array;
  /**
   * The products (independent of each other: q, k and v from one normed x; gate and up), on however many threads the
   * machine has — one hand-off for the list.
   */
  gemv(products: readonly Product[]): void;
}

/** The products one after another on the calling thread. */
export const serialGemv = (k: FusedExports) => (products: readonly Product[]): void => {
  for (const [w, x, y, rows, kk, n, bias, add] of products) k.gemv(w, x, y, rows, kk, n, bias, add, rows);
};

/**
 * The step itself: `plan` holds byte addresses in the machine's memory, `scratch` a region of scratchLayout(plan)
 * bytes there (16-byte aligned), `logits` where the [n, vocab] output goes. Writes position `pos` of every cache.
 */
export function runStep(m: StepMachine, plan: StepPlan<number>, ids: Int32Array, scratch: number, logits: number): void {
  const { n, vocab, dim, headDim: hd, capacity, pos } = plan;
  const k = m.k;
  const [x, h, q, att, kNew, vNew, gate, up, scores, r] = scratchLayout(plan).offsets.map((o) => scratch + o) as [number, number, number, number, number, number, number, number, number, number];
  const f32 = m.view();
  for (let s = 0; s < n; s++) {
    const id = ids[s]!;
    if (!(id >= 0 && id < vocab)) fail(`token id ${id} is outside the vocabulary (${vocab})`);
    f32.copyWithin((x >>> 2) + s * dim, (plan.embedding >>> 2) + id * dim, (plan.embedding >>> 2) + (id + 1) * dim);
  }
  const len = pos + 1;
  const epsBits = f32Bits(plan.eps);
  const invActive = f32Bits(1 / plan.activeDim);
  const scale = f32Bits(1 / Math.sqrt(hd));
  const cosRow = plan.cos + 4 * pos * hd;
  const sinRow = plan.sin + 4 * pos * hd;
  for (const { heads, kvHeads, hidden, runs, attention: A, ffn: F } of plan.blocks) {
    if (A) {
      const qRows = heads * hd;
      const kvRows = kvHeads * hd;
      k.rmsNorm(x, A.inputNorm, h, r, n, dim, epsBits, invActive);
      m.gemv([
        [A.q, h, q, qRows, dim, n, A.qBias ?? 0, 0],
        [A.k, h, kNew, kvRows, dim, n, A.kBias ?? 0, 0],
        [A.v, h, vNew, kvRows, dim, n, A.vBias ?? 0, 0],
      ]);
      // with one position, [n, heads·hd] is already the [n, heads, 1, hd] layout: rotate in place
      k.ropeHeads(q, q, n, 1, heads, hd, cosRow, sinRow, 0);
      k.ropeHeads(kNew, kNew, n, 1, kvHeads, hd, cosRow, sinRow, 0);
      for (let s = 0; s < n; s++) {
        for (let g = 0; g < kvHeads; g++) {
          const from = (s * kvHeads + g) * hd;
          const to = ((s * kvHeads + g) * capacity + pos) * hd;
          f32.copyWithin((A.kCache >>> 2) + to, (kNew >>> 2) + from, (kNew >>> 2) + from + hd);
          f32.copyWithin((A.vCache >>> 2) + to, (vNew >>> 2) + from, (vNew >>> 2) + from + hd);
        }
      }
      // scores of every query head against positions 0..pos of its kv head (heads sharing one: one pass over it)
      for (let s = 0; s < n; s++) {
        for (const [first, count, g] of runs) {
          const keys = A.kCache + 4 * (s * kvHeads + g) * capacity * hd;
          k.gemv(keys, q + 4 * (s * heads + first) * hd, scores + 4 * (s * heads + first) * len, len, hd, count, 0, 0, len);
        }
      }
      k.causalSoftmax(scores, scores, n * heads, 1, len, 1, scale, pos);
      for (let s = 0; s < n; s++) {
        for (const [first, count, g] of runs) {
          const values = A.vCache + 4 * (s * kvHeads + g) * capacity * hd;
          k.weightedRows(scores + 4 * (s * heads + first) * len, values, att + 4 * (s * heads + first) * hd, len, hd, count);
        }
      }
      m.gemv([[A.o, att, x, dim, qRows, n, 0, 1]]);
    }
    if (F) {
      k.rmsNorm(x, F.postNorm, h, r, n, dim, epsBits, invActive);
      m.gemv([
        [F.gate, h, gate, hidden, dim, n, 0, 0],
        [F.up, h, up, hidden, dim, n, 0, 0],
      ]);
      k.swiglu(gate, up, gate, n * hidden);
      m.gemv([[F.down, gate, x, dim, hidden, n, 0, 1]]);
    }
  }
  k.rmsNorm(x, plan.finalNorm, h, r, n, dim, epsBits, invActive);
  m.gemv([[plan.head, h, logits, vocab, dim, n, 0, 0]]);
}

/** Runs a checked step somewhere else than on tfjs's heap (the decode threads), or declines (returns false). */
export interface StepOffload {
  run(plan: StepPlan<TensorInfo>, ids: Int32Array, backend: WasmHeapBackend, logits: TensorInfo): boolean;
}

/**
 * One step in place on tfjs's heap: its scratch malloc'ed there (false, nothing run, when that fails), the caller's
 * caches and `logits` written where they are. `gemv` runs the few-row products (default: the calling thread).
 */
export function stepInPlace(
  b: WasmHeapBackend,
  plan: StepPlan<TensorInfo>,
  ids: Int32Array,
  logits: TensorInfo,
  gemv: (k: FusedExports) => StepMachine['gemv'] = serialGemv,
): boolean {
  const heap = b.wasm as EmscriptenHeap;
  const { bytes } = scratchLayout(plan);
  // unsigned: tfjs's heap goes up to 4 GiB, and _malloc's result is a signed int32
  const block = heap._malloc(bytes + 16) >>> 0;
  if (!block) return false;
  try {
    // addresses after every allocation (an allocation may grow the heap; offsets stay valid, views would not)
    const at = (t: TensorInfo): number => b.typedArrayFromHeap(t).byteOffset;
    const k = exportsFor(b);
    const machine: StepMachine = { k, view: () => new Float32Array(b.typedArrayFromHeap(logits).buffer), gemv: gemv(k) };
    runStep(machine, mapPlan(plan, at), ids, Math.ceil(block / 16) * 16, at(logits));
    return true;
  } finally {
    heap._free(block);
  }
}

/** The kernel, running big models on `offload` when given (the backend's threads) and the rest in place. */
export function decodeStepKernel(offload?: StepOffload): KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const b = backend as WasmHeapBackend;
    const heap = b.wasm as EmscriptenHeap | undefined;
    if (!heap?._malloc) fail('the tfjs-wasm heap allocator is not reachable');
    const { plan, ids } = checkInputs(inputs as Record<string, unknown>, attrs);
    const logits = b.makeOutput([plan.n, plan.vocab], 'float32');
    try {
      if (offload?.run(plan, ids, b, logits)) return logits;
      if (!stepInPlace(b, plan, ids, logits)) fail(`tfjs's heap could not allocate ${(scratchLayout(plan).bytes / 2 ** 20).toFixed(1)} MiB of scratch`);
    } catch (err) {
      b.disposeData(logits.dataId);
      throw err;
    }
    return logits;
  };
}
