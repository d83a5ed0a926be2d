/**
 * Magnitude pruning: drop the weights with the lowest |W_ij| — one threshold per weight matrix by default (the
 * baseline as the Wanda and SparseGPT papers run it: Wanda `lib/prune.py` prune_magnitude, SparseGPT `--gmp`), per
 * output row with `scope: row`, or per N:M group. Needs no data — unless OWL is asked for (its layer ratios come from calibration activations) or the
 * score is swapped (`--saliency`) for one that needs activations.
 */
import { definePlugin, Tokens } from '@topiary/kernel';
import { magnitudeSaliency } from '@topiary/saliency-basic';
import { scorePruner, type PostTrainingOptions } from '@topiary/prune-core';

export type MagnitudeOptions = PostTrainingOptions;

export const magnitudePruner = scorePruner({
  name: 'magnitude',
  description: 'Magnitude: |W| per weight matrix (default) or per output row, unstructured or N:M (no data needed)',
  defaultSaliency: 'magnitude',
  defaultScope: 'layer',
  needsCalibration: false,
});

export default definePlugin({
  name: 'pruner-magnitude',
  description: 'magnitude post-training pruning',
  register(container) {
    container.register(Tokens.Pruner, { useValue: magnitudePruner });
    // its default score comes with it, so installing this pruner alone is enough (saliency-basic registers the same object)
    container.register(Tokens.Saliency, { useValue: magnitudeSaliency });
  },
});
