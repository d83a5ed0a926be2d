/**
 * The plugin: a plain object from definePlugin. `register` binds our Pruner to the kernel's token in the container
 * the host gives us; nothing happens at import time and nothing is global. What it provides is declared once, in
 * package.json ("topiary".provides.pruners: ["ffn-norm"]); the loader checks that register() binds exactly that.
 */
import { definePlugin, Tokens } from '@topiary/kernel';
import { ffnNormPruner } from './ffn-norm.js';

export default definePlugin({
  name: 'pruner-ffn-norm',
  description: 'ffn-norm structured pruning: FFN channels (and heads) with the smallest weight norm',
  register(container) {
    container.register(Tokens.Pruner, { useValue: ffnNormPruner });
  },
});

export { ffnNormOptions, ffnNormPruner, groupNorms, layerRange, selectGroups, type FfnNormOptions, type LayerRemoval } from './ffn-norm.js';
