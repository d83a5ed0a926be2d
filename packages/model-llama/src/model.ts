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
import * as tf from '@tensorflow/tfjs';
import { TopiaryError, type CaptureFn, type CausalLM, type GroupKind, type LayerShape, type LinearKind, type LinearLayer, type ParameterGroup } from '@topiary/kernel';
import { SeededRandom } from '@topiary/linalg';
import { headKvMap, isUniform, layerShape, makeConfig, parameterShapes, validateConfig, type CreateConfig, type LlamaConfig } from './config.js';
import { EMBED, FINAL_NORM, LINEAR_KINDS, LM_HEAD, biasName, blockParamNames, inputNormName, linearName, postNormName } from './names.js';
import { causalMask, embedding, linear2d, linearCrossEntropy, rmsNorm, ropeTables } from './ops.js';
import { computeGroups, slimWeights } from './groups.js';
import { blockForward, trainableBlock, type BlockGeometry, type BlockWeights } from './block-grad.js';

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
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
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
  private readonly masked = new Set<string>();
  private groupCache: ParameterGroup[] | null = null;
  /** Hidden channels that are not masked: RMSNorm averages over these only (see ops.rmsNorm). */
  private activeDim: number;

  /** Build from a config and host weights keyed by HF name (each [out, in], row-major). Validates every shape. */
  constructor(config: LlamaConfig, weights: ReadonlyMap<string, Float32Array>, where = 'model') {
    validateConfig(config);
    this.config = config;
    this.activeDim = config.dim;
    for (const [name, shape] of parameterShapes(config)) {
      const data = weights.get(name);
      if (data === undefined) throw new TopiaryError('E_FORMAT', `missing tensor "${name}"`, { file: where, where: name });
      if (data.length !== product(shape)) {
        throw new TopiaryError('E_FORMAT', `tensor "${name}" has ${data.length} values, the config needs [${shape.join(', ')}]`, {
          file: where,
          where: name,
          hint: 'the weights do not match config.json',
        });
      }
      const initial = tf.tensor(data, shape);
      this.params.set(name, tf.variable(initial, true, freeVariableName(name)));
      initial.dispose(); // the variable holds its own reference to the data
    }
  }

  // ------------------------------------------------------------------ parameters

  parameters(): ReadonlyMap<string, tf.Variable> {
    return this.params;
  }

  parameterCount(): number {
    let n = 0;
    for (const v of this.params.values()) n += v.size;
    return n;
  }

  get numBlocks(): number {
    return this.config.nLayers;
  }

  private param(name: string): tf.Variable {
    const p = this.params.get(name);
    if (p === undefined) throw new TopiaryError('E_USAGE', `the model has no parameter "${name}"`, { where: name });
    return p;
  }

  readWeight(param: string): Float32Array {
    return this.param(param).dataSync() as Float32Array;
  }

  writeWeight(param: string, data: Float32Array): void {
    const p = this.param(param);
    if (data.length !== p.size) {
      throw new TopiaryError('E_USAGE', `writeWeight: ${data.length} values for "${param}" of shape [${p.shape.join(', ')}]`, { where: param });
    }
    tf.tidy(() => p.assign(tf.tensor(data, p.shape)));
    this.applyMaskTo(param);
  }

  // ------------------------------------------------------------------ forward

  private runHooks(layer: number, kind: LinearKind, x: tf.Tensor2D): void {
    if (this.hooks.length === 0) return;
    const info = this.linearInfo(layer, kind);
    for (const hook of this.hooks) hook(info, x);
  }

  private blockMasked(i: number): boolean {
    return this.masked.has(`layers.${i}`);
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
  private runBlock(i: number, x: tf.Tensor2D, b: number, t: number, start: number, cache: KvCache | null, pos?: Positions): tf.Tensor2D {
    if (this.blockMasked(i)) return x;
    const shape = layerShape(this.config, i);
    if (shape.nHeads === 0 && shape.hiddenDim === 0) return x;
    const { headDim, normEps } = this.config;
    pos ??= this.positions(start, t);
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
    const out = blockForward(x, weights, geometry, { tap, ...(cache ? { cache: { past: cache.layers[i] } } : {}) });
    if (cache && out.kv) cache.layers[i] = { k: tf.keep(out.kv.k), v: tf.keep(out.kv.v) };
    return out.y;
  }

  private embed2d(ids: tf.Tensor2D): tf.Tensor2D {
    const flat = tf.reshape(tf.cast(ids, 'int32'), [-1]) as tf.Tensor1D;
    return embedding(this.param(EMBED) as tf.Variable<tf.Rank.R2>, flat);
  }

  /** The final norm's output and the output projection (the tied embedding or lm_head). */
  private headInputs(x: tf.Tensor2D): { h: tf.Tensor2D; weight: tf.Tensor2D } {
    const h = rmsNorm(x, this.param(FINAL_NORM) as tf.Variable<tf.Rank.R1>, this.config.normEps, this.activeDim);
    return { h, weight: this.param(this.config.tiedEmbeddings ? EMBED : LM_HEAD) as tf.Variable<tf.Rank.R2> };
  }

  private head2d(x: tf.Tensor2D): tf.Tensor2D {
    const { h, weight } = this.headInputs(x);
    return linear2d(h, weight);
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

  loss(ids: tf.Tensor2D): tf.Scalar {
    const [b, t] = ids.shape;
    if (t < 2) throw new TopiaryError('E_USAGE', `loss needs sequences of at least 2 tokens, got ${t}`, { where: 'ids' });
    return tf.tidy(() => {
      const inputs = tf.slice(ids, [0, 0], [b, t - 1]);
      const targets = tf.reshape(tf.cast(tf.slice(ids, [0, 1], [b, t - 1]), 'int32'), [-1]) as tf.Tensor1D;
      // the loss never materialises the whole [b·t, vocab] logits (see linearCrossEntropy)
      const { h, weight } = this.headInputs(this.hidden2d(inputs));
      return linearCrossEntropy(h, weight, targets);
    });
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
    const [b, t] = ids.shape;
    if (cache.length + t > this.config.maxSeqLen) {
      throw new TopiaryError('E_USAGE', `sequence of ${cache.length + t} tokens exceeds maxSeqLen ${this.config.maxSeqLen}`, { where: 'maxSeqLen' });
    }
    const old = cache.layers.slice();
    const out = tf.tidy(() => {
      const logits = this.logits2d(ids, cache.length, cache);
      return tf.reshape(tf.slice(tf.reshape(logits, [b, t, -1]), [0, t - 1, 0], [b, 1, -1]), [b, -1]) as tf.Tensor2D;
    });
    for (const entry of old) {
      entry?.k.dispose();
      entry?.v.dispose();
    }
    cache.length += t;
    return out;
  }

  disposeCache(cache: KvCache): void {
    for (const entry of cache.layers) {
      entry?.k.dispose();
      entry?.v.dispose();
    }
    cache.layers = [];
    cache.length = 0;
  }

  // ------------------------------------------------------------------ linear layers and capture hooks

  private linearInfo(layer: number, kind: LinearKind): LinearLayer {
    const shape = this.param(linearName(layer, kind)).shape;
    return { param: linearName(layer, kind), layer, kind, inFeatures: shape[1]!, outFeatures: shape[0]! };
  }

  linears(layer?: number): LinearLayer[] {
    const layers = layer === undefined ? [...Array(this.config.nLayers).keys()] : [layer];
    return layers.flatMap((l) => LINEAR_KINDS.map((k) => this.linearInfo(l, k)));
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
    const p = this.param(param);
    if (keep.length !== p.size) {
      throw new TopiaryError('E_USAGE', `mask for "${param}" has ${keep.length} entries, the weight has ${p.size}`, { where: param });
    }
    // Element masks combine with group masks: an element stays pruned if either says so.
    const k = new Uint8Array(keep.length);
    for (let i = 0; i < keep.length; i++) k[i] = keep[i] ? 1 : 0;
    this.keep.set(param, k);
    for (const id of this.masked) this.zeroGroupInKeep(id, param);
    this.refreshMask(param);
  }

  maskGroups(groupIds: readonly string[]): void {
    const byId = new Map(this.groups().map((g) => [g.id, g]));
    for (const id of groupIds) {
      const g = byId.get(id);
      if (!g) throw new TopiaryError('E_USAGE', `no parameter group "${id}" in this model`, { where: 'groupIds', hint: 'ids come from model.groups()' });
      this.masked.add(id);
    }
    const touched = new Set<string>();
    for (const id of groupIds) {
      for (const m of byId.get(id)!.members) {
        this.zeroMember(m.param, m.axis, m.indices);
        touched.add(m.param);
      }
    }
    this.activeDim = this.config.dim - [...this.masked].filter((id) => id.startsWith('hidden.')).length;
    for (const p of touched) this.refreshMask(p);
  }

  maskedGroups(): readonly string[] {
    return [...this.masked];
  }

  private zeroGroupInKeep(id: string, param: string): void {
    const g = this.groups().find((x) => x.id === id);
    for (const m of g?.members ?? []) if (m.param === param) this.zeroMember(m.param, m.axis, m.indices);
  }

  private zeroMember(param: string, axis: number, indices: readonly number[]): void {
    const k = this.keepOf(param);
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
    this.maskTensors.get(param)?.dispose();
    const p = this.param(param);
    this.maskTensors.set(param, tf.tensor(Float32Array.from(this.keepOf(param)), p.shape));
    this.applyMaskTo(param);
  }

  private applyMaskTo(param: string): void {
    const m = this.maskTensors.get(param);
    if (!m) return;
    const p = this.param(param);
    tf.tidy(() => p.assign(tf.mul(p, m)));
  }

  applyMasks(): void {
    for (const param of this.maskTensors.keys()) this.applyMaskTo(param);
  }

  /** Host copies of the combined keep masks (for saving alongside a checkpoint, or inspection). */
  elementMasks(): ReadonlyMap<string, Uint8Array> {
    return this.keep;
  }

  slim(): LlamaModel {
    const weights = new Map<string, Float32Array>();
    for (const name of this.params.keys()) weights.set(name, this.readWeight(name));
    const out = slimWeights(this.config, weights, new Set(this.masked), this.keep);
    const model = new LlamaModel(out.config, out.weights);
    for (const [param, keep] of out.keep) if (keep.some((v) => v === 0)) model.setElementMask(param, keep);
    return model;
  }

  clone(): LlamaModel {
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

/** A new model with seeded random weights (norm weights 1, biases 0 as transformers initialises them). */
export function createLlama(config: CreateConfig | LlamaConfig, options: CreateOptions = {}): LlamaModel {
  const full = 'architecture' in config ? (validateConfig(config), config) : makeConfig(config);
  const rng = new SeededRandom(options.seed ?? 0);
  const std = options.initStd ?? 0.02;
  const weights = new Map<string, Float32Array>();
  for (const [name, shape] of parameterShapes(full)) {
    const n = product(shape);
    if (name.endsWith('.bias')) weights.set(name, new Float32Array(n));
    else if (shape.length === 1) weights.set(name, new Float32Array(n).fill(1));
    else {
      const residual = name.endsWith('o_proj.weight') || name.endsWith('down_proj.weight');
      weights.set(name, normalFill(n, residual ? std / Math.sqrt(2 * Math.max(1, full.nLayers)) : std, rng));
    }
  }
  return new LlamaModel(full, weights);
}

export type { LayerShape };
export { parameterShapes };
export { blockParamNames };
