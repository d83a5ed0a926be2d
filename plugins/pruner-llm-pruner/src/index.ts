/**
 * @topiary/pruner-llm-pruner — LLM-Pruner width pruning (`llm-pruner`) bound to `Tokens.Pruner`.
 */
import { definePlugin, provide, Tokens } from '@topiary/kernel';
import { llmPruner } from './llm-pruner.js';

export { layerSizes, llmPruner, scoreGroups, usesGqa, type GroupScores } from './llm-pruner.js';
export { llmPrunerOptions, type LlmPrunerOptions } from './options.js';

export default definePlugin({
  name: 'pruner-llm-pruner',
  description: 'LLM-Pruner structured width pruning (heads / KV groups, FFN channels)',
  register(container) {
    provide(container, Tokens.Pruner, llmPruner);
  },
});
