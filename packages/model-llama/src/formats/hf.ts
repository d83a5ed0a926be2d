/**
 * Hugging Face layout: a folder with config.json and model.safetensors (or a sharded model.safetensors.index.json
 * whose weight_map names the shard of every tensor). Non-uniform (slimmed) architectures keep standard top-level
 * fields and add per-layer sizes under `topiary_layers` (see config.ts); uniform ones stay plain LlamaForCausalLM.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { TopiaryError, ioError } from '@topiary/kernel';
import { writeJsonAtomic } from '@topiary/files';
import { configFromHf, configToHf, parameterShapes, type LlamaConfig } from '../config.js';
import { LM_HEAD } from '../names.js';
import { readSafetensorsIndex, readTensors, writeSafetensors, type SafetensorsDtype, type SafetensorsIndex } from './safetensors.js';
import { loadedDtype, rememberDtype, safetensorsDtype, storageDtypeOf, type StorageDtype } from './dtype.js';
import { TOPIARY_SPARSITY_KEY, analyseSparsity } from './sparsity.js';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw ioError(e, file, 'read');
  }
  try {
    const j = JSON.parse(text) as unknown;
    if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error('not a JSON object');
    return j as Record<string, unknown>;
  } catch (e) {
    throw new TopiaryError('E_CONFIG', `not valid JSON: ${(e as Error).message}`, { file });
  }
}

export function readHfConfig(dir: string): LlamaConfig {
  const file = join(dir, CONFIG_FILE);
  if (!existsSync(file)) throw new TopiaryError('E_CONFIG', `no ${CONFIG_FILE} in ${dir}`, { file, hint: 'a Hugging Face model folder needs config.json beside the weights' });
  return configFromHf(readJson(file), file);
}

export interface HfCheckpoint {
  config: LlamaConfig;
  weights: Map<string, Float32Array>;
}

/** Read the HF folder `dir` (or the given .safetensors file with config.json beside it). */
export function readHf(path: string): HfCheckpoint {
  const isFile = existsSync(path) && statSync(path).isFile();
  const dir = isFile ? dirname(path) : path;
  const config = readHfConfig(dir);
  const shapes = parameterShapes(config);

  // Which file holds each tensor.
  const shards = new Map<string, SafetensorsIndex>();
  const location = new Map<string, SafetensorsIndex>();
  const indexFile = join(dir, INDEX_FILE);
  if (isFile && path.endsWith('.safetensors')) {
    const idx = readSafetensorsIndex(path);
    for (const name of idx.entries.keys()) location.set(name, idx);
  } else if (existsSync(join(dir, WEIGHTS_FILE))) {
    const idx = readSafetensorsIndex(join(dir, WEIGHTS_FILE));
    for (const name of idx.entries.keys()) location.set(name, idx);
  } else if (existsSync(indexFile)) {
    const map = readJson(indexFile).weight_map;
    if (typeof map !== 'object' || map === null) throw new TopiaryError('E_FORMAT', 'weight_map is missing or not an object', { file: indexFile, where: 'weight_map' });
    for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
      if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) {
        throw new TopiaryError('E_FORMAT', `weight_map entry for "${name}" must be a file name in the folder`, { file: indexFile, where: `weight_map.${name}` });
      }
      let idx = shards.get(shard);
      if (!idx) {
        idx = readSafetensorsIndex(join(dir, shard));
        shards.set(shard, idx);
      }
      if (!idx.entries.has(name)) throw new TopiaryError('E_FORMAT', `missing tensor "${name}" (weight_map points to ${shard})`, { file: join(dir, shard), where: name });
      location.set(name, idx);
    }
  } else {
    throw new TopiaryError('E_IO', `no ${WEIGHTS_FILE} or ${INDEX_FILE} in ${dir}`, { where: dir });
  }

  // Check presence and shape of every tensor before reading any data.
  const byFile = new Map<SafetensorsIndex, string[]>();
  for (const [name, shape] of shapes) {
    const idx = location.get(name);
    if (!idx) {
      throw new TopiaryError('E_FORMAT', `missing tensor "${name}"`, {
        where: name,
        file: dir,
        ...(name === LM_HEAD ? { hint: 'config.json says tie_word_embeddings is false, but there is no lm_head.weight' } : {}),
        ...(name.endsWith('_proj.bias') ? { hint: `${config.family ?? 'llama'} models have q/k/v projection biases, and this file has none` } : {}),
      });
    }
    const entry = idx.entries.get(name)!;
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new TopiaryError('E_CONFIG', `tensor "${name}" has shape [${entry.shape.join(', ')}] but config.json implies [${shape.join(', ')}]`, {
        file: idx.file,
        where: name,
        hint: 'the weights do not match config.json',
      });
    }
    const list = byFile.get(idx) ?? [];
    list.push(name);
    byFile.set(idx, list);
  }
  const weights = new Map<string, Float32Array>();
  const dtypes: SafetensorsDtype[] = [];
  for (const [idx, names] of byFile) {
    for (const name of names) dtypes.push(idx.entries.get(name)!.dtype);
    for (const [name, data] of readTensors(idx, names)) weights.set(name, data);
  }
  rememberDtype(config, storageDtypeOf(dtypes));
  return { config, weights };
}

export interface SaveOptions {
  /** Storage dtype of the weights (default: the dtype the model was loaded with, else float32). */
  dtype?: StorageDtype;
  /** Write `topiary_sparsity` into config.json when the linear weights are sparse (default true). */
  sparsityMetadata?: boolean;
}

/** Write config.json + model.safetensors (atomically) for a model's config and host weights. */
export function writeHf(dir: string, config: LlamaConfig, weights: ReadonlyMap<string, Float32Array>, options: SaveOptions = {}): void {
  const dtype = options.dtype ?? loadedDtype(config) ?? 'float32';
  const shapes = parameterShapes(config);
  const tensors = [...shapes].map(([name, shape]) => {
    const data = weights.get(name);
    if (!data) throw new TopiaryError('E_INTERNAL', `no weight "${name}" to save`, { where: name });
    return { name, shape, data };
  });
  writeSafetensors(join(dir, WEIGHTS_FILE), tensors, safetensorsDtype(dtype));
  const json = configToHf(config, 'float32');
  json.torch_dtype = dtype;
  if (options.sparsityMetadata !== false) {
    const sparsity = analyseSparsity(config, weights);
    if (sparsity) json[TOPIARY_SPARSITY_KEY] = sparsity;
  }
  writeJsonAtomic(join(dir, CONFIG_FILE), json);
  writeJsonAtomic(join(dir, 'generation_config.json'), { bos_token_id: config.bosId, eos_token_id: config.eosId });
}
