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
import { DTYPE_BYTES, writeSafetensors } from './safetensors.js';
import { openSafetensors, readAll, type SafetensorsSource } from './source.js';
import { loadedDtype, rememberDtype, safetensorsDtype, type StorageDtype } from './dtype.js';
import { TOPIARY_SPARSITY_KEY, analyseSparsity } from './sparsity.js';

import { CONFIG_FILE, INDEX_FILE, WEIGHTS_FILE, shardName } from './layout.js';

export { CONFIG_FILE, INDEX_FILE, WEIGHTS_FILE };

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

/** Headers only: the config and where every tensor is (see source.ts); nothing is read until asked for. */
export function openHf(path: string): SafetensorsSource {
  const isFile = existsSync(path) && statSync(path).isFile();
  const config = readHfConfig(isFile ? dirname(path) : path);
  const source = openSafetensors(path, config, readJson);
  rememberDtype(config, source.dtype);
  return source;
}

/** Read the HF folder `dir` (or the given .safetensors file with config.json beside it), every tensor as float32. */
export function readHf(path: string): HfCheckpoint {
  const source = openHf(path);
  return { config: source.config, weights: readAll(source) };
}

export interface SaveOptions {
  /** Storage dtype of the weights (default: the dtype the model was loaded with, else float32). */
  dtype?: StorageDtype;
  /** Write `topiary_sparsity` into config.json when the linear weights are sparse (default true). */
  sparsityMetadata?: boolean;
  /**
   * Shard the weights into files of at most this many bytes (a tensor larger than that gets a file of its own), with
   * `model.safetensors.index.json` naming each tensor's shard — Hugging Face's `max_shard_size`. Default: one file.
   */
  maxShardBytes?: number;
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
  const st = safetensorsDtype(dtype);
  const width = DTYPE_BYTES[st];
  const total = tensors.reduce((a, t) => a + t.data.length * width, 0);
  if (options.maxShardBytes === undefined || total <= options.maxShardBytes) {
    writeSafetensors(join(dir, WEIGHTS_FILE), tensors, st);
  } else {
    const shards: (typeof tensors)[] = [[]];
    let bytes = 0;
    for (const t of tensors) {
      const size = t.data.length * width;
      if (shards.at(-1)!.length > 0 && bytes + size > options.maxShardBytes) {
        shards.push([]);
        bytes = 0;
      }
      shards.at(-1)!.push(t);
      bytes += size;
    }
    const weightMap: Record<string, string> = {};
    shards.forEach((list, k) => {
      const file = shardName(k + 1, shards.length);
      writeSafetensors(join(dir, file), list, st);
      for (const t of list) weightMap[t.name] = file;
    });
    writeJsonAtomic(join(dir, INDEX_FILE), { metadata: { total_size: total }, weight_map: weightMap });
  }
  const json = configToHf(config, 'float32');
  json.torch_dtype = dtype;
  if (options.sparsityMetadata !== false) {
    const sparsity = analyseSparsity(config, weights);
    if (sparsity) json[TOPIARY_SPARSITY_KEY] = sparsity;
  }
  writeJsonAtomic(join(dir, CONFIG_FILE), json);
  writeJsonAtomic(join(dir, 'generation_config.json'), { bos_token_id: config.bosId, eos_token_id: config.eosId });
}
