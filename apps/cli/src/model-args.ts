/**
 * The `--model PATH [--tokenizer FILE]` pair every model-taking command shares. `--model` is a Hugging Face folder
 * (tokenizer.json inside), a .safetensors file beside its config.json, or a llama2.c .bin (which needs a tokenizer:
 * --tokenizer, or a tok512.bin / tokenizer.bin / tokenizer.json beside the model file).
 */
import type { Command } from 'commander';
import { loadModelWithTokenizer, type LoadedModel, type ModelSource } from '@topiary/pipeline';

export interface ModelFlags {
  model?: string;
  tokenizer?: string;
}

export const MODEL_FLAGS_HELP = `
--model takes a Hugging Face folder (config.json + model.safetensors, tokenizer.json inside), a .safetensors file
beside its config.json, or a llama2.c .bin; a llama2.c .bin needs --tokenizer unless tok512.bin, tokenizer.bin or
tokenizer.json lies beside it.`;

/** Add the shared flags to a command. */
export function addModelFlags(command: Command): Command {
  return command
    .option('--model <path>', 'model: Hugging Face folder, .safetensors file (config.json beside it) or llama2.c .bin')
    .option('--tokenizer <file>', 'tokenizer file (tokenizer.json or llama2.c tokenizer .bin); default: found beside/inside the model');
}

/** Load the model named by --model (and its tokenizer when one is found or required); checks vocab sizes agree. */
export function loadModelFromFlags(flags: ModelFlags, options: { needTokenizer: boolean }): Promise<LoadedModel> {
  return loadModelWithTokenizer(flags, options);
}

export type { ModelSource };
