/**
 * @topiary/saliency-taylor — Taylor importance criteria for structured pruning, bound to `Tokens.Saliency`:
 * `taylor-element`, `taylor-element-2nd` and `taylor-vector`.
 */
import { definePlugin, provide, Tokens } from '@topiary/kernel';
import { taylorSaliencies } from './taylor.js';

export * from './taylor.js';

export default definePlugin({
  name: 'saliency-taylor',
  description: 'Taylor saliency: first/second-order element and vector level (LLM-Pruner)',
  register(container) {
    for (const s of taylorSaliencies) provide(container, Tokens.Saliency, s);
  },
});
