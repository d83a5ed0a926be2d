/**
 * Loading a model with its tokenizer: a Hugging Face folder (tokenizer.json inside), a .safetensors file beside its
 * config.json, or a llama2.c .bin (which needs a tokenizer: given, or a tok512.bin / tokenizer.bin /
 * tokenizer.json beside the model file). `where` names the flag or recipe field the paths came from.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { TopiaryError, type Tokenizer } from '@topiary/kernel';
import { loadTokenizer } from '@topiary/corpus';
import { checkTokenizer, detectModelFormat, loadModel, type LlamaModel, type ModelOptions } from '@topiary/model-llama';
import { localModelPath } from './hub-cache.js';

export interface ModelSource {
  model?: string;
  tokenizer?: string;
}

const BESIDE = ['tok512.bin', 'tokenizer.bin', 'tokenizer.json'];

/** Where the tokenizer for `modelPath` is: the flag, the folder's own, or a known file name beside the model. */
export function resolveTokenizerPath(modelPath: string, tokenizerFlag?: string): string | undefined {
  if (tokenizerFlag !== undefined) return tokenizerFlag;
  const isDir = existsSync(modelPath) && statSync(modelPath).isDirectory();
  const dir = isDir ? modelPath : dirname(modelPath);
  const order = isDir ? ['tokenizer.json', 'tokenizer.bin', 'tok512.bin'] : BESIDE;
  for (const name of order) if (existsSync(join(dir, name))) return join(dir, name);
  return undefined;
}

export interface LoadedModel {
  model: LlamaModel;
  modelPath: string;
  format: string;
  tokenizer?: Tokenizer;
  tokenizerPath?: string;
}

/** Load the model (and its tokenizer when one is found or required); checks vocab sizes agree. */
export async function loadModelWithTokenizer(flags: ModelSource, options: { needTokenizer: boolean; model?: ModelOptions }): Promise<LoadedModel> {
  if (!flags.model) throw new TopiaryError('E_USAGE', 'missing --model PATH', { where: '--model', hint: 'e.g. --model assets/models/stories260K-hf' });
  // a Hub id (`org/name`) is read from its snapshot in the local Hugging Face cache, never downloaded
  const modelPath = localModelPath(flags.model) ?? flags.model;
  const format = detectModelFormat(modelPath);
  const tokenizerPath = resolveTokenizerPath(modelPath, flags.tokenizer);
  if (tokenizerPath === undefined && options.needTokenizer) {
    throw new TopiaryError('E_USAGE', `no tokenizer found for ${modelPath}`, {
      where: '--tokenizer',
      hint: format === 'llama2c' ? 'a llama2.c .bin needs --tokenizer FILE (e.g. tok512.bin)' : 'pass --tokenizer FILE',
    });
  }
  let tokenizer: Tokenizer | undefined;
  if (tokenizerPath !== undefined) {
    try {
      tokenizer = await loadTokenizer(tokenizerPath);
    } catch (e) {
      if (e instanceof TopiaryError && flags.tokenizer !== undefined && !e.where) throw new TopiaryError(e.code, e.message, { file: e.file, where: '--tokenizer', hint: e.hint, cause: e });
      throw e;
    }
  }
  const model = await loadModel(modelPath, options.model);
  if (tokenizer) {
    try {
      checkTokenizer(model, tokenizer, modelPath, tokenizerPath);
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  return { model, modelPath, format, ...(tokenizer ? { tokenizer, tokenizerPath } : {}) };
}
