/** Options of the `llm-pruner` method, from a recipe stage or CLI flags, declared once as a schema. */
import { z, type OptionsOf } from '@topiary/kernel';
import { aggregationField, calibrationBatchField, layerRangeField, saliencyField } from '@topiary/structured-core';

export const llmPrunerOptions = z
  .object({
    /** Fraction of the whole model's parameters to remove, in (0, 1). */
    ratio: z.number().gt(0).lt(1).meta({ description: 'fraction of the model’s parameters to remove, in (0, 1)', valueName: 'r' }),
    /** Saliency criterion by name. */
    saliency: saliencyField('taylor-element', 'score function (magnitude, wanda, taylor-element, taylor-vector, ... or a saliency plugin)'),
    aggregation: aggregationField('group score from element scores: sum, mean, max, prod, last'),
    ranking: z
      .enum(['per-layer', 'global'])
      .default('per-layer')
      .meta({ description: 'rank groups within each layer or across layers' }),
    /** `global: true` is `ranking: global`. */
    global: z.boolean().optional().meta({ description: 'shorthand for --ranking global' }),
    /** Attention unit: `auto` prunes KV groups when the model shares KV heads (GQA), single heads otherwise. */
    attention: z
      .enum(['auto', 'head', 'kv-group'])
      .default('auto')
      .meta({ description: 'attention unit (auto: KV groups under GQA)' }),
    /** Blocks that may be pruned; default: all but the first and the last. */
    layers: layerRangeField('blocks START:END to prune, END exclusive (default: the method’s own)'),
    /** Calibration windows per gradient batch (0 = as many as fit in 2048 tokens: bounded memory). */
    batchSize: calibrationBatchField(
      'calibration windows per gradient pass (0: as many as fit in 2048 tokens); second-order Taylor averages its Fisher term over these batches',
    ),
  })
  .strict()
  .overwrite((v) => (v.global ? { ...v, ranking: 'global' as const } : v));

export type LlmPrunerOptions = OptionsOf<typeof llmPrunerOptions>;
