/** The `corpus` plugin: registers the tokenizer factories (llama2c, hf-json, bytes) on Tokens.TokenizerFactory. */
import { definePlugin, Tokens } from '@topiary/kernel';
import { tokenizerFactories } from './tokenizers/load.js';

export const corpusPlugin = definePlugin({
  name: 'corpus',
  description: 'Tokenizers: llama2.c .bin, Hugging Face tokenizer.json, byte-level',
  register(container) {
    for (const factory of tokenizerFactories) container.register(Tokens.TokenizerFactory, { useValue: factory });
  },
});
