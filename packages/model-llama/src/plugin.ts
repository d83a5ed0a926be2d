/** The model-llama plugin: registers the llama2.c and safetensors ModelFormats on the kernel's token. */
import { Tokens, definePlugin } from '@topiary/kernel';
import { llama2cFormat, safetensorsFormat } from './io.js';

export const modelLlamaPlugin = definePlugin({
  name: 'model-llama',
  description: 'LLaMA model: llama2.c .bin and Hugging Face safetensors formats',
  register(container) {
    container.register(Tokens.ModelFormat, { useValue: safetensorsFormat });
    container.register(Tokens.ModelFormat, { useValue: llama2cFormat });
  },
});
