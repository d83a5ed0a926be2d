/**
 * Wanda (Sun et al., 2023): drop the weights with the lowest |W_ij|·‖X_j‖₂ within each output row (or per layer for
 * the ablation, or per N:M group), block by block on calibration inputs that flow through the already pruned
 * blocks. The score is the `wanda` saliency by default, resolved by name so `--saliency` can swap it.
 */
import { createRequire } from 'node:module';
import { definePlugin, rejectUnknownKeys, Tokens, type CausalLM, type PruneContext, type Pruner, type PruneResult, type Raw } from '@topiary/kernel';
import { wandaSaliency } from '@topiary/saliency-basic';
import { pruneLayerwise, saliencyMethod, SHARED_KEYS, validatePostTraining, type PostTrainingOptions } from '@topiary/prune-core';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

export type WandaOptions = PostTrainingOptions;

export const wandaPruner: Pruner<WandaOptions> = Object.freeze({
  name: 'wanda',
  description: 'Wanda: |W|·‖X‖ per output row, unstructured or N:M, sequential calibration, optional OWL',
  granularity: 'element' as const,
  needsCalibration: true,
  validate(raw: Raw, where: string): WandaOptions {
    rejectUnknownKeys(raw, where, SHARED_KEYS);
    return validatePostTraining(raw, where, 'wanda');
  },
  async prune(model: CausalLM, options: WandaOptions, ctx: PruneContext): Promise<PruneResult> {
    const method = saliencyMethod('wanda', ctx.saliency(options.saliency), { pattern: options.pattern, scope: options.scope });
    const report = await pruneLayerwise(model, method, { ...options, details: detailsOf(options) }, ctx);
    return { model, report };
  },
});

function detailsOf(o: WandaOptions): Record<string, unknown> {
  return { saliency: o.saliency, scope: o.scope, pattern: o.pattern ? `${o.pattern.n}:${o.pattern.m}` : null, target: o.sparsity };
}

export default definePlugin({
  name: 'pruner-wanda',
  version,
  kernel: '^0.1.0',
  description: 'Wanda post-training pruning',
  provides: { pruners: ['wanda'], saliency: ['wanda'] },
  register(container) {
    container.register(Tokens.Pruner, { useValue: wandaPruner });
    // its default score comes with it, so installing this pruner alone is enough (saliency-basic registers the same object)
    container.register(Tokens.Saliency, { useValue: wandaSaliency });
  },
});
