/**
 * @topiary/pruner-llm-pruner — LLM-Pruner width pruning (`llm-pruner`) bound to `Tokens.Pruner`.
 */
import { createRequire } from 'node:module';
import { definePlugin, provide, Tokens } from '@topiary/kernel';
import { llmPruner } from './llm-pruner.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

export { layerSizes, llmPruner, scoreGroups, usesGqa, type GroupScores } from './llm-pruner.js';
export { LLM_PRUNER_KEYS, validateLlmPruner, type LlmPrunerOptions } from './options.js';

export default definePlugin({
  name: 'pruner-llm-pruner',
  version,
  kernel: '^0.1.0',
  description: 'LLM-Pruner structured width pruning (heads / KV groups, FFN channels)',
  provides: { pruners: ['llm-pruner'] },
  register(container) {
    provide(container, Tokens.Pruner, llmPruner);
  },
});
