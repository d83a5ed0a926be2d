/** @topiary/pruner-depth — depth pruning (`depth`) bound to `Tokens.Pruner`. */
import { createRequire } from 'node:module';
import { definePlugin, provide, Tokens } from '@topiary/kernel';
import { depthPruner } from './depth.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

export { depthPruner, scoreBlocks } from './depth.js';
export { DEPTH_KEYS, validateDepth, type DepthOptions } from './options.js';
export { BLOCK_SCORES, blockInfluence, blockTaylor, droppedLoss, lossWithout, type BlockScore } from './scores.js';

export default definePlugin({
  name: 'pruner-depth',
  version,
  kernel: '^0.1.0',
  description: 'Depth pruning: whole blocks by Block Influence, dropped-block perplexity or block Taylor',
  provides: { pruners: ['depth'] },
  register(container) {
    provide(container, Tokens.Pruner, depthPruner);
  },
});
