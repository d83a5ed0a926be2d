/** @topiary/pruner-depth — depth pruning (`depth`) bound to `Tokens.Pruner`. */
import { definePlugin, provide, Tokens } from '@topiary/kernel';
import { depthPruner } from './depth.js';

export { depthPruner, scoreBlocks } from './depth.js';
export { depthOptions, type DepthOptions } from './options.js';
export { BLOCK_SCORES, blockInfluence, blockTaylor, droppedLoss, lossWithout, type BlockScore } from './scores.js';

export default definePlugin({
  name: 'pruner-depth',
  description: 'Depth pruning: whole blocks by Block Influence, dropped-block perplexity or block Taylor',
  register(container) {
    provide(container, Tokens.Pruner, depthPruner);
  },
});
