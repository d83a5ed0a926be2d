/**
 * Model configuration helpers: validation, per-layer shapes, and Hugging Face config.json mapping for the Llama
 * family as transformers defines it — LlamaForCausalLM (Llama 1/2/3/3.1/3.2, SmolLM, TinyLlama), MistralForCausalLM
 * and Qwen2ForCausalLM — including RoPE scaling (`rope_scaling`: linear, dynamic NTK, llama3).
 */
import { TopiaryError, type LayerShape, type ModelConfig } from '@topiary/kernel';
import { EMBED, FINAL_NORM, LM_HEAD, biasName, inputNormName, linearName, postNormName } from './names.js';

/** The extension key under which non-uniform per-layer sizes are stored in config.json. */
export const TOPIARY_LAYERS_KEY = 'topiary_layers';

/** The Hugging Face architectures this package reads and writes (all the same block; see `FAMILIES`). */
export type ModelFamily = 'llama' | 'mistral' | 'qwen2';

/**
 * RoPE frequency scaling, as transformers' `rope_scaling.rope_type` (modeling_rope_utils.py `ROPE_INIT_FUNCTIONS`):
 * - `linear`: every inverse frequency divided by `factor` (`_compute_linear_scaling_rope_parameters`);
 * - `dynamic`: NTK-aware, the base grows once a pass is longer than `maxPositionEmbeddings`
 *   (`_compute_dynamic_ntk_parameters`; identical to plain RoPE up to that length);
 * - `llama3`: Llama 3.1's banded rule (`_compute_llama3_parameters`): wavelengths below
 *   original/high_freq_factor unchanged, above original/low_freq_factor divided by `factor`, smooth in between.
 */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number; maxPositionEmbeddings: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

/** The rope_type values that are supported (`default` = no scaling). */
export const SUPPORTED_ROPE_TYPES = ['default', 'linear', 'dynamic', 'llama3'] as const;

/**
 * The kernel's ModelConfig plus what distinguishes the Llama-family architectures. Every field is optional: a plain
 * ModelConfig is a Llama without biases, scaling or window.
 */
export interface LlamaConfig extends ModelConfig {
  /** The Hugging Face architecture the model is saved as (absent: llama). */
  family?: ModelFamily;
  /** q, k and v projections have biases (`self_attn.{q,k,v}_proj.bias`; Qwen2). */
  attentionBias?: boolean;
  /** RoPE frequency scaling (absent: plain RoPE with ropeTheta). */
  ropeScaling?: RopeScaling;
  /**
   * A sliding attention window (Mistral, Qwen2 with use_sliding_window) that is at least maxSeqLen, so it never
   * cuts a pass the model runs: passes longer than it are refused rather than computed without the window.
   */
  slidingWindow?: number;
  /** Qwen2: layers from this index on use the window (`max_window_layers`), kept to write config.json back. */
  maxWindowLayers?: number;
}

export interface CreateConfig {
  vocabSize: number;
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads?: number;
  headDim?: number;
  hiddenDim: number;
  maxSeqLen?: number;
  normEps?: number;
  ropeTheta?: number;
  tiedEmbeddings?: boolean;
  bosId?: number;
  eosId?: number;
  layers?: readonly LayerShape[];
  family?: ModelFamily;
  attentionBias?: boolean;
  ropeScaling?: RopeScaling;
  slidingWindow?: number;
  maxWindowLayers?: number;
}

/** The family-specific fields of a config (copied as they are by makeConfig, slimming and cloning). */
export function familyFields(c: Partial<LlamaConfig> | CreateConfig): Pick<LlamaConfig, 'family' | 'attentionBias' | 'ropeScaling' | 'slidingWindow' | 'maxWindowLayers'> {
  return {
    ...(c.family !== undefined && c.family !== 'llama' ? { family: c.family } : {}),
    ...(c.attentionBias ? { attentionBias: true } : {}),
    ...(c.ropeScaling ? { ropeScaling: { ...c.ropeScaling } } : {}),
    ...(c.slidingWindow !== undefined ? { slidingWindow: c.slidingWindow } : {}),
    ...(c.maxWindowLayers !== undefined ? { maxWindowLayers: c.maxWindowLayers } : {}),
  };
}

/**
 * What a reshaped model keeps of the config it came from (slimming, padding): vocabulary, context, norm, RoPE, ids,
 * tying and the family fields — everything but the sizes of its layers.
 */
export function keptFields(c: LlamaConfig): Pick<CreateConfig, 'vocabSize' | 'maxSeqLen' | 'normEps' | 'ropeTheta' | 'tiedEmbeddings' | 'bosId' | 'eosId'> & ReturnType<typeof familyFields> {
  return {
    vocabSize: c.vocabSize,
    maxSeqLen: c.maxSeqLen,
    normEps: c.normEps,
    ropeTheta: c.ropeTheta,
    tiedEmbeddings: c.tiedEmbeddings,
    bosId: c.bosId,
    eosId: c.eosId,
    ...familyFields(c),
  };
}

/** Fill defaults and validate; the result is what the model keeps. */
export function makeConfig(c: CreateConfig, where = 'config'): LlamaConfig {
  const nKvHeads = c.nKvHeads ?? c.nHeads;
  const headDim = c.headDim ?? (c.nHeads > 0 ? c.dim / c.nHeads : 0);
  const config: LlamaConfig = {
    architecture: 'llama',
    vocabSize: c.vocabSize,
    dim: c.dim,
    nLayers: c.nLayers,
    nHeads: c.nHeads,
    nKvHeads,
    headDim,
    hiddenDim: c.hiddenDim,
    maxSeqLen: c.maxSeqLen ?? 2048,
    normEps: c.normEps ?? 1e-5,
    ropeTheta: c.ropeTheta ?? 10000,
    tiedEmbeddings: c.tiedEmbeddings ?? true,
    bosId: c.bosId ?? 1,
    eosId: c.eosId ?? 2,
    ...familyFields(c),
  };
  if (c.layers !== undefined) config.layers = c.layers.map((l) => ({ ...l, ...(l.headKvMap ? { headKvMap: [...l.headKvMap] } : {}) }));
  validateConfig(config, where);
  return config;
}

/** Upper bound for layer and head counts (real LLaMA-family models have at most a few hundred). */
const MAX_COUNT = 65536;

function positiveInt(v: unknown, field: string, where: string, allowZero = false): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < (allowZero ? 0 : 1)) {
    throw new TopiaryError('E_CONFIG', `${field} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${JSON.stringify(v)}`, {
      where: `${where}.${field}`,
    });
  }
}

export function validateConfig(c: LlamaConfig, where = 'config'): void {
  positiveInt(c.vocabSize, 'vocabSize', where);
  positiveInt(c.dim, 'dim', where);
  positiveInt(c.nLayers, 'nLayers', where, true);
  positiveInt(c.nHeads, 'nHeads', where, true);
  positiveInt(c.nKvHeads, 'nKvHeads', where, true);
  positiveInt(c.headDim, 'headDim', where);
  positiveInt(c.hiddenDim, 'hiddenDim', where, true);
  positiveInt(c.maxSeqLen, 'maxSeqLen', where);
  // Per-layer and per-head lists are built from these counts before any weight is read: a damaged config.json
  // (num_hidden_layers: 2147483648) must be refused here, not after allocating a list that long.
  for (const [field, v] of [['nLayers', c.nLayers], ['nHeads', c.nHeads], ['nKvHeads', c.nKvHeads]] as const) {
    if (v > MAX_COUNT) {
      throw new TopiaryError('E_CONFIG', `${field} = ${v} is implausible (more than ${MAX_COUNT})`, { where: `${where}.${field}`, hint: 'the config is damaged' });
    }
  }
  if (c.headDim % 2 !== 0) throw new TopiaryError('E_CONFIG', `headDim must be even for rotary embeddings, got ${c.headDim}`, { where: `${where}.headDim` });
  if (!(c.normEps > 0)) throw new TopiaryError('E_CONFIG', `normEps must be > 0`, { where: `${where}.normEps` });
  if (!(c.ropeTheta > 0)) throw new TopiaryError('E_CONFIG', `ropeTheta must be > 0`, { where: `${where}.ropeTheta` });
  validateFamilyFields(c, where);
  if (c.layers === undefined) {
    if (c.nKvHeads > 0 && c.nHeads % c.nKvHeads !== 0) {
      throw new TopiaryError('E_CONFIG', `nHeads (${c.nHeads}) must be a multiple of nKvHeads (${c.nKvHeads})`, { where: `${where}.nKvHeads` });
    }
    return;
  }
  if (c.layers.length !== c.nLayers) {
    throw new TopiaryError('E_CONFIG', `layers has ${c.layers.length} entries but nLayers is ${c.nLayers}`, { where: `${where}.layers` });
  }
  c.layers.forEach((l, i) => {
    const w = `${where}.layers[${i}]`;
    positiveInt(l.nHeads, 'nHeads', w, true);
    positiveInt(l.nKvHeads, 'nKvHeads', w, true);
    positiveInt(l.hiddenDim, 'hiddenDim', w, true);
    const map = headKvMap(l);
    if (map.length !== l.nHeads) throw new TopiaryError('E_CONFIG', `headKvMap has ${map.length} entries for ${l.nHeads} heads`, { where: `${w}.headKvMap` });
    for (const k of map) {
      if (!Number.isInteger(k) || k < 0 || k >= l.nKvHeads) {
        throw new TopiaryError('E_CONFIG', `headKvMap entry ${k} is not a kv head of this layer (0..${l.nKvHeads - 1})`, { where: `${w}.headKvMap` });
      }
    }
  });
}

/** The shape of layer i (uniform configs give the same for every layer). */
export function layerShape(c: ModelConfig, i: number): LayerShape {
  return c.layers?.[i] ?? { nHeads: c.nHeads, nKvHeads: c.nKvHeads, hiddenDim: c.hiddenDim };
}

/** For each query head, its kv head: explicit map, or the standard GQA rule h / (nHeads / nKvHeads). */
export function headKvMap(l: LayerShape): number[] {
  if (l.headKvMap) return [...l.headKvMap];
  if (l.nKvHeads === 0 || l.nHeads === 0) return [];
  if (l.nHeads % l.nKvHeads !== 0) {
    throw new TopiaryError('E_CONFIG', `nHeads (${l.nHeads}) is not a multiple of nKvHeads (${l.nKvHeads}) and no headKvMap is given`, { where: 'headKvMap' });
  }
  const g = l.nHeads / l.nKvHeads;
  return Array.from({ length: l.nHeads }, (_, h) => Math.floor(h / g));
}

/** Whether every layer has the standard shape (then config.json stays a plain LlamaForCausalLM config). */
export function isUniform(c: ModelConfig): boolean {
  if (c.layers === undefined) return true;
  if (c.nKvHeads === 0 ? c.nHeads !== 0 : c.nHeads % c.nKvHeads !== 0) return false;
  return c.layers.every((l) => {
    if (l.nHeads !== c.nHeads || l.nKvHeads !== c.nKvHeads || l.hiddenDim !== c.hiddenDim) return false;
    if (!l.headKvMap) return true;
    const std = headKvMap({ nHeads: l.nHeads, nKvHeads: l.nKvHeads, hiddenDim: l.hiddenDim });
    return l.headKvMap.every((k, i) => k === std[i]);
  });
}

/** The family fields' own checks (scaling factors, the window against the context). */
function validateFamilyFields(c: LlamaConfig, where: string): void {
  if (c.family !== undefined && !(c.family in FAMILIES)) {
    throw new TopiaryError('E_CONFIG', `family "${String(c.family)}" is not one of ${Object.keys(FAMILIES).join(', ')}`, { where: `${where}.family` });
  }
  const s = c.ropeScaling;
  if (s !== undefined) {
    const w = `${where}.ropeScaling`;
    if (!['linear', 'dynamic', 'llama3'].includes(s.type)) {
      throw new TopiaryError('E_CONFIG', `ropeScaling.type "${String(s.type)}" is not supported (linear, dynamic, llama3)`, { where: `${w}.type` });
    }
    if (!(Number.isFinite(s.factor) && s.factor > 0)) throw new TopiaryError('E_CONFIG', `factor must be a number > 0, got ${JSON.stringify(s.factor)}`, { where: `${w}.factor` });
    if (s.type === 'dynamic') positiveInt(s.maxPositionEmbeddings, 'maxPositionEmbeddings', w);
    if (s.type === 'llama3') {
      positiveInt(s.originalMaxPositionEmbeddings, 'originalMaxPositionEmbeddings', w);
      for (const f of ['lowFreqFactor', 'highFreqFactor'] as const) {
        if (!(Number.isFinite(s[f]) && s[f] > 0)) throw new TopiaryError('E_CONFIG', `${f} must be a number > 0, got ${JSON.stringify(s[f])}`, { where: `${w}.${f}` });
      }
      if (!(s.highFreqFactor > s.lowFreqFactor)) {
        throw new TopiaryError('E_CONFIG', `highFreqFactor (${s.highFreqFactor}) must be greater than lowFreqFactor (${s.lowFreqFactor})`, { where: `${w}.highFreqFactor` });
      }
    }
  }
  if (c.slidingWindow !== undefined) {
    positiveInt(c.slidingWindow, 'slidingWindow', where);
    if (c.slidingWindow < c.maxSeqLen) {
      throw new TopiaryError('E_CONFIG', `slidingWindow ${c.slidingWindow} is shorter than maxSeqLen ${c.maxSeqLen}: sliding-window attention is not implemented`, {
        where: `${where}.slidingWindow`,
      });
    }
  }
  if (c.maxWindowLayers !== undefined) positiveInt(c.maxWindowLayers, 'maxWindowLayers', where, true);
}

// ----------------------------------------------------------------------------- Hugging Face config.json

type Json = Record<string, unknown>;

/**
 * The supported architectures: `architectures[0]` and `model_type` of each, and transformers' defaults for fields a
 * config.json may leave out (configuration_llama.py / configuration_mistral.py / configuration_qwen2.py).
 */
const FAMILIES: Record<ModelFamily, { architecture: string; aliases: readonly string[]; maxPositions: number }> = {
  llama: { architecture: 'LlamaForCausalLM', aliases: ['LLaMAForCausalLM'], maxPositions: 2048 },
  mistral: { architecture: 'MistralForCausalLM', aliases: [], maxPositions: 4096 * 32 },
  qwen2: { architecture: 'Qwen2ForCausalLM', aliases: [], maxPositions: 32768 },
};
/** MistralConfig's default `sliding_window` when config.json has no such field (null turns the window off). */
const MISTRAL_DEFAULT_WINDOW = 4096;

function supportedList(): string {
  return (Object.keys(FAMILIES) as ModelFamily[]).map((f) => `${FAMILIES[f].architecture} (model_type "${f}")`).join(', ');
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(j: Json, key: string, file: string, fallback?: number, where = key): number {
  const v = j[key];
  if ((v === undefined || v === null) && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new TopiaryError('E_CONFIG', v === undefined ? `missing field "${key}"` : `field "${key}" must be a number, got ${JSON.stringify(v)}`, {
      file,
      where,
    });
  }
  return v;
}

/** The family from `architectures[0]` and `model_type` (either may be absent; both absent: llama). */
function familyOf(j: Json, file: string): ModelFamily {
  const modelType = j.model_type;
  let fromType: ModelFamily | undefined;
  if (modelType !== undefined && modelType !== null) {
    if (typeof modelType !== 'string' || !(modelType in FAMILIES)) {
      throw new TopiaryError('E_CONFIG', `model_type ${JSON.stringify(modelType)} is not supported (supported: ${supportedList()})`, { file, where: 'model_type' });
    }
    fromType = modelType as ModelFamily;
  }
  let fromArch: ModelFamily | undefined;
  const archs = j.architectures;
  if (archs !== undefined && archs !== null) {
    const first: unknown = Array.isArray(archs) ? archs[0] : archs;
    fromArch = (Object.keys(FAMILIES) as ModelFamily[]).find((f) => FAMILIES[f].architecture === first || FAMILIES[f].aliases.includes(first as string));
    if (!fromArch) {
      throw new TopiaryError('E_CONFIG', `architectures[0] ${JSON.stringify(first)} is not supported (supported: ${supportedList()})`, { file, where: 'architectures[0]' });
    }
  }
  if (fromType && fromArch && fromType !== fromArch) {
    throw new TopiaryError('E_CONFIG', `architectures[0] is ${FAMILIES[fromArch].architecture} but model_type is "${fromType}"`, { file, where: 'architectures[0]' });
  }
  return fromType ?? fromArch ?? 'llama';
}

/**
 * RoPE from `rope_scaling` (transformers ≤ 4.x; `type` is the older spelling of `rope_type`) or `rope_parameters`
 * (transformers 5, which also carries `rope_theta`). Unknown types are refused naming the field and listing the
 * supported ones.
 */
function ropeOf(j: Json, file: string, maxPositions: number): { theta: number; scaling?: RopeScaling } {
  let field = 'rope_scaling';
  let r: unknown = j.rope_scaling;
  let theta = num(j, 'rope_theta', file, 10000);
  if ((r === undefined || r === null) && isObject(j.rope_parameters)) {
    field = 'rope_parameters';
    r = j.rope_parameters;
    theta = num(r as Json, 'rope_theta', file, theta, `${field}.rope_theta`);
  }
  if (r === undefined || r === null) return { theta };
  if (!isObject(r)) throw new TopiaryError('E_CONFIG', `${field} must be an object or null`, { file, where: field });
  const typeKey = r.rope_type !== undefined ? 'rope_type' : 'type';
  const type = r[typeKey] ?? 'default';
  if (typeof type !== 'string' || !(SUPPORTED_ROPE_TYPES as readonly string[]).includes(type)) {
    throw new TopiaryError('E_CONFIG', `${field}.${typeKey} ${JSON.stringify(type)} is not supported (supported: ${SUPPORTED_ROPE_TYPES.join(', ')})`, {
      file,
      where: `${field}.${typeKey}`,
      hint: 'yarn, longrope, ntk and the other RoPE variants are not implemented',
    });
  }
  if (type === 'default') return { theta };
  const at = (key: string): number => num(r as Json, key, file, undefined, `${field}.${key}`);
  const factor = at('factor');
  if (!(factor > 0)) throw new TopiaryError('E_CONFIG', `${field}.factor must be > 0, got ${factor}`, { file, where: `${field}.factor` });
  if (type === 'linear') return { theta, scaling: { type, factor } };
  if (type === 'dynamic') return { theta, scaling: { type, factor, maxPositionEmbeddings: maxPositions } };
  // _compute_llama3_parameters reads these four; the band edges need high_freq_factor > low_freq_factor
  const low = at('low_freq_factor');
  const high = at('high_freq_factor');
  const original = at('original_max_position_embeddings');
  if (!(low > 0)) throw new TopiaryError('E_CONFIG', `${field}.low_freq_factor must be > 0, got ${low}`, { file, where: `${field}.low_freq_factor` });
  if (!(high > low)) {
    throw new TopiaryError('E_CONFIG', `${field}.high_freq_factor (${high}) must be greater than low_freq_factor (${low})`, { file, where: `${field}.high_freq_factor` });
  }
  if (!(Number.isInteger(original) && original > 0)) {
    throw new TopiaryError('E_CONFIG', `${field}.original_max_position_embeddings must be a positive integer, got ${original}`, { file, where: `${field}.original_max_position_embeddings` });
  }
  const scaling: RopeScaling = { type: 'llama3', factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositionEmbeddings: original };
  return { theta, scaling };
}

/**
 * The sliding window a family applies, or undefined when none of its layers has one: Mistral's `sliding_window`
 * (absent = 4096, null = none; modeling_mistral.py applies it to every layer), Qwen2's when `use_sliding_window` is
 * true, on layers from `max_window_layers` on (or those `layer_types` names "sliding_attention").
 */
function windowOf(j: Json, family: ModelFamily, nLayers: number, file: string): { window?: number; field: string; fromLayer?: number } {
  if (family === 'llama') return { field: 'sliding_window' };
  if (family === 'mistral') {
    const w = j.sliding_window === undefined ? MISTRAL_DEFAULT_WINDOW : j.sliding_window;
    if (w === null) return { field: 'sliding_window' };
    return { window: num(j, 'sliding_window', file, MISTRAL_DEFAULT_WINDOW), field: 'sliding_window' };
  }
  if (j.use_sliding_window !== true || j.sliding_window === null || j.sliding_window === undefined) return { field: 'use_sliding_window' };
  let fromLayer = num(j, 'max_window_layers', file, 28);
  if (Array.isArray(j.layer_types)) {
    const first = j.layer_types.indexOf('sliding_attention');
    fromLayer = first < 0 ? nLayers : first;
  }
  if (fromLayer >= nLayers) return { field: 'use_sliding_window' };
  return { window: num(j, 'sliding_window', file), field: 'sliding_window', fromLayer };
}

/**
 * Parse a Hugging Face config.json of LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM (plus the
 * topiary_layers extension). What the model cannot compute exactly is refused with E_CONFIG naming the field.
 */
export function configFromHf(j: Json, file: string): LlamaConfig {
  const family = familyOf(j, file);
  const defaults = FAMILIES[family];
  const act = j.hidden_act;
  if (act !== undefined && act !== 'silu') throw new TopiaryError('E_CONFIG', `hidden_act "${String(act)}" is not supported (only "silu")`, { file, where: 'hidden_act' });
  if (j.mlp_bias === true) throw new TopiaryError('E_CONFIG', 'biases in the MLP (mlp_bias: true) are not supported', { file, where: 'mlp_bias' });
  // LlamaAttention gives o_proj a bias too when attention_bias is set; only Qwen2's q/k/v biases are implemented
  if (family !== 'qwen2' && j.attention_bias === true) {
    throw new TopiaryError('E_CONFIG', 'attention_bias: true (biases on q, k, v and o_proj) is not supported; only Qwen2ForCausalLM’s q/k/v biases are', {
      file,
      where: 'attention_bias',
    });
  }
  if (typeof j.partial_rotary_factor === 'number' && j.partial_rotary_factor !== 1) {
    throw new TopiaryError('E_CONFIG', `partial_rotary_factor ${j.partial_rotary_factor} is not supported (RoPE on every head channel only)`, { file, where: 'partial_rotary_factor' });
  }
  const nHeads = num(j, 'num_attention_heads', file);
  const dim = num(j, 'hidden_size', file);
  const nLayers = num(j, 'num_hidden_layers', file);
  const maxSeqLen = num(j, 'max_position_embeddings', file, defaults.maxPositions);
  const { theta, scaling } = ropeOf(j, file, maxSeqLen);
  const win = windowOf(j, family, nLayers, file);
  if (win.window !== undefined && win.window < maxSeqLen) {
    throw new TopiaryError('E_CONFIG', `${win.field} ${win.window} is shorter than max_position_embeddings ${maxSeqLen}: sliding-window attention is not implemented`, {
      file,
      where: win.field,
      hint: family === 'mistral' ? 'set "sliding_window": null (Mistral v0.2 and later have none) or lower max_position_embeddings to the window' : 'set "use_sliding_window": false, or lower max_position_embeddings to the window',
    });
  }
  const layersRaw = j[TOPIARY_LAYERS_KEY];
  let layers: LayerShape[] | undefined;
  if (layersRaw !== undefined) {
    if (!Array.isArray(layersRaw)) throw new TopiaryError('E_CONFIG', `${TOPIARY_LAYERS_KEY} must be an array`, { file, where: TOPIARY_LAYERS_KEY });
    layers = layersRaw.map((l: unknown, i: number) => {
      const o = (l ?? {}) as Json;
      const w = `${TOPIARY_LAYERS_KEY}[${i}]`;
      const shape: LayerShape = {
        nHeads: num(o, 'num_attention_heads', file),
        nKvHeads: num(o, 'num_key_value_heads', file),
        hiddenDim: num(o, 'intermediate_size', file),
      };
      if (o.head_kv_map !== undefined) {
        if (!Array.isArray(o.head_kv_map)) throw new TopiaryError('E_CONFIG', 'head_kv_map must be an array', { file, where: `${w}.head_kv_map` });
        shape.headKvMap = o.head_kv_map as number[];
      }
      return shape;
    });
  }
  const eos = Array.isArray(j.eos_token_id) ? (j.eos_token_id[0] as unknown) : j.eos_token_id;
  try {
    return makeConfig(
      {
        vocabSize: num(j, 'vocab_size', file),
        dim,
        nLayers,
        nHeads,
        nKvHeads: num(j, 'num_key_value_heads', file, nHeads),
        headDim: num(j, 'head_dim', file, dim / nHeads),
        hiddenDim: num(j, 'intermediate_size', file),
        maxSeqLen,
        normEps: num(j, 'rms_norm_eps', file, 1e-6),
        ropeTheta: theta,
        tiedEmbeddings: j.tie_word_embeddings === true,
        bosId: typeof j.bos_token_id === 'number' ? j.bos_token_id : 1,
        eosId: typeof eos === 'number' ? eos : 2,
        ...(layers ? { layers } : {}),
        family,
        ...(family === 'qwen2' ? { attentionBias: true } : {}),
        ...(scaling ? { ropeScaling: scaling } : {}),
        ...(win.window !== undefined ? { slidingWindow: win.window } : {}),
        ...(win.fromLayer !== undefined ? { maxWindowLayers: win.fromLayer } : {}),
      },
      'config.json',
    );
  } catch (e) {
    if (e instanceof TopiaryError) throw e.inFile(file);
    throw e;
  }
}

/** rope_scaling as transformers writes it, or null. */
function ropeScalingToHf(s: RopeScaling | undefined): Json | null {
  if (!s) return null;
  if (s.type === 'llama3') {
    return {
      rope_type: 'llama3',
      factor: s.factor,
      low_freq_factor: s.lowFreqFactor,
      high_freq_factor: s.highFreqFactor,
      original_max_position_embeddings: s.originalMaxPositionEmbeddings,
    };
  }
  return { rope_type: s.type, factor: s.factor };
}

/**
 * A config.json object of the model's family (LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM) with its
 * standard fields, plus `topiary_layers` when layers differ.
 */
export function configToHf(c: LlamaConfig, dtype: 'float32' | 'float16'): Json {
  const family = c.family ?? 'llama';
  const j: Json = {
    architectures: [FAMILIES[family].architecture],
    model_type: family,
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.headDim,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    rope_scaling: ropeScalingToHf(c.ropeScaling),
    hidden_act: 'silu',
    tie_word_embeddings: c.tiedEmbeddings,
    bos_token_id: c.bosId,
    eos_token_id: c.eosId,
    torch_dtype: dtype,
  };
  if (family === 'llama') Object.assign(j, { attention_bias: false, mlp_bias: false });
  if (family === 'mistral') j.sliding_window = c.slidingWindow ?? null;
  if (family === 'qwen2') {
    Object.assign(j, { use_sliding_window: c.slidingWindow !== undefined, sliding_window: c.slidingWindow ?? null, max_window_layers: c.maxWindowLayers ?? c.nLayers });
  }
  if (!isUniform(c) && c.layers) {
    j[TOPIARY_LAYERS_KEY] = c.layers.map((l) => ({
      num_attention_heads: l.nHeads,
      num_key_value_heads: l.nKvHeads,
      intermediate_size: l.hiddenDim,
      head_kv_map: headKvMap(l),
    }));
  }
  return j;
}

/**
 * The shape of every parameter of a config, in a stable order (embedding, blocks, final norm, head); with attention
 * biases, each of q, k and v is followed by its bias.
 */
export function parameterShapes(config: LlamaConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const { dim, headDim, vocabSize } = config;
  const bias = config.attentionBias === true;
  shapes.set(EMBED, [vocabSize, dim]);
  for (let i = 0; i < config.nLayers; i++) {
    const l = layerShape(config, i);
    shapes.set(inputNormName(i), [dim]);
    shapes.set(linearName(i, 'q'), [l.nHeads * headDim, dim]);
    if (bias) shapes.set(biasName(i, 'q'), [l.nHeads * headDim]);
    shapes.set(linearName(i, 'k'), [l.nKvHeads * headDim, dim]);
    if (bias) shapes.set(biasName(i, 'k'), [l.nKvHeads * headDim]);
    shapes.set(linearName(i, 'v'), [l.nKvHeads * headDim, dim]);
    if (bias) shapes.set(biasName(i, 'v'), [l.nKvHeads * headDim]);
    shapes.set(linearName(i, 'o'), [dim, l.nHeads * headDim]);
    shapes.set(postNormName(i), [dim]);
    shapes.set(linearName(i, 'gate'), [l.hiddenDim, dim]);
    shapes.set(linearName(i, 'up'), [l.hiddenDim, dim]);
    shapes.set(linearName(i, 'down'), [dim, l.hiddenDim]);
  }
  shapes.set(FINAL_NORM, [dim]);
  if (!config.tiedEmbeddings) shapes.set(LM_HEAD, [vocabSize, dim]);
  return shapes;
}
