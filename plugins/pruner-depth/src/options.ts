/** Options of the `depth` method, declared once as a schema. */
import { z, type OptionsOf } from '@topiary/kernel';
import { calibrationBatchField, layerRangeField, saliencyField } from '@topiary/structured-core';
import { BLOCK_SCORES, type BlockScore } from './scores.js';

export const depthOptions = z
  .object({
    /** Number of blocks to remove. */
    remove: z.number().int().min(1).meta({ description: 'number of blocks to remove', valueName: 'k' }),
    score: z.enum(BLOCK_SCORES as readonly [BlockScore, ...BlockScore[]]).default('block-influence').meta({ description: 'block-influence, ppl or taylor', valueName: 'how' }),
    /** Re-score after each removal (default one-shot). */
    iterative: z.boolean().default(false).meta({ description: 're-score after each removal' }),
    /** Element saliency for `score: taylor`. */
    saliency: saliencyField('taylor-element', 'score function (magnitude, wanda, taylor-element, taylor-vector, ... or a saliency plugin)'),
    /** Candidate blocks (default: all). */
    layers: layerRangeField('blocks START:END to prune, END exclusive (default: the method’s own)'),
    /** Windows per forward batch (0 = as many as fit in 2048 tokens: bounded memory). */
    batchSize: calibrationBatchField(
      'calibration windows per gradient pass (0: as many as fit in 2048 tokens); second-order Taylor averages its Fisher term over these batches',
    ),
  })
  .strict();

export type DepthOptions = OptionsOf<typeof depthOptions>;
