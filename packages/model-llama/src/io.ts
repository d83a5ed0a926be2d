/** loadModel / saveModel with format auto-detection, and the ModelFormat implementations the plugin registers. */
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { TopiaryError, type CausalLM, type ModelFormat, type Tokenizer } from '@topiary/kernel';
import { CONFIG_FILE, INDEX_FILE, WEIGHTS_FILE, openHf, writeHf, type SaveOptions } from './formats/hf.js';
import { Llama2cSource, looksLikeLlama2c } from './formats/llama2c.js';
import type { WeightSource } from './formats/source.js';
import { parameterShapes, type LlamaConfig } from './config.js';
import { LlamaModel, type ModelOptions } from './model.js';
import { ShardedWriter } from './formats/sharded.js';
import { loadedDtype } from './formats/dtype.js';
import { checkWholeModelFits } from './fits.js';

export type ModelFileKind = 'hf' | 'safetensors' | 'llama2c';

const PICKLE_EXTENSIONS = ['.pt', '.pth', '.ckpt'];
const PICKLE_HINT =
  "convert it to safetensors once, in Python: `model.save_pretrained(dir, safe_serialization=True)`, or " +
  "`safetensors.torch.save_file(torch.load(f, weights_only=True), 'model.safetensors')` with config.json beside it";

/**
 * Whether the file's first bytes are a PyTorch pickle checkpoint: a zip archive (`torch.save` since 1.6, 'PK\x03\x04')
 * or a raw pickle (protocol 2-5: 0x80, the protocol, then a non-zero opcode — a llama2.c legacy header whose dim
 * is 640 starts 0x80 0x02 0x00 and is not one).
 */
export function looksLikePickle(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const b = Buffer.alloc(4);
    if (readSync(fd, b, 0, 4, 0) < 3) return false;
    if (b[0] === 0x50 && b[1] === 0x4b && b[2] === 0x03 && b[3] === 0x04) return true;
    return b[0] === 0x80 && b[1]! >= 2 && b[1]! <= 5 && b[2] !== 0x00;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Pickle-based checkpoints can run arbitrary code when loaded: refused, with the way to safetensors. */
function refusePickle(path: string, why: string): TopiaryError {
  return new TopiaryError('E_FORMAT', `refusing to load ${basename(path)}: ${why}; unpickling a checkpoint can run arbitrary code`, { file: path, hint: PICKLE_HINT });
}

/** What kind of model `path` is: an HF folder, a .safetensors file beside config.json, or a llama2.c .bin. */
export function detectModelFormat(path: string): ModelFileKind {
  if (!existsSync(path)) throw new TopiaryError('E_IO', `no such file or folder: ${path}`, { where: path, hint: 'pass an HF folder, a .safetensors file or a llama2.c .bin' });
  if (statSync(path).isDirectory()) {
    if (existsSync(join(path, CONFIG_FILE)) && (existsSync(join(path, WEIGHTS_FILE)) || existsSync(join(path, INDEX_FILE)))) return 'hf';
    const pickled = readdirSync(path).find((f) => f === 'pytorch_model.bin' || f === 'pytorch_model.bin.index.json' || PICKLE_EXTENSIONS.some((e) => f.endsWith(e)));
    if (pickled) throw refusePickle(join(path, pickled), 'the folder holds only a PyTorch pickle checkpoint, no model.safetensors');
    throw new TopiaryError('E_CONFIG', `folder ${path} has no ${CONFIG_FILE} with ${WEIGHTS_FILE} or ${INDEX_FILE}`, { where: path });
  }
  const name = basename(path);
  if (name.endsWith('.safetensors')) {
    if (!existsSync(join(dirname(path), CONFIG_FILE))) {
      throw new TopiaryError('E_CONFIG', `no ${CONFIG_FILE} beside ${name}`, { file: path, hint: 'a .safetensors file needs its config.json in the same folder' });
    }
    return 'safetensors';
  }
  if (name === CONFIG_FILE || name === INDEX_FILE) return 'hf';
  const lower = name.toLowerCase();
  if (PICKLE_EXTENSIONS.some((e) => lower.endsWith(e))) throw refusePickle(path, `${lower.slice(lower.lastIndexOf('.'))} files are PyTorch pickle checkpoints`);
  if (looksLikePickle(path)) throw refusePickle(path, 'it is a PyTorch pickle checkpoint (zip archive or raw pickle), not a llama2.c .bin');
  if (looksLikeLlama2c(path)) return 'llama2c';
  throw new TopiaryError('E_FORMAT', `cannot tell the model format of ${name}`, { file: path, hint: 'expected an HF folder, a .safetensors file or a llama2.c .bin' });
}

export interface LoadOptions {
  /** When given, its vocabulary size must equal the model's. */
  tokenizer?: Tokenizer;
  /** Name used in error messages for the tokenizer (its file). */
  tokenizerFile?: string;
}

export function checkTokenizer(model: CausalLM, tokenizer: Tokenizer, modelFile: string, tokenizerFile?: string): void {
  if (tokenizer.vocabSize !== model.config.vocabSize) {
    throw new TopiaryError('E_CONFIG', `tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${model.config.vocabSize}`, {
      file: tokenizerFile ?? modelFile,
      where: 'vocab_size',
      hint: `use the tokenizer the model was trained with (model: ${modelFile})`,
    });
  }
}

/**
 * Open a checkpoint without reading its weights: headers only (config.json and the safetensors headers of every
 * shard, or a llama2.c header), every tensor located and its shape checked. Instant at any size.
 */
export function openWeights(path: string): WeightSource {
  const kind = detectModelFormat(path);
  if (kind === 'llama2c') return Llama2cSource.open(path);
  return openHf(path);
}

/**
 * Load a model from an HF folder, a .safetensors file (config.json beside it) or a llama2.c .bin. With `residency:
 * 'block'` nothing is read now: each block comes onto the tensor heap when computed (see LlamaModel).
 */
export async function loadModel(path: string, options: LoadOptions & ModelOptions = {}): Promise<LlamaModel> {
  const source = openWeights(path);
  if ((options.residency ?? 'all') === 'all') {
    try {
      checkWholeModelFits(source.config, path);
    } catch (e) {
      source.close();
      throw e;
    }
  }
  const model = new LlamaModel(source.config, source, path, options);
  if (options.tokenizer) {
    try {
      checkTokenizer(model, options.tokenizer, path, options.tokenizerFile);
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  return model;
}

/** Save as an HF folder: config.json (+ topiary_layers when non-uniform), model.safetensors, generation_config.json. */
export async function saveModel(model: CausalLM, dir: string, options: SaveOptions = {}): Promise<void> {
  if (model instanceof LlamaModel && model.streamed) {
    // block by block: a streamed model is never gathered whole (the shards are merged when the model is small)
    const config = model.config;
    const writer = ShardedWriter.open(dir, config, { dtype: options.dtype ?? loadedDtype(config) ?? 'float32', fingerprint: 'save' });
    for (let i = 0; i < config.nLayers; i++) writer.writeBlock(i, (name, start, count) => model.readRows(name, start, count), (name) => model.readWeight(name));
    writer.finish((name, start, count) => model.readRows(name, start, count), (name) => model.readWeight(name));
    return;
  }
  const weights = new Map<string, Float32Array>();
  for (const name of parameterShapes(model.config as LlamaConfig).keys()) weights.set(name, model.readWeight(name));
  writeHf(dir, model.config as LlamaConfig, weights, options);
}

export const llama2cFormat: ModelFormat = {
  name: 'llama2c',
  canLoad(path: string): boolean {
    try {
      return detectModelFormat(path) === 'llama2c';
    } catch {
      return false;
    }
  },
  load: (path: string) => loadModel(path),
  canSave: false,
};

export const safetensorsFormat: ModelFormat = {
  name: 'safetensors',
  canLoad(path: string): boolean {
    try {
      const kind = detectModelFormat(path);
      return kind === 'hf' || kind === 'safetensors';
    } catch {
      return false;
    }
  },
  load: (path: string) => loadModel(path),
  canSave: true,
  save: (model: CausalLM, dir: string) => saveModel(model, dir),
};
