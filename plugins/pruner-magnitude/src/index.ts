/**
 * Magnitude pruning: drop the weights with the lowest |W_ij| — one threshold per weight matrix by default (the
 * baseline as the Wanda and SparseGPT papers run it: Wanda `lib/prune.py` prune_magnitude, SparseGPT `--gmp`), per
 * output row with `scope: row`, or per N:M group. Needs no data — unless OWL is asked for (its layer ratios come from calibration activations) or the
 * score is swapped (`--saliency`) for one that needs activations.
 */
import { createRequire } from 'node:module';
import { definePlugin, Tokens } from '@topiary/kernel';
import { magnitudeSaliency } from '@topiary/saliency-basic';
import { scorePruner, type PostTrainingOptions } from '@topiary/prune-core';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

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
  version,
  kernel: '^0.1.0',
  description: 'magnitude post-training pruning',
  provides: { pruners: ['magnitude'], saliency: ['magnitude'] },
  register(container) {
    container.register(Tokens.Pruner, { useValue: magnitudePruner });
    // its default score comes with it, so installing this pruner alone is enough (saliency-basic registers the same object)
    container.register(Tokens.Saliency, { useValue: magnitudeSaliency });
  },
});
