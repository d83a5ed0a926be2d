/**
 * Wanda (Sun et al., 2023): drop the weights with the lowest |W_ij|·‖X_j‖₂ within each output row (or per layer for
 * the ablation, or per N:M group), block by block on calibration inputs that flow through the already pruned
 * blocks. The score is the `wanda` saliency by default, resolved by name so `--saliency` can swap it.
 */
import { definePlugin, Tokens } from '@topiary/kernel';
import { wandaSaliency } from '@topiary/saliency-basic';
import { scorePruner, type PostTrainingOptions } from '@topiary/prune-core';

export type WandaOptions = PostTrainingOptions;

export const wandaPruner = scorePruner({
  name: 'wanda',
  description: 'Wanda: |W|·‖X‖ per output row, unstructured or N:M, sequential calibration, optional OWL',
  defaultSaliency: 'wanda',
  needsCalibration: true,
});

export default definePlugin({
  name: 'pruner-wanda',
  description: 'Wanda post-training pruning',
  register(container) {
    container.register(Tokens.Pruner, { useValue: wandaPruner });
    // its default score comes with it, so installing this pruner alone is enough (saliency-basic registers the same object)
    container.register(Tokens.Saliency, { useValue: wandaSaliency });
  },
});
