/** Model configuration helpers: validation, per-layer shapes, and Hugging Face config.json mapping. */
import { TopiaryError, type LayerShape, type ModelConfig } from '@topiary/kernel';
import { EMBED, FINAL_NORM, LM_HEAD, inputNormName, linearName, postNormName } from './names.js';

/** The extension key under which non-uniform per-layer sizes are stored in config.json. */
export const TOPIARY_LAYERS_KEY = 'topiary_layers';

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
}

/** Fill defaults and validate; the result is what the model keeps. */
export function makeConfig(c: CreateConfig, where = 'config'): ModelConfig {
  const nKvHeads = c.nKvHeads ?? c.nHeads;
  const headDim = c.headDim ?? (c.nHeads > 0 ? c.dim / c.nHeads : 0);
  const config: ModelConfig = {
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

export function validateConfig(c: ModelConfig, where = 'config'): void {
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

// ----------------------------------------------------------------------------- Hugging Face config.json

type Json = Record<string, unknown>;

function num(j: Json, key: string, file: string, fallback?: number): number {
  const v = j[key];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new TopiaryError('E_CONFIG', v === undefined ? `missing field "${key}"` : `field "${key}" must be a number, got ${JSON.stringify(v)}`, {
      file,
      where: key,
    });
  }
  return v;
}

/** Parse a Hugging Face LlamaForCausalLM config.json (plus the topiary_layers extension). */
export function configFromHf(j: Json, file: string): ModelConfig {
  const modelType = j.model_type;
  if (modelType !== undefined && modelType !== 'llama') {
    throw new TopiaryError('E_CONFIG', `model_type "${String(modelType)}" is not supported (only "llama")`, { file, where: 'model_type' });
  }
  const act = j.hidden_act;
  if (act !== undefined && act !== 'silu') throw new TopiaryError('E_CONFIG', `hidden_act "${String(act)}" is not supported (only "silu")`, { file, where: 'hidden_act' });
  if (j.rope_scaling !== undefined && j.rope_scaling !== null) {
    throw new TopiaryError('E_CONFIG', 'rope_scaling is not supported', { file, where: 'rope_scaling' });
  }
  if (j.attention_bias === true || j.mlp_bias === true) {
    throw new TopiaryError('E_CONFIG', 'biases in attention/MLP are not supported', { file, where: j.attention_bias === true ? 'attention_bias' : 'mlp_bias' });
  }
  const nHeads = num(j, 'num_attention_heads', file);
  const dim = num(j, 'hidden_size', file);
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
        nLayers: num(j, 'num_hidden_layers', file),
        nHeads,
        nKvHeads: num(j, 'num_key_value_heads', file, nHeads),
        headDim: num(j, 'head_dim', file, dim / nHeads),
        hiddenDim: num(j, 'intermediate_size', file),
        maxSeqLen: num(j, 'max_position_embeddings', file, 2048),
        normEps: num(j, 'rms_norm_eps', file, 1e-6),
        ropeTheta: num(j, 'rope_theta', file, 10000),
        tiedEmbeddings: j.tie_word_embeddings === true,
        bosId: typeof j.bos_token_id === 'number' ? j.bos_token_id : 1,
        eosId: typeof eos === 'number' ? eos : 2,
        ...(layers ? { layers } : {}),
      },
      'config.json',
    );
  } catch (e) {
    if (e instanceof TopiaryError) throw e.inFile(file);
    throw e;
  }
}

/** A config.json object; standard LlamaForCausalLM fields, plus `topiary_layers` when layers differ. */
export function configToHf(c: ModelConfig, dtype: 'float32' | 'float16'): Json {
  const j: Json = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
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
    hidden_act: 'silu',
    tie_word_embeddings: c.tiedEmbeddings,
    bos_token_id: c.bosId,
    eos_token_id: c.eosId,
    attention_bias: false,
    mlp_bias: false,
    torch_dtype: dtype,
  };
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

/** The shape of every parameter of a config, in a stable order (embedding, blocks, final norm, head). */
export function parameterShapes(config: ModelConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const { dim, headDim, vocabSize } = config;
  shapes.set(EMBED, [vocabSize, dim]);
  for (let i = 0; i < config.nLayers; i++) {
    const l = layerShape(config, i);
    shapes.set(inputNormName(i), [dim]);
    shapes.set(linearName(i, 'q'), [l.nHeads * headDim, dim]);
    shapes.set(linearName(i, 'k'), [l.nKvHeads * headDim, dim]);
    shapes.set(linearName(i, 'v'), [l.nKvHeads * headDim, dim]);
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

