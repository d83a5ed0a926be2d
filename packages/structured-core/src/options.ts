/**
 * Option fields the structured pruners share (LLM-Pruner width pruning, depth pruning), as schema pieces each
 * pruner composes into its own `z.object`: the candidate blocks as one contiguous range, the batch size of the
 * gradient / scoring passes, the element saliency, and LLM-Pruner's group aggregation.
 */
import { TopiaryError, z, type GroupAggregation } from '@topiary/kernel';
import { GROUP_AGGREGATIONS } from './aggregate.js';
import { parseLayerSpec, type LayerSpec } from './plan.js';

/** A TopiaryError from a parser as an issue of the field being transformed (message and hint kept). */
function issueFrom(e: unknown, input: unknown): z.core.$ZodRawIssue {
  if (!(e instanceof TopiaryError)) throw e;
  return { code: 'custom', message: e.message, input, ...(e.hint ? { params: { hint: e.hint } } : {}) };
}

/** `START:END` (END exclusive, either side may be empty) or `A-B` (inclusive); absent, null or empty: the method's default. */
export function layerRangeField(description: string) {
  return z
    .union([z.string(), z.null()])
    .optional()
    .transform((value, ctx): LayerSpec | undefined => {
      if (value === undefined || value === null || value === '') return undefined;
      try {
        return parseLayerSpec(value, '');
      } catch (e) {
        ctx.issues.push(issueFrom(e, value));
        return z.NEVER;
      }
    })
    .meta({ description, valueName: 'START:END' });
}

/** Calibration windows per gradient / scoring batch; 0 = as many as fit in 2048 tokens (bounded memory). */
export function calibrationBatchField(description: string) {
  return z.number().int().min(0).default(0).meta({ description, valueName: 'n' });
}

/** An element saliency criterion by name (resolved through `PruneContext.saliency`). */
export function saliencyField(defaultName: string, description: string) {
  return z
    .string()
    .min(1, { error: 'must be a non-empty string, got ""' })
    .default(defaultName)
    .meta({ description, valueName: 'name' });
}

/** How member importances combine into a group's (LLM-Pruner's `--aggregation`), default `sum`. */
export function aggregationField(description: string) {
  return z
    .string()
    .superRefine((value, ctx) => {
      if (!(GROUP_AGGREGATIONS as readonly string[]).includes(value)) {
        ctx.addIssue({ code: 'custom', message: `unknown group aggregation ${JSON.stringify(value)}`, params: { hint: `known aggregations: ${GROUP_AGGREGATIONS.join(', ')}` } });
      }
    })
    .default('sum')
    .transform((value) => value as GroupAggregation)
    .meta({ description, valueName: 'how', enum: [...GROUP_AGGREGATIONS] });
}
