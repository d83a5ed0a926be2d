/** The `corpus` plugin: registers the tokenizer factories (llama2c, hf-json, bytes) on Tokens.TokenizerFactory. */
import { createRequire } from 'node:module';
import { definePlugin, Tokens } from '@topiary/kernel';
import { tokenizerFactories } from './tokenizers/load.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

export const corpusPlugin = definePlugin({
  name: 'corpus',
  version,
  kernel: '^0.1.0',
  description: 'Tokenizers: llama2.c .bin, Hugging Face tokenizer.json, byte-level',
  provides: { tokenizers: tokenizerFactories.map((f) => f.name) },
  register(container) {
    for (const factory of tokenizerFactories) container.register(Tokens.TokenizerFactory, { useValue: factory });
  },
});
