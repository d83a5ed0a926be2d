/**
 * @topiary/saliency-taylor — Taylor importance criteria for structured pruning, bound to `Tokens.Saliency`:
 * `taylor-element`, `taylor-element-2nd` and `taylor-vector`.
 */
import { createRequire } from 'node:module';
import { definePlugin, provide, Tokens } from '@topiary/kernel';
import { taylorSaliencies } from './taylor.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

export * from './taylor.js';

export default definePlugin({
  name: 'saliency-taylor',
  version,
  kernel: '^0.1.0',
  description: 'Taylor saliency: first/second-order element and vector level (LLM-Pruner)',
  provides: { saliency: taylorSaliencies.map((s) => s.name) },
  register(container) {
    for (const s of taylorSaliencies) provide(container, Tokens.Saliency, s);
  },
});
