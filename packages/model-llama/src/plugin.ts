/** The model-llama plugin: registers the llama2.c and safetensors ModelFormats on the kernel's token. */
import { createRequire } from 'node:module';
import { Tokens, definePlugin } from '@topiary/kernel';
import { llama2cFormat, safetensorsFormat } from './io.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

export const modelLlamaPlugin = definePlugin({
  name: 'model-llama',
  version,
  kernel: '^0.1.0',
  description: 'LLaMA model: llama2.c .bin and Hugging Face safetensors formats',
  provides: { formats: ['llama2c', 'safetensors'] },
  register(container) {
    container.register(Tokens.ModelFormat, { useValue: safetensorsFormat });
    container.register(Tokens.ModelFormat, { useValue: llama2cFormat });
  },
});
