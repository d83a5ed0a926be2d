/**
 * The pruners that only differ in their default score — magnitude (|W|) and Wanda (|W|·‖X‖) — are one pruner
 * shape: score every weight with a saliency (swappable by name), keep the best per row / layer / N:M group, block
 * by block on calibration inputs that flow through the already pruned blocks.
 */
import type { CausalLM, PruneContext, Pruner, PruneResult } from '@topiary/kernel';
import { pruneLayerwise } from './layerwise.js';
import { postTrainingOptions, type PostTrainingOptions, type PostTrainingSchema } from './options.js';
import type { ComparisonScope } from './masks.js';
import { saliencyMethod } from './saliency-method.js';

export interface ScorePrunerSpec {
  name: string;
  description: string;
  /** The saliency used when the options name none. */
  defaultSaliency: string;
  /**
   * Whether the method's own score needs calibration activations (Wanda). When false (magnitude), data is needed
   * only for OWL's layer ratios — or for a `saliency` that needs it, which the pipeline sees through `needsData`.
   */
  needsCalibration: boolean;
  /** Where scores are compared when the options name no scope (default per row). */
  defaultScope?: ComparisonScope;
}

export function scorePruner(spec: ScorePrunerSpec): Pruner<PostTrainingSchema> {
  return Object.freeze({
    name: spec.name,
    description: spec.description,
    granularity: 'element' as const,
    streams: true,
    needsCalibration: spec.needsCalibration ? true : (options: PostTrainingOptions) => options.owl !== undefined,
    options: postTrainingOptions({ defaultSaliency: spec.defaultSaliency, defaultScope: spec.defaultScope }),
    async prune(model: CausalLM, options: PostTrainingOptions, ctx: PruneContext): Promise<PruneResult> {
      const method = saliencyMethod(spec.name, ctx.saliency(options.saliency), { pattern: options.pattern, scope: options.scope });
      const details = { saliency: options.saliency, scope: options.scope, pattern: options.pattern ? `${options.pattern.n}:${options.pattern.m}` : null, target: options.sparsity };
      const report = await pruneLayerwise(model, method, { ...options, details }, ctx);
      return { model, report };
    },
  });
}
