/**
 * The Llama causal language model (Touvron et al. 2023), read top to bottom:
 *
 *   x₀ = E[ids]
 *   for each block:  x += o( attention( rope(q(rmsNorm(x))), rope(k(rmsNorm(x))), v(rmsNorm(x)) ) )
 *                    x += down( swiglu( gate(rmsNorm(x)), up(rmsNorm(x)) ) )
 *   logits = rmsNorm(x) · Wₕᵀ          (Wₕ = E when embeddings are tied)
 *
 * Each block runs one forward, `blockForward` in block-grad.ts, whatever the pass: evaluation, capture hooks (each
 * linear layer's input), kv-cache decoding (`decode`), and training, where `trainableBlock` wraps that forward in a
 * hand-written backward (tfjs autodiff differentiates it instead when capture hooks or a cache are on under a tape).
 * `runBlock` here only gathers a block's weights and geometry (RoPE tables, causal mask, positions) for it.
 *
 * Parameters are tf.Variables keyed by their Hugging Face names, weights stored [out, in]. Per-layer shapes may
 * differ (a slimmed model), and groups of parameters can be masked (kept at zero through training) or removed.
 */
import { loadedDtype, rememberDtype } from './formats/dtype.js';
import * as tf from '@tensorflow/tfjs-core';
import { FusedKernel, TopiaryError, type TargetScores, type CaptureFn, type CausalLM, type GroupKind, type LayerShape, type LinearKind, type LinearLayer, type ParameterGroup } from '@topiary/kernel';
import { SeededRandom } from '@topiary/linalg';
import { releaseHostMemory } from '@topiary/files';
import { headKvMap, isUniform, layerShape, makeConfig, parameterShapes, validateConfig, type CreateConfig, type LlamaConfig } from './config.js';
import { EMBED, FINAL_NORM, LINEAR_KINDS, LM_HEAD, biasName, blockParamNames, inputNormName, linearName, postNormName } from './names.js';
import { causalMask, embedding, hasFused, linear2d, linearCrossEntropy, rmsNorm, ropeTables, type Distillation, type TeacherHead } from './ops.js';
import { computeGroups, groupId, slimGroupMapping, slimWeights } from './groups.js';
import { blockForward, trainableBlock, type BlockGeometry, type BlockWeights } from './block-grad.js';
import { checkRows, MemorySource, type WeightSource } from './formats/source.js';
import { Overlay, type SpillOptions } from './residency.js';

/** How much of the model is on the tensor heap: all of it, or one block at a time (streamed). */
export type Residency = 'all' | 'block';

export interface ModelOptions {
  /** 'block': only the block being computed is on the heap; the rest stays in the checkpoint (default 'all'). */
  residency?: Residency;
  /** Where a streamed model keeps the blocks it modified (memory budget, spill folder). */
  spill?: SpillOptions;
}

/** `blockPositions` keeps its tables and mask while the mask has at most this many elements (4 MB). */
const POSITIONS_CACHE_ELEMENTS = 1 << 20;

/** Logits per vocabulary chunk at most this many elements (128 MB): a 128K vocabulary never materialises whole. */
const HEAD_CHUNK_ELEMENTS = 1 << 25;

/** The block a parameter belongs to, or null (embedding, final norm, head). */
function blockOf(name: string): number | null {
  const m = /^model\.layers\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
}

/** RoPE tables and the causal mask of one pass, shared by every block. */
interface Positions {
  cos: tf.Tensor2D;
  sin: tf.Tensor2D;
  mask: tf.Tensor2D;
}

/** Keys and values of the past positions of one sequence batch, per block: [b, nKvHeads, t, headDim]. */
export interface KvCache {
  length: number;
  layers: { k: tf.Tensor4D; v: tf.Tensor4D }[];
  /**
   * Once `decodeStep` has run: the same keys/values in buffers of a fixed number of positions, [b, nKvHeads,
   * capacity, headDim] (written in place by the backend's fused step), with the RoPE tables of those positions.
   */
  fixed?: { capacity: number; layers: ({ k: tf.Tensor4D; v: tf.Tensor4D } | undefined)[]; cos: tf.Tensor2D; sin: tf.Tensor2D };
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Whether `data` is exactly zero wherever `keep` is 0 (multiplying by the mask would then change nothing). */
function zeroWhereDropped(data: Float32Array, keep: Uint8Array): boolean {
  for (let i = 0; i < data.length; i++) if (keep[i] === 0 && data[i] !== 0) return false;
  return true;
}

/**
 * A streamed weight's values under its keep mask, applied once: `data` itself when it is already zero wherever the
 * mask drops, else `data[i] · (keep[i] ? 1 : 0)` written into `out` (`data` itself, or a new array) — the in-memory path's
 * products, so a dropped negative weight is −0 on both.
 */
function maskedOnce(param: string, data: Float32Array, keep: Uint8Array, into?: Float32Array): Float32Array {
  if (keep.length !== data.length) throw new TopiaryError('E_USAGE', `mask for "${param}" has ${keep.length} entries, the weight has ${data.length}`, { where: param });
  if (zeroWhereDropped(data, keep)) return data;
  const out = into ?? new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i]! * (keep[i] ? 1 : 0);
  return out;
}

/** Whether tfjs-wasm holds `t`'s data (its reads are fresh copies); false when unknown. */
function heldByWasm(t: tf.Tensor): boolean {
  const state = (tf.engine() as unknown as { state?: { tensorInfo?: { get(id: object): { backend?: unknown } | undefined } } }).state;
  const owner = state?.tensorInfo?.get(t.dataId)?.backend;
  return owner !== undefined && owner === tf.findBackend('wasm');
}

/**
 * A live float32 view of `t`'s values on tfjs-wasm's heap (its own `typedArrayFromHeap`), or undefined when another
 * engine holds it. Valid until the heap grows, which only a tensor operation does.
 */
function heapView(t: tf.Tensor): Float32Array | undefined {
  if (t.dtype !== 'float32' || !heldByWasm(t)) return undefined;
  const wasm = tf.findBackend('wasm') as unknown as { typedArrayFromHeap?(info: { dataId: object; shape: number[]; dtype: string }): Float32Array };
  const view = wasm.typedArrayFromHeap?.({ dataId: t.dataId, shape: t.shape, dtype: t.dtype });
  return view && view.length === t.size ? view : undefined;
}

/**
 * `heapView(t)` when `t` alone holds its data (tfjs-wasm's reference count is 1): then writing through the view
 * changes no other tensor (a clone or an identity shares its input's data).
 */
function exclusiveHeapView(t: tf.Tensor): Float32Array | undefined {
  const wasm = tf.findBackend('wasm') as unknown as { refCount?(dataId: object): number } | undefined;
  return wasm?.refCount?.(t.dataId) === 1 ? heapView(t) : undefined;
}

/** Dispose the keys/values of cache entries (absent entries: blocks without attention). */
function disposeKv(entries: readonly ({ k: tf.Tensor; v: tf.Tensor } | undefined)[]): void {
  for (const entry of entries) {
    entry?.k.dispose();
    entry?.v.dispose();
  }
}

/**
 * The tfjs engine the weights go to. A program that loads a model before any backend is registered (it imported
 * tfjs-core alone, or chose no Topiary backend) gets this error naming the weight, not tfjs's "No backend found in
 * registry" from deep inside a tensor constructor.
 */
function activeBackend(weight: string): string {
  try {
    void tf.engine().backend; // initialises the best registered backend when none is chosen yet; throws when none is
    return tf.getBackend();
  } catch (e) {
    throw new TopiaryError('E_BACKEND', 'no tensor backend is ready, so the weights have nowhere to go', {
      where: weight,
      hint: "activate one first: `(await openRun({ backend: 'wasm', … }, roots)).activateBackend()` from @topiary/pipeline, or import a tfjs backend package (e.g. @tensorflow/tfjs-backend-wasm) and `await tf.setBackend(name)`",
      cause: e,
    });
  }
}

/** A tfjs variable name that no live variable uses yet (tfjs names are global; two models may share HF names). */
function freeVariableName(name: string): string {
  const taken = tf.engine().registeredVariables;
  if (!(name in taken)) return name;
  for (let k = 1; ; k++) if (!(`${name}#${k}` in taken)) return `${name}#${k}`;
}

export class LlamaModel implements CausalLM {
  readonly config: LlamaConfig;
  private readonly params = new Map<string, tf.Variable>();
  private readonly hooks: CaptureFn[] = [];
  /** Combined keep masks (element masks × group masks) per parameter, host side. */
  private readonly keep = new Map<string, Uint8Array>();
  private readonly maskTensors = new Map<string, tf.Tensor>();
  /** The RoPE tables and mask `blockPositions` made last. */
  private positionsCache: { start: number; t: number; pos: Positions } | undefined;
  private readonly masked = new Set<string>();
  private groupCache: ParameterGroup[] | null = null;
  /** Hidden channels that are not masked: RMSNorm averages over these only (see ops.rmsNorm). */
  private activeDim: number;
  /** Streamed models: the checkpoint, the blocks modified since, and which block is on the heap now. */
  private readonly stream: { source: WeightSource; overlay: Overlay; dirty: Set<string>; resident: number | null; redirected: Map<string, WeightSource> } | null = null;
  private readonly shapes: Map<string, number[]>;

  /**
   * Build from a config and host weights keyed by HF name (each [out, in], row-major), or from a checkpoint opened
   * with `openWeights`. Validates every shape. With `residency: 'block'` nothing is read yet: each block's weights
   * come onto the heap when the block is computed and leave when another block is (see `streamed`).
   */
  constructor(config: LlamaConfig, weights: ReadonlyMap<string, Float32Array> | WeightSource, where = 'model', options: ModelOptions = {}) {
    validateConfig(config);
    this.config = config;
    this.activeDim = config.dim;
    this.shapes = parameterShapes(config);
    const source = weights instanceof Map ? new MemorySource(where, config, weights) : (weights as WeightSource);
    if (weights instanceof Map) {
      for (const [name, shape] of this.shapes) {
        const data = weights.get(name);
        if (data === undefined) throw new TopiaryError('E_FORMAT', `missing tensor "${name}"`, { file: where, where: name });
        if (data.length !== product(shape)) {
          throw new TopiaryError('E_FORMAT', `tensor "${name}" has ${data.length} values, the config needs [${shape.join(', ')}]`, {
            file: where,
            where: name,
            hint: 'the weights do not match config.json',
          });
        }
      }
    }
    if ((options.residency ?? 'all') === 'block') {
      this.stream = { source, overlay: new Overlay(options.spill), dirty: new Set(), resident: null, redirected: new Map() };
      return;
    }
    for (const name of this.shapes.keys()) this.materialise(name, weights instanceof Map ? weights.get(name)! : source.read(name));
    if (!(weights instanceof Map)) source.close();
  }

  /**
   * A streamed weight decoded from its file straight into its variable on tfjs-wasm's heap (no float32 host copy in
   * between), when it is read from a file that can (not modified since, held on that engine); else undefined.
   */
  private materialiseFromFile(name: string): tf.Variable | undefined {
    const source = this.sourceOf(name);
    if (!source.readInto || this.stream!.overlay.has(name) || activeBackend(name) !== 'wasm') return undefined;
    const initial = tf.fill(this.shapes.get(name)!, 0); // made on the heap (tf.zeros would copy a host array in)
    const v = tf.variable(initial, true, freeVariableName(name));
    initial.dispose();
    const view = heapView(v);
    if (!view) {
      v.dispose();
      return undefined;
    }
    try {
      source.readInto(name, view); // file reads and decoding only: the heap does not move meanwhile
    } catch (e) {
      v.dispose();
      throw e;
    }
    this.params.set(name, v);
    return v;
  }

  private materialise(name: string, data: Float32Array): tf.Variable {
    activeBackend(name);
    const initial = tf.tensor(data, this.shapes.get(name)!);
    const v = tf.variable(initial, true, freeVariableName(name));
    initial.dispose(); // the variable holds its own reference to the data
    this.params.set(name, v);
    return v;
  }

  /** Whether only one block at a time is on the tensor heap (a model opened with `residency: 'block'`). */
  get streamed(): boolean {
    return this.stream !== null;
  }

  /** A streamed model refuses what needs every weight on the heap at once (training, slimming, copies). */
  private requireResident(what: string): void {
    if (this.stream) {
      throw new TopiaryError('E_USAGE', `${what} needs the whole model in memory, and this model is streamed block by block`, {
        where: 'residency',
        hint: 'load the model whole (--in-memory) to train, fine-tune, slim or copy it',
      });
    }
  }

  /**
   * Put block `layer` on the heap (taking the previous block off: its modified weights go to the overlay, the rest
   * is dropped and re-read from the checkpoint when needed again). No-op for an in-memory model.
   */
  private makeResident(layer: number): void {
    const st = this.stream;
    if (!st || st.resident === layer) return;
    this.evict();
    st.resident = layer;
  }

  /**
   * Take the resident block off the heap (streamed models). Its modified weights go to the overlay — except those
   * `redirect` has since pointed at a file holding exactly these values (a streamed output's shard).
   */
  evict(): void {
    const st = this.stream;
    if (!st || st.resident === null) return;
    const modified = new Map<string, { shape: readonly number[]; data: Float32Array }>();
    for (const name of blockParamNames(st.resident, this.config.attentionBias === true)) {
      const v = this.params.get(name);
      if (!v) continue;
      if (st.dirty.has(name) && !st.redirected.has(name)) modified.set(name, { shape: v.shape, data: (v.dataSync() as Float32Array).slice() });
      v.dispose();
      this.params.delete(name);
      this.maskTensors.get(name)?.dispose();
      this.maskTensors.delete(name);
      this.keep.delete(name);
      st.dirty.delete(name);
    }
    if (modified.size > 0) st.overlay.putBlock(st.resident, modified);
    st.resident = null;
  }

  /**
   * From now on read `names` from `source` (a streamed model): a shard just written with exactly the current values,
   * or the finished blocks of an interrupted run being resumed. Their modified copies are no longer kept.
   */
  redirect(names: Iterable<string>, source: WeightSource): void {
    const st = this.stream;
    if (!st) throw new TopiaryError('E_INTERNAL', 'redirect: the model is not streamed');
    for (const name of names) {
      st.redirected.set(name, source);
      st.overlay.drop(name);
    }
  }

  /** Where a streamed model reads a weight it does not hold on the heap: overlay, redirected file, checkpoint. */
  private sourceOf(name: string): WeightSource {
    const st = this.stream!;
    return st.redirected.get(name) ?? st.source;
  }

  /** A weight as float32 from wherever it is now (the heap, the overlay of modified blocks, the checkpoint). */
  private hostWeight(name: string): Float32Array {
    const v = this.params.get(name);
    if (v) return v.dataSync() as Float32Array;
    return this.stream!.overlay.get(name) ?? this.sourceOf(name).read(name);
  }

  /** Rows [start, start+count) of a [rows, cols] weight (the streamed embedding and head are read this way). */
  readRows(name: string, start: number, count: number): Float32Array {
    if (!this.shapes.has(name)) throw new TopiaryError('E_USAGE', `the model has no parameter "${name}"`, { where: name });
    return this.hostRows(name, start, count);
  }

  /** Rows of a [rows, cols] weight from the overlay or the checkpoint (streamed embedding and head). */
  private hostRows(name: string, start: number, count: number): Float32Array {
    const v = this.params.get(name);
    const cols = this.shapes.get(name)![1]!;
    // a slice on the heap, then only those rows are copied out (not the whole weight: a streamed writer reads a
    // resident block's matrices chunk by chunk)
    // (not inside tf.tidy: tidy walks whatever it returns, element by element for a typed array — seconds per block)
    if (v && count === this.shapes.get(name)![0]) return v.dataSync() as Float32Array;
    // on tfjs-wasm's heap: those rows straight off it (its Slice kernel first copies the whole weight out: at 7B the
    // shard writer's 16 MB chunks of a block cost 20 s that way)
    const view = v ? heapView(v) : undefined;
    if (view) return view.slice(start * cols, (start + count) * cols);
    if (v) {
      const rows = tf.slice(v, [start, 0], [count, cols]);
      try {
        return rows.dataSync() as Float32Array;
      } finally {
        rows.dispose();
      }
    }
    return this.stream!.overlay.getRows(name, cols, start, count) ?? this.sourceOf(name).readRows(name, start, count);
  }

  // ------------------------------------------------------------------ parameters

  parameters(): ReadonlyMap<string, tf.Variable> {
    this.requireResident('parameters()');
    return this.params;
  }

  /** Parameter names and shapes, without reading any weight. */
  parameterShapes(): ReadonlyMap<string, readonly number[]> {
    return this.shapes;
  }

  parameterCount(): number {
    let n = 0;
    for (const shape of this.shapes.values()) n += product(shape);
    return n;
  }

  get numBlocks(): number {
    return this.config.nLayers;
  }

  private param(name: string): tf.Variable {
    const p = this.params.get(name);
    if (p !== undefined) return p;
    if (this.stream && this.shapes.has(name)) {
      const layer = blockOf(name);
      if (layer === null && name !== FINAL_NORM) {
        throw new TopiaryError('E_INTERNAL', `"${name}" of a streamed model is read by rows, never put on the heap whole`, { where: name });
      }
      if (layer !== null) this.makeResident(layer);
      const direct = this.materialiseFromFile(name);
      if (direct) return direct;
      const v = this.materialise(name, this.hostWeight(name));
      // the float32 host copy (180 MB for a Llama-2-7B FFN matrix) is garbage now: given back before the next read
      if (layer !== null) releaseHostMemory();
      return v;
    }
    throw new TopiaryError('E_USAGE', `the model has no parameter "${name}"`, { where: name });
  }

  readWeight(param: string, options: { copy?: boolean } = {}): Float32Array {
    if (this.stream && !this.params.has(param)) {
      if (!this.shapes.has(param)) throw new TopiaryError('E_USAGE', `the model has no parameter "${param}"`, { where: param });
      const host = this.hostWeight(param);
      return options.copy ? host.slice() : host;
    }
    const p = this.param(param);
    const data = p.dataSync() as Float32Array;
    // tfjs-wasm's read copies the tensor off its heap; the cpu engine (and others) hand out their own buffer. What
    // counts is the engine that holds this tensor, which may not be the active one (a tensor not touched since a switch).
    return options.copy && !heldByWasm(p) ? data.slice() : data;
  }

  writeWeight(param: string, data: Float32Array, keep?: Uint8Array): void {
    const p = this.param(param);
    if (data.length !== p.size) {
      throw new TopiaryError('E_USAGE', `writeWeight: ${data.length} values for "${param}" of shape [${p.shape.join(', ')}]`, { where: param });
    }
    this.stream?.dirty.add(param);
    if (keep === undefined) {
      this.replaceValue(param, p, data);
      this.applyMaskTo(param);
      return;
    }
    if (this.stream) {
      // A streamed model never trains and cannot mask groups: its element masks zero the weights once and are not
      // kept (eviction would drop them anyway) — no mask-sized copies beside the block (202 MB per Llama-2-7B block).
      this.keep.delete(param);
      this.replaceValue(param, p, maskedOnce(param, data, keep));
      return;
    }
    // the same products, in the same order, as writing then masking with the old and then the new keep mask
    const before = this.keep.get(param);
    const next = this.combinedKeep(param, keep);
    // A pruner's result is usually already zero wherever its mask is: then the masked weight is `data` itself, bit
    // for bit (x·1 = x, ±0·0 = ±0), and no second weight-sized array is made (180 MB per FFN layer at Llama-2-7B)
    let masked = data;
    if (before !== undefined || !zeroWhereDropped(data, next)) {
      masked = new Float32Array(data.length);
      for (let i = 0; i < data.length; i++) masked[i] = before ? data[i]! * before[i]! * next[i]! : data[i]! * next[i]!;
    }
    this.replaceValue(param, p, masked);
    this.keep.set(param, next);
    this.dropMaskTensor(param);
  }

  editWeight(param: string, edit: (weight: Float32Array) => Uint8Array | undefined): void {
    const p = this.param(param);
    // In place where the variable alone holds its values: a streamed block's variables are their own; an in-memory
    // model's are, unless a tensor made from one (a clone, an identity) shares its data, which must not change.
    // In place, no weight-sized copy is read off the heap and none written back (fresh arrays fault in slowly).
    const view = this.stream ? (blockOf(param) !== null ? heapView(p) : undefined) : exclusiveHeapView(p);
    if (!view) {
      const data = this.readWeight(param, { copy: true });
      const keep = edit(data);
      this.writeWeight(param, data, keep);
      return;
    }
    this.stream?.dirty.add(param); // before the edit: an edit that fails half-way is not silently reverted
    if (this.stream) this.keep.delete(param);
    const keep = edit(view);
    if (view.length !== p.size) {
      throw new TopiaryError('E_INTERNAL', `the tensor heap grew while "${param}" was edited in place (the edit ran a tensor operation)`, { where: param });
    }
    if (keep === undefined) {
      this.applyMaskTo(param); // an in-memory model's old mask (a streamed block's was dropped above)
      return;
    }
    // writeWeight's products, formed where the values already are. An in-memory model keeps its combined mask
    // (re-applied after optimizer steps); the old mask's product changes nothing, since the stored weight is
    // already zero wherever it drops.
    const applied = this.stream ? keep : this.combinedKeep(param, keep);
    maskedOnce(param, view, applied, view);
    if (!this.stream) {
      this.keep.set(param, applied);
      this.dropMaskTensor(param);
    }
  }

  /**
   * Give variable `p` new values. A streamed model's block variables are its own (nothing outside holds them across
   * calls), so the old one is disposed before the new values are uploaded: its heap space is free again for them,
   * instead of both being on the heap at once (at Llama-2-7B an FFN weight is 180 MB, and the heap never shrinks).
   */
  private replaceValue(param: string, p: tf.Variable, values: Float32Array): void {
    if (this.stream && blockOf(param) !== null) {
      p.dispose();
      this.params.delete(param);
      this.materialise(param, values);
      return;
    }
    tf.tidy(() => p.assign(tf.tensor(values, p.shape)));
  }

  // ------------------------------------------------------------------ forward

  private runHooks(layer: number, kind: LinearKind, x: tf.Tensor2D): void {
    if (this.hooks.length === 0) return;
    const info = this.linearInfo(layer, kind);
    for (const hook of this.hooks) hook(info, x);
  }

  private blockMasked(i: number): boolean {
    return this.masked.has(groupId.block(i));
  }

  /** Block i's weights, by half (a half is absent when the layer has no heads / no feed-forward channels). */
  private blockWeights(i: number, shape: LayerShape): BlockWeights {
    const p = (name: string) => this.param(name) as tf.Tensor as tf.Tensor2D;
    const norm = (name: string) => this.param(name) as tf.Tensor as tf.Tensor1D;
    const biases = this.config.attentionBias ? { qBias: norm(biasName(i, 'q')), kBias: norm(biasName(i, 'k')), vBias: norm(biasName(i, 'v')) } : {};
    return {
      ...(shape.nHeads > 0
        ? { attention: { inputNorm: norm(inputNormName(i)), q: p(linearName(i, 'q')), k: p(linearName(i, 'k')), v: p(linearName(i, 'v')), o: p(linearName(i, 'o')), ...biases } }
        : {}),
      ...(shape.hiddenDim > 0 ? { ffn: { postNorm: norm(postNormName(i)), gate: p(linearName(i, 'gate')), up: p(linearName(i, 'up')), down: p(linearName(i, 'down')) } } : {}),
    };
  }

  /**
   * One block on the flattened residual stream x [b·t, dim] for positions start..start+t-1: prepares the block's
   * weights and geometry and runs the one block forward (block-grad). With a cache, the block reads the cached
   * keys/values and its entry is replaced by the keys/values of positions 0..start+t-1 (the caller disposes the old).
   */
  private runBlock(i: number, x: tf.Tensor2D, b: number, t: number, start: number, cache: KvCache | null, pos?: Positions, captureOnly = false): tf.Tensor2D {
    if (this.blockMasked(i)) return x;
    const shape = layerShape(this.config, i);
    if (shape.nHeads === 0 && shape.hiddenDim === 0) return x;
    const { headDim, normEps } = this.config;
    pos ??= this.blockPositions(start, t);
    const weights = this.blockWeights(i, shape);
    const geometry: BlockGeometry = {
      b,
      t,
      start,
      headDim,
      nHeads: shape.nHeads,
      nKvHeads: shape.nKvHeads,
      headKvMap: headKvMap(shape),
      eps: normEps,
      activeDim: this.activeDim,
      ...pos,
    };
    const hooked = this.hooks.length > 0;
    // training: one tape node per block with the hand-written backward (far less memory, fewer ops; see block-grad).
    // With capture hooks or a kv cache under a tape, tfjs autodiff differentiates the same forward instead.
    if (tf.engine().isTapeOn() && !hooked && cache === null && start === 0) return trainableBlock(x, weights, geometry);
    const tap = hooked ? (kind: LinearKind, input: tf.Tensor2D) => this.runHooks(i, kind, input) : undefined;
    // lean: nothing here reads the saved intermediates, so each half frees its temporaries as it ends
    const out = blockForward(x, weights, geometry, { tap, lean: true, captureOnly, ...(cache ? { cache: { past: cache.layers[i] } } : {}) });
    if (cache && out.kv) cache.layers[i] = { k: tf.keep(out.kv.k), v: tf.keep(out.kv.v) };
    return out.y;
  }

  private embed2d(ids: tf.Tensor2D): tf.Tensor2D {
    const flat = tf.reshape(tf.cast(ids, 'int32'), [-1]) as tf.Tensor1D;
    if (this.stream) return tf.tensor2d(this.embeddingRows(flat.dataSync() as Int32Array), [flat.size, this.config.dim]);
    return embedding(this.param(EMBED) as tf.Variable<tf.Rank.R2>, flat);
  }

  /** Rows of the embedding for `ids`, read from the checkpoint run by run of consecutive ids (streamed models). */
  private embeddingRows(ids: Int32Array): Float32Array {
    const dim = this.config.dim;
    const out = new Float32Array(ids.length * dim);
    const sorted = [...new Set(ids)].sort((a, b) => a - b);
    const rowOf = new Map<number, Float32Array>();
    for (let k = 0; k < sorted.length; ) {
      let end = k + 1;
      while (end < sorted.length && sorted[end] === sorted[end - 1]! + 1 && end - k < 4096) end++;
      const start = sorted[k]!;
      if (!(start >= 0 && sorted[end - 1]! < this.config.vocabSize)) {
        throw new TopiaryError('E_DATA', `token id ${start < 0 ? start : sorted[end - 1]} is outside the model's vocabulary (${this.config.vocabSize})`, { where: 'ids' });
      }
      const count = end - k;
      const rows = this.hostRows(EMBED, start, count);
      for (let r = 0; r < count; r++) rowOf.set(start + r, rows.subarray(r * dim, (r + 1) * dim));
      k = end;
    }
    ids.forEach((id, i) => out.set(rowOf.get(id)!, i * dim));
    return out;
  }

  private get headName(): string {
    return this.config.tiedEmbeddings ? EMBED : LM_HEAD;
  }

  /** The final norm's output and the output projection (the tied embedding or lm_head). */
  private headInputs(x: tf.Tensor2D): { h: tf.Tensor2D; weight: tf.Tensor2D } {
    const h = rmsNorm(x, this.param(FINAL_NORM) as tf.Variable<tf.Rank.R1>, this.config.normEps, this.activeDim);
    this.requireResident('the whole output projection');
    return { h, weight: this.param(this.headName) as tf.Variable<tf.Rank.R2> };
  }

  /** Rows [start, start+count) of the output projection: a slice of the variable, or read from the checkpoint. */
  private headChunk(start: number, count: number): tf.Tensor2D {
    if (this.stream) return tf.tensor2d(this.hostRows(this.headName, start, count), [count, this.config.dim]);
    const w = this.param(this.headName) as tf.Tensor as tf.Tensor2D;
    return count === this.config.vocabSize ? w : (tf.slice(w, [start, 0], [count, -1]) as tf.Tensor2D);
  }

  /** Vocabulary chunks [start, count) for n positions: one chunk whenever n·vocab fits HEAD_CHUNK_ELEMENTS. */
  private headChunks(n: number): [number, number][] {
    const vocab = this.config.vocabSize;
    const rows = Math.max(1, Math.min(vocab, Math.floor(HEAD_CHUNK_ELEMENTS / Math.max(1, n))));
    const chunks: [number, number][] = [];
    for (let start = 0; start < vocab; start += rows) chunks.push([start, Math.min(rows, vocab - start)]);
    return chunks;
  }

  private head2d(x: tf.Tensor2D): tf.Tensor2D {
    if (!this.stream) {
      const { h, weight } = this.headInputs(x);
      return linear2d(h, weight);
    }
    const h = rmsNorm(x, this.param(FINAL_NORM) as tf.Variable<tf.Rank.R1>, this.config.normEps, this.activeDim);
    const parts = this.headChunks(x.shape[0]).map(([start, count]) => linear2d(h, this.headChunk(start, count)));
    return parts.length === 1 ? parts[0]! : (tf.concat(parts, 1) as tf.Tensor2D);
  }

  /**
   * For hidden states [b, t, dim] after the last block and one target id per position: the target's logit, the
   * log-sum-exp and the maximum of each position's logits, computed vocabulary chunk by chunk (chunks combined as
   * lse = M + log Σ_c exp(lse_c − M)), so the [b·t, vocab] logits never exist whole. In-memory and streamed models
   * take the same chunks in the same order: their scores are bit-identical.
   */
  scoreTargets(hidden: tf.Tensor3D, targets: Int32Array): TargetScores {
    const [b, t, d] = hidden.shape;
    const n = b * t;
    if (targets.length !== n) throw new TopiaryError('E_INTERNAL', `scoreTargets: ${targets.length} targets for ${n} positions`);
    const chunks = this.headChunks(n);
    const target = new Float32Array(n);
    const lses: Float32Array[] = [];
    const maxes: Float32Array[] = [];
    const h = tf.tidy(() => rmsNorm(tf.reshape(hidden, [n, d]) as tf.Tensor2D, this.param(FINAL_NORM) as tf.Variable<tf.Rank.R1>, this.config.normEps, this.activeDim));
    try {
      for (const [start, count] of chunks) {
        const [z, lse, max] = tf.tidy(() => {
          const logits = linear2d(h, this.headChunk(start, count));
          return [logits, tf.logSumExp(logits, -1), tf.max(logits, -1)] as const;
        });
        const zv = z.dataSync() as Float32Array;
        for (let i = 0; i < n; i++) {
          const k = targets[i]! - start;
          if (k >= 0 && k < count) target[i] = zv[i * count + k]!;
        }
        lses.push(lse.dataSync() as Float32Array);
        maxes.push(max.dataSync() as Float32Array);
        tf.dispose([z, lse, max]);
      }
    } finally {
      h.dispose();
    }
    if (chunks.length === 1) return { target, lse: lses[0]!, max: maxes[0]! };
    const lse = new Float32Array(n);
    const max = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let m = -Infinity;
      for (const c of maxes) m = Math.max(m, c[i]!);
      let sum = 0;
      for (const c of lses) sum += Math.exp(c[i]! - m);
      max[i] = m;
      lse[i] = m + Math.log(sum);
    }
    return { target, lse, max };
  }

  /** RoPE tables (with the config's scaling) and the causal mask of positions start..start+t−1. */
  private positions(start: number, t: number): Positions {
    const { headDim, ropeTheta, ropeScaling, slidingWindow } = this.config;
    // an accepted sliding window is at least maxSeqLen; a longer pass would need the window, which is not implemented
    if (slidingWindow !== undefined && start + t > slidingWindow) {
      throw new TopiaryError('E_USAGE', `a pass over ${start + t} positions is longer than the sliding attention window (${slidingWindow})`, {
        where: 'slidingWindow',
        hint: 'sliding-window attention is not implemented: keep sequences within the window',
      });
    }
    return { ...ropeTables(start, t, headDim, ropeTheta, ropeScaling), mask: causalMask(start, t) };
  }

  /**
   * `positions(start, t)` for a block run on its own (`block`, `captureBlock`: a pruner runs every block over every
   * calibration batch, each call building the same RoPE tables and mask). The last ones made are kept, outside any
   * tidy scope, while they are small (a 128-position pass: 64 KB of mask); larger ones are made per call.
   */
  private blockPositions(start: number, t: number): Positions {
    const c = this.positionsCache;
    if (c && c.start === start && c.t === t) return c.pos;
    if (t * (start + t) > POSITIONS_CACHE_ELEMENTS) return this.positions(start, t);
    this.dropPositionsCache();
    const [cos, sin, mask] = tf.tidy(() => {
      const p = this.positions(start, t);
      return [p.cos, p.sin, p.mask];
    });
    const pos: Positions = { cos: tf.keep(cos!), sin: tf.keep(sin!), mask: tf.keep(mask!) };
    this.positionsCache = { start, t, pos };
    return pos;
  }

  private dropPositionsCache(): void {
    const pos = this.positionsCache?.pos;
    pos?.cos.dispose();
    pos?.sin.dispose();
    pos?.mask.dispose();
    this.positionsCache = undefined;
  }

  /** Hidden states [b·t, dim] after every block, before the final norm. */
  private hidden2d(ids: tf.Tensor2D, start = 0, cache: KvCache | null = null): tf.Tensor2D {
    const [b, t] = ids.shape;
    const pos = this.positions(start, t);
    let x = this.embed2d(ids);
    const taping = tf.engine().isTapeOn();
    for (let i = 0; i < this.config.nLayers; i++) {
      if (taping) {
        x = this.runBlock(i, x, b, t, start, cache, pos);
        continue;
      }
      // no gradient: each block's temporaries are freed as soon as the block is done, not with the whole pass
      const input = x;
      x = tf.tidy(() => this.runBlock(i, input, b, t, start, cache, pos));
      if (x !== input) input.dispose();
    }
    return x;
  }

  private logits2d(ids: tf.Tensor2D, start = 0, cache: KvCache | null = null): tf.Tensor2D {
    return this.head2d(this.hidden2d(ids, start, cache));
  }

  forward(ids: tf.Tensor2D): tf.Tensor3D {
    const [b, t] = ids.shape;
    return tf.tidy(() => tf.reshape(this.logits2d(ids), [b, t, this.config.vocabSize]) as tf.Tensor3D);
  }

  /**
   * Mean next-token cross-entropy of ids [b, t]; with `teacher` (from the teacher's `teacherHead(ids)`), the distilled
   * loss (1 − α)·CE + α·T²·KL against the teacher's logits. Never materialises the [b·t, vocab] logits.
   */
  loss(ids: tf.Tensor2D, teacher?: TeacherHead): tf.Scalar {
    this.requireResident('loss()');
    const [b, t] = ids.shape;
    if (t < 2) throw new TopiaryError('E_USAGE', `loss needs sequences of at least 2 tokens, got ${t}`, { where: 'ids' });
    return tf.tidy(() => {
      const inputs = tf.slice(ids, [0, 0], [b, t - 1]);
      const targets = tf.reshape(tf.cast(tf.slice(ids, [0, 1], [b, t - 1]), 'int32'), [-1]) as tf.Tensor1D;
      const { h, weight } = this.headInputs(this.hidden2d(inputs));
      return linearCrossEntropy(h, weight, targets, undefined, teacher);
    });
  }

  /**
   * This model as a distillation teacher for ids [b, t]: its final-normed hidden states of every position but the
   * last and its output projection, computed before the student's gradient tape starts (so the teacher's
   * activations are not kept for a backward pass). The caller disposes `h`; `weight` is the model's own.
   */
  teacherHead(ids: tf.Tensor2D, distillation: Distillation): TeacherHead {
    this.requireResident('a teacher pass');
    const [b, t] = ids.shape;
    const h = tf.tidy(() => this.headInputs(this.hidden2d(tf.slice(ids, [0, 0], [b, t - 1]))).h);
    return { ...distillation, h, weight: this.param(this.headName) as tf.Variable<tf.Rank.R2> };
  }

  embed(ids: tf.Tensor2D): tf.Tensor3D {
    const [b, t] = ids.shape;
    return tf.tidy(() => tf.reshape(this.embed2d(ids), [b, t, this.config.dim]) as tf.Tensor3D);
  }

  block(index: number, hidden: tf.Tensor3D): tf.Tensor3D {
    if (!Number.isInteger(index) || index < 0 || index >= this.config.nLayers) {
      throw new TopiaryError('E_USAGE', `block ${index} does not exist (model has ${this.config.nLayers})`, { where: 'block' });
    }
    const [b, t, d] = hidden.shape;
    return tf.tidy(() => tf.reshape(this.runBlock(index, tf.reshape(hidden, [b * t, d]), b, t, 0, null), [b, t, d]) as tf.Tensor3D);
  }

  captureBlock(index: number, hidden: tf.Tensor3D): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.config.nLayers) {
      throw new TopiaryError('E_USAGE', `block ${index} does not exist (model has ${this.config.nLayers})`, { where: 'block' });
    }
    const [b, t, d] = hidden.shape;
    tf.tidy(() => void this.runBlock(index, tf.reshape(hidden, [b * t, d]), b, t, 0, null, undefined, true));
  }

  head(hidden: tf.Tensor3D): tf.Tensor3D {
    const [b, t, d] = hidden.shape;
    return tf.tidy(() => tf.reshape(this.head2d(tf.reshape(hidden, [b * t, d])), [b, t, this.config.vocabSize]) as tf.Tensor3D);
  }

  /** Empty key/value cache for incremental decoding. */
  newCache(): KvCache {
    return { length: 0, layers: [] };
  }

  /**
   * Feed `ids` [b, t] after the cached positions and return the logits of the last position [b, vocab]; the cache
   * grows by t. Used by `generate`.
   */
  decode(ids: tf.Tensor2D, cache: KvCache): tf.Tensor2D {
    if (cache.fixed) throw new TopiaryError('E_INTERNAL', 'decode() after decodeStep() on one cache: the cache now has a fixed capacity');
    const [b, t] = ids.shape;
    if (cache.length + t > this.config.maxSeqLen) {
      throw new TopiaryError('E_USAGE', `sequence of ${cache.length + t} tokens exceeds maxSeqLen ${this.config.maxSeqLen}`, { where: 'maxSeqLen' });
    }
    const old = cache.layers.slice();
    const out = tf.tidy(() => {
      const hidden = this.hidden2d(ids, cache.length, cache);
      // the output projection only for each sequence's last position (a prompt's others are never read)
      const last = t === 1 ? hidden : (tf.reshape(tf.slice(tf.reshape(hidden, [b, t, -1]), [0, t - 1, 0], [b, 1, -1]), [b, -1]) as tf.Tensor2D);
      return this.head2d(last);
    });
    disposeKv(old);
    cache.length += t;
    return out;
  }

  /**
   * Whether `decodeStep` can run: the active engine has the fused decode step (`FusedKernel.decodeStep`) and the
   * whole model is on the heap.
   */
  get canDecodeStep(): boolean {
    // dynamic NTK scaling changes the RoPE base with the sequence length: the step's fixed tables would not follow it
    return !this.stream && this.config.ropeScaling?.type !== 'dynamic' && hasFused(FusedKernel.decodeStep);
  }

  /**
   * One new token per sequence (ids [b], after the `cache.length` cached positions) through the backend's fused
   * decode step: the logits [b, vocab], and the cache grows by one. The same numbers as `decode` with [b, 1] ids
   * (to float rounding: the sums run in another order), in one dispatch for the whole model. The first call moves
   * the keys/values `decode` cached (the prompt's) into buffers of `capacity` positions, which later steps fill in
   * place; `decode` cannot be used on that cache afterwards. Only where `canDecodeStep`.
   */
  decodeStep(ids: Int32Array, cache: KvCache, capacity: number): tf.Tensor2D {
    if (!this.canDecodeStep) throw new TopiaryError('E_INTERNAL', 'decodeStep: the active backend has no fused decode step, or the model is streamed');
    const pos = cache.length;
    if (pos + 1 > capacity || capacity > this.config.maxSeqLen) {
      throw new TopiaryError('E_USAGE', `sequence of ${pos + 1} tokens exceeds the cache's ${Math.min(capacity, this.config.maxSeqLen)} positions`, { where: 'maxSeqLen' });
    }
    const n = ids.length;
    const { headDim, normEps, ropeTheta, ropeScaling, vocabSize } = this.config;
    const bad = ids.find((id) => !(id >= 0 && id < vocabSize));
    if (bad !== undefined) throw new TopiaryError('E_DATA', `token id ${bad} is outside the model's vocabulary (${vocabSize})`, { where: 'ids' });
    if (!cache.fixed) {
      const layers = Array.from({ length: this.config.nLayers }, (_, i) => {
        const past = cache.layers[i];
        const { nHeads, nKvHeads } = layerShape(this.config, i);
        if (this.blockMasked(i) || nHeads === 0) return undefined;
        // positions 0..pos−1 from decode(), zeros after them (the step writes position pos, reads 0..pos)
        const grow = (t: tf.Tensor4D | undefined): tf.Tensor4D =>
          tf.tidy(() => (t ? (tf.pad(t, [[0, 0], [0, 0], [0, capacity - pos], [0, 0]]) as tf.Tensor4D) : tf.zeros([n, nKvHeads, capacity, headDim])));
        return { k: grow(past?.k), v: grow(past?.v) };
      });
      disposeKv(cache.layers);
      cache.layers = [];
      cache.fixed = { capacity, layers, ...ropeTables(0, capacity, headDim, ropeTheta, ropeScaling) };
    }
    if (cache.fixed.capacity !== capacity) throw new TopiaryError('E_INTERNAL', `decodeStep: the cache holds ${cache.fixed.capacity} positions, not ${capacity}`);
    const fixed = cache.fixed;
    const inputs: Record<string, tf.Tensor> = {
      embedding: this.param(EMBED),
      head: this.param(this.headName),
      finalNorm: this.param(FINAL_NORM),
      cos: fixed.cos,
      sin: fixed.sin,
    };
    const heads: number[] = [];
    const kvHeads: number[] = [];
    const hidden: number[] = [];
    const maps: number[] = [];
    for (let i = 0; i < this.config.nLayers; i++) {
      const shape = layerShape(this.config, i);
      const skipped = this.blockMasked(i);
      const attention = !skipped && shape.nHeads > 0 ? fixed.layers[i] : undefined;
      const ffn = !skipped && shape.hiddenDim > 0;
      heads.push(attention ? shape.nHeads : 0);
      kvHeads.push(attention ? shape.nKvHeads : 0);
      hidden.push(ffn ? shape.hiddenDim : 0);
      const weights = attention || ffn ? this.blockWeights(i, shape) : {};
      if (attention) {
        maps.push(...headKvMap(shape));
        const w = weights.attention!;
        Object.assign(inputs, {
          [`${i}.inputNorm`]: w.inputNorm,
          [`${i}.q`]: w.q,
          [`${i}.k`]: w.k,
          [`${i}.v`]: w.v,
          [`${i}.o`]: w.o,
          [`${i}.kCache`]: attention.k,
          [`${i}.vCache`]: attention.v,
          ...(w.qBias ? { [`${i}.qBias`]: w.qBias, [`${i}.kBias`]: w.kBias!, [`${i}.vBias`]: w.vBias! } : {}),
        });
      }
      if (ffn) {
        const w = weights.ffn!;
        Object.assign(inputs, { [`${i}.postNorm`]: w.postNorm, [`${i}.gate`]: w.gate, [`${i}.up`]: w.up, [`${i}.down`]: w.down });
      }
    }
    const attrs = { ids: Array.from(ids), pos, headDim, eps: normEps, activeDim: this.activeDim, bias: this.config.attentionBias === true, heads, kvHeads, hidden, headKvMap: maps };
    const logits = tf.engine().runKernel(FusedKernel.decodeStep, inputs as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
    cache.length += 1;
    return logits;
  }

  disposeCache(cache: KvCache): void {
    disposeKv(cache.layers);
    if (cache.fixed) {
      disposeKv(cache.fixed.layers);
      tf.dispose([cache.fixed.cos, cache.fixed.sin]);
      delete cache.fixed;
    }
    cache.layers = [];
    cache.length = 0;
  }

  // ------------------------------------------------------------------ linear layers and capture hooks

  private linearInfo(layer: number, kind: LinearKind): LinearLayer {
    // shapes from the config: a streamed model answers without reading the block
    const shape = this.shapes.get(linearName(layer, kind))!;
    return { param: linearName(layer, kind), layer, kind, inFeatures: shape[1]!, outFeatures: shape[0]! };
  }

  linears(layer?: number): LinearLayer[] {
    const layers = layer === undefined ? [...Array(this.config.nLayers).keys()] : [layer];
    return layers.flatMap((l) => LINEAR_KINDS.map((k) => this.linearInfo(l, k)));
  }

  hostValues(tensor: tf.Tensor): Float32Array {
    return heapView(tensor) ?? (tensor.dataSync() as Float32Array);
  }

  capture(fn: CaptureFn): () => void {
    this.hooks.push(fn);
    return () => {
      const i = this.hooks.indexOf(fn);
      if (i >= 0) this.hooks.splice(i, 1);
    };
  }

  // ------------------------------------------------------------------ groups and masks

  groups(kinds?: readonly GroupKind[]): ParameterGroup[] {
    this.groupCache ??= computeGroups(this.config);
    return kinds ? this.groupCache.filter((g) => kinds.includes(g.kind)) : this.groupCache;
  }

  private keepOf(param: string): Uint8Array {
    let k = this.keep.get(param);
    if (!k) {
      k = new Uint8Array(this.param(param).size).fill(1);
      this.keep.set(param, k);
    }
    return k;
  }

  setElementMask(param: string, keep: Uint8Array): void {
    this.param(param);
    this.stream?.dirty.add(param);
    this.keep.set(param, this.combinedKeep(param, keep));
    this.refreshMask(param);
  }

  /** An element mask (1 keep) combined with the group masks: an element stays pruned if either says so. */
  private combinedKeep(param: string, keep: Uint8Array): Uint8Array {
    const size = this.param(param).size;
    if (keep.length !== size) {
      throw new TopiaryError('E_USAGE', `mask for "${param}" has ${keep.length} entries, the weight has ${size}`, { where: param });
    }
    const k = new Uint8Array(keep.length);
    for (let i = 0; i < keep.length; i++) k[i] = keep[i] ? 1 : 0;
    const byId = this.masked.size > 0 ? new Map(this.groups().map((g) => [g.id, g])) : undefined;
    for (const id of this.masked) for (const m of byId!.get(id)!.members) if (m.param === param) this.zeroMember(k, param, m.axis, m.indices);
    return k;
  }

  maskGroups(groupIds: readonly string[]): void {
    this.requireResident('masking parameter groups');
    const byId = new Map(this.groups().map((g) => [g.id, g]));
    for (const id of groupIds) {
      const g = byId.get(id);
      if (!g) throw new TopiaryError('E_USAGE', `no parameter group "${id}" in this model`, { where: 'groupIds', hint: 'ids come from model.groups()' });
      this.masked.add(id);
    }
    const touched = new Set<string>();
    for (const id of groupIds) {
      for (const m of byId.get(id)!.members) {
        this.zeroMember(this.keepOf(m.param), m.param, m.axis, m.indices);
        touched.add(m.param);
      }
    }
    this.activeDim = this.config.dim - [...this.masked].filter((id) => id.startsWith('hidden.')).length;
    for (const p of touched) this.refreshMask(p);
  }

  maskedGroups(): readonly string[] {
    return [...this.masked];
  }

  /** Zero one group member's slice (`indices` along `axis` of `param`) in the keep mask `k`. */
  private zeroMember(k: Uint8Array, param: string, axis: number, indices: readonly number[]): void {
    const shape = this.param(param).shape;
    if (shape.length === 1) {
      for (const i of indices) k[i] = 0;
    } else if (axis === 0) {
      const cols = shape[1]!;
      for (const r of indices) k.fill(0, r * cols, (r + 1) * cols);
    } else {
      const [rows, cols] = shape as [number, number];
      for (let r = 0; r < rows; r++) for (const c of indices) k[r * cols + c] = 0;
    }
  }

  private refreshMask(param: string): void {
    this.dropMaskTensor(param);
    this.applyMaskTo(param);
  }

  /** Forget `param`'s mask tensor after its keep mask changed (`maskTensor` makes the new one when it is needed). */
  private dropMaskTensor(param: string): void {
    this.maskTensors.get(param)?.dispose();
    this.maskTensors.delete(param);
  }

  /**
   * The mask tensor of an in-memory model's `param`, made from its keep mask on first use (a model pruned and saved
   * never needs one: a weight-sized float array and tensor per layer saved) and kept to re-apply after every
   * optimizer step. A streamed model never trains: its masks only zero the weights once (applyMaskTo), so they do
   * not stay on the heap beside the block (that would double it).
   */
  private maskTensor(param: string): tf.Tensor {
    let m = this.maskTensors.get(param);
    if (!m) {
      m = tf.tensor(Float32Array.from(this.keep.get(param)!), this.param(param).shape);
      this.maskTensors.set(param, m);
    }
    return m;
  }

  private applyMaskTo(param: string): void {
    if (!this.keep.has(param)) return;
    const p = this.param(param);
    const m = this.stream ? tf.tensor(Float32Array.from(this.keep.get(param)!), p.shape) : this.maskTensor(param);
    tf.tidy(() => p.assign(tf.mul(p, m)));
    if (this.stream) m.dispose();
  }

  applyMasks(): void {
    if (this.stream) return; // a streamed model's masks zero its weights once, when set
    for (const param of this.keep.keys()) this.applyMaskTo(param);
  }

  /** Host copies of the combined keep masks (for saving alongside a checkpoint, or inspection). */
  elementMasks(): ReadonlyMap<string, Uint8Array> {
    return this.keep;
  }

  slim(): LlamaModel {
    this.requireResident('slim()');
    const weights = new Map<string, Float32Array>();
    for (const name of this.params.keys()) weights.set(name, this.readWeight(name));
    const out = slimWeights(this.config, weights, new Set(this.masked), this.keep);
    const model = new LlamaModel(out.config, out.weights);
    for (const [param, keep] of out.keep) if (keep.some((v) => v === 0)) model.setElementMask(param, keep);
    return model;
  }

  slimMapping(): ReadonlyMap<string, string> {
    return slimGroupMapping(this.config, this.masked);
  }

  clone(): LlamaModel {
    this.requireResident('clone()');
    const weights = new Map<string, Float32Array>();
    for (const name of this.params.keys()) weights.set(name, this.readWeight(name).slice());
    const config = structuredClone(this.config);
    const dtype = loadedDtype(this.config);
    if (dtype) rememberDtype(config, dtype); // a copy is stored as the original is
    const copy = new LlamaModel(config, weights);
    if (this.masked.size > 0) copy.maskGroups([...this.masked]);
    for (const [param, keep] of this.keep) copy.setElementMask(param, keep);
    return copy;
  }

  dispose(): void {
    this.dropPositionsCache();
    if (this.stream) {
      this.stream.overlay.dispose();
      this.stream.source.close();
      for (const s of new Set(this.stream.redirected.values())) s.close();
      this.stream.resident = null;
    }
    for (const v of this.params.values()) v.dispose();
    for (const m of this.maskTensors.values()) m.dispose();
    this.params.clear();
    this.maskTensors.clear();
  }

  /** Whether every layer has the standard shape. */
  get uniform(): boolean {
    return isUniform(this.config);
  }
}

// ------------------------------------------------------------------ creation with seeded random weights

export interface CreateOptions {
  seed?: number;
  /** Standard deviation of the normal initialisation (default 0.02; o/down are scaled by 1/√(2·nLayers)). */
  initStd?: number;
}

function normalFill(n: number, std: number, rng: SeededRandom): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    // Box–Muller: two normals from two uniforms
    const u1 = Math.max(rng.next(), 1e-12);
    const u2 = rng.next();
    const r = Math.sqrt(-2 * Math.log(u1)) * std;
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
  return out;
}

/**
 * Seeded random weights drawn when each tensor is read, in any order: norm weights 1, biases 0, the matrices normal
 * from one mulberry32 stream in parameter order (each tensor starts where the previous ones' draws end — two draws per
 * pair of values — so the numbers are those of drawing them all in order). A model made from it holds no second,
 * host-side copy of its weights while its tensors are made: peak memory is the weights once (a 42M model: ~160 MB of
 * host arrays less; the generation bench's peak RSS 478 → 397 MB).
 */
class SeededWeights implements WeightSource {
  readonly path: string;
  readonly dtype = 'float32' as const;
  private readonly shapes: Map<string, number[]>;
  /** Each matrix's std and the draws before it. */
  private readonly draws = new Map<string, { std: number; before: number }>();

  constructor(
    readonly config: LlamaConfig,
    private readonly seed: number,
    std: number,
  ) {
    this.path = `random weights (seed ${seed})`;
    this.shapes = parameterShapes(config);
    let before = 0;
    for (const [name, shape] of this.shapes) {
      if (shape.length === 1) continue;
      const residual = name.endsWith('o_proj.weight') || name.endsWith('down_proj.weight');
      this.draws.set(name, { std: residual ? std / Math.sqrt(2 * Math.max(1, config.nLayers)) : std, before });
      before += 2 * Math.ceil(product(shape) / 2);
    }
  }

  read(name: string): Float32Array {
    const shape = this.shapes.get(name);
    if (!shape) throw new TopiaryError('E_FORMAT', `missing tensor "${name}"`, { file: this.path, where: name });
    const n = product(shape);
    const draw = this.draws.get(name);
    if (draw) return normalFill(n, draw.std, new SeededRandom(this.seed).skip(draw.before));
    return name.endsWith('.bias') ? new Float32Array(n) : new Float32Array(n).fill(1);
  }

  readRows(name: string, start: number, count: number): Float32Array {
    const cols = checkRows(this.path, name, this.shapes.get(name) ?? [], start, count);
    return this.read(name).slice(start * cols, (start + count) * cols);
  }

  close(): void {}
}

/** A new model with seeded random weights (norm weights 1, biases 0 as transformers initialises them). */
export function createLlama(config: CreateConfig | LlamaConfig, options: CreateOptions = {}): LlamaModel {
  const full = 'architecture' in config ? (validateConfig(config), config) : makeConfig(config);
  return new LlamaModel(full, new SeededWeights(full, options.seed ?? 0, options.initStd ?? 0.02));
}

export type { LayerShape };
export { parameterShapes };
export { blockParamNames };
