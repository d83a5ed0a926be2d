/**
 * A layer-wise method whose mask comes from a saliency score (magnitude, Wanda, or any criterion a plugin adds):
 * score every weight, keep the highest per row / per layer / per N:M group, zero the rest. No weight update.
 */
import { TopiaryError, type PruneContext, type Saliency } from '@topiary/kernel';
import type { LayerwiseMethod } from './layerwise.js';
import { applyKeepMask, selectKeepMask, type MaskRule } from './masks.js';

/** What a saliency needs that post-training calibration can supply: weights and input activations only. */
export function calibrationFor(saliency: Saliency, where = '--saliency'): 'none' | 'activations' {
  const unsupported = saliency.needs.filter((n) => n !== 'weights' && n !== 'activations');
  if (unsupported.length > 0) {
    throw new TopiaryError('E_USAGE', `saliency "${saliency.name}" needs ${unsupported.join(', ')}, which post-training pruning does not collect`, {
      where,
      hint: 'use a criterion that needs only weights and activations (magnitude, wanda)',
    });
  }
  return saliency.needs.includes('activations') ? 'activations' : 'none';
}

export function saliencyMethod(name: string, saliency: Saliency, rule: Omit<MaskRule, 'sparsity'>): LayerwiseMethod {
  return {
    name,
    collect: calibrationFor(saliency),
    apply({ linear, weight, stats, sparsity }, ctx: PruneContext) {
      const scores = saliency.score({
        param: linear.param,
        rows: linear.outFeatures,
        cols: linear.inFeatures,
        weight,
        activationSquares: stats?.activationSquares,
        tokens: stats?.tokens,
      });
      const keep = selectKeepMask(ctx.backend.primitives, scores, linear.outFeatures, linear.inFeatures, { ...rule, sparsity });
      return { weight: applyKeepMask(weight, keep), keep };
    },
  };
}
