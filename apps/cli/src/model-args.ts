/**
 * The `--model PATH [--tokenizer FILE]` pair every model-taking command shares. `--model` is a Hugging Face folder
 * (tokenizer.json inside), a .safetensors file beside its config.json, or a llama2.c .bin (which needs a tokenizer:
 * --tokenizer, or a tok512.bin / tokenizer.bin / tokenizer.json beside the model file). A Hub id (`org/name`) is read
 * from its snapshot in the local Hugging Face cache; one that is not cached is refused before anything is loaded,
 * saying where it was looked for — nothing is downloaded.
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { TopiaryError } from '@topiary/kernel';
import type { ModelOptions } from '@topiary/model-llama';
import { loadModelWithTokenizer, looksLikeHubId, modelPathError, type LoadedModel, type ModelSource } from '@topiary/pipeline';

export interface ModelFlags {
  model?: string;
  tokenizer?: string;
}

export const MODEL_FLAGS_HELP = `
--model takes a Hugging Face folder (config.json + model.safetensors, tokenizer.json inside), a .safetensors file
beside its config.json, or a llama2.c .bin; a llama2.c .bin needs --tokenizer unless tok512.bin, tokenizer.bin or
tokenizer.json lies beside it. A Hub id (org/name or org/name@revision) is read from the local Hugging Face cache
(HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub); nothing is ever downloaded.`;

/**
 * A Hub id (`org/name` that is no local path) among the models a command was given is refused before anything
 * runs; any other missing model path is reported when the model is loaded (after the flags are checked).
 */
export function checkHubIds(flags: { model?: unknown; compare?: unknown }): void {
  const models: Array<[string, unknown]> = [['--model', flags.model], ...(Array.isArray(flags.compare) ? flags.compare.map((m): [string, unknown] => ['--compare', m]) : [])];
  for (const [flag, path] of models) {
    if (typeof path === 'string' && !existsSync(path) && looksLikeHubId(path)) {
      const error = modelPathError(path, flag); // undefined when the local Hugging Face cache holds it
      if (error) throw error;
    }
  }
}

/** Add the shared flags to a command (and the check of the paths they name, before its action runs). */
export function addModelFlags(command: Command): Command {
  return command
    .option('--model <path>', 'model: Hugging Face folder, .safetensors file (config.json beside it), llama2.c .bin, or org/name from the local HF cache')
    .option('--tokenizer <file>', 'tokenizer file (tokenizer.json or llama2.c tokenizer .bin); default: found beside/inside the model')
    .hook('preAction', (_command, action) => checkHubIds(action.opts()));
}

/** Load the model named by --model (and its tokenizer when one is found or required); checks vocab sizes agree. */
export function loadModelFromFlags(flags: ModelFlags, options: { needTokenizer: boolean; model?: ModelOptions }): Promise<LoadedModel> {
  if (flags.model !== undefined) {
    const error = modelPathError(flags.model, '--model');
    if (error) return Promise.reject(error);
  }
  return loadModelWithTokenizer(flags, options);
}

export type { ModelSource };

/** `--dtype f32|f16|bf16` of every command that writes a model: the storage dtype (default: the input's own). */
export const DTYPE_FLAGS = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' } as const;

export const DTYPE_HELP = "storage dtype of the written model: f32, f16 or bf16 (default: the dtype the input model was loaded in)";

/** The storage dtype a `--dtype` value names, or undefined when the flag was not given. */
export function dtypeFromFlag(value: unknown): (typeof DTYPE_FLAGS)[keyof typeof DTYPE_FLAGS] | undefined {
  if (value === undefined) return undefined;
  const dtype = DTYPE_FLAGS[value as keyof typeof DTYPE_FLAGS];
  if (!dtype) throw new TopiaryError('E_USAGE', `"${String(value)}" is not one of ${Object.keys(DTYPE_FLAGS).join(', ')}`, { where: '--dtype' });
  return dtype;
}
