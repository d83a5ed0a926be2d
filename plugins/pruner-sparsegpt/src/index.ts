/**
 * SparseGPT as a Topiary pruner: the shared sequential driver collects each linear layer's Gram matrix XᵀX from
 * calibration inputs (flowing through the already pruned blocks); `sparsegptPrune` does the OBS reconstruction.
 */
import {
  definePlugin,
  optionalNumber,
  fieldPath,
  rejectUnknownKeys,
  Tokens,
  TopiaryError,
  type CausalLM,
  type PruneContext,
  type Pruner,
  type PruneResult,
  type Raw,
} from '@topiary/kernel';
import { pruneLayerwise, SHARED_KEYS, validatePostTraining, type LayerwiseMethod, type PostTrainingOptions } from '@topiary/prune-core';
import { hessianFromGram, sparsegptPrune } from './sparsegpt.js';

export * from './sparsegpt.js';

export type SparseGPTOptions = PostTrainingOptions & {
  blocksize: number;
  dampening: number;
};

const KEYS = [...SHARED_KEYS, 'blocksize', 'dampening'] as const;

export function sparsegptMethod(options: SparseGPTOptions): LayerwiseMethod {
  let dead = 0;
  return {
    name: 'sparsegpt',
    collect: 'gram',
    apply({ linear, weight, stats, sparsity }, ctx: PruneContext) {
      if (!stats?.gram) throw new TopiaryError('E_INTERNAL', `no Hessian for ${linear.param}`, { where: 'sparsegpt' });
      const result = sparsegptPrune(
        weight,
        hessianFromGram(stats.gram, stats.tokens),
        { rows: linear.outFeatures, cols: linear.inFeatures, sparsity, pattern: options.pattern, blocksize: options.blocksize, dampening: options.dampening },
        ctx.backend.primitives,
      );
      if (result.deadInputs > 0) {
        dead += result.deadInputs;
        ctx.events.log('debug', `${linear.param}: ${result.deadInputs} dead input(s) zeroed (total ${dead})`);
      }
      return result;
    },
  };
}

export const sparsegptPruner: Pruner<SparseGPTOptions> = Object.freeze({
  name: 'sparsegpt',
  description: 'SparseGPT: OBS reconstruction with the inverse-Hessian Cholesky, unstructured or N:M, optional OWL',
  granularity: 'element' as const,
  needsCalibration: true,
  validate(raw: Raw, where: string): SparseGPTOptions {
    rejectUnknownKeys(raw, where, KEYS);
    if (raw.saliency !== undefined) {
      throw new TopiaryError('E_USAGE', 'SparseGPT selects weights by w²/[H⁻¹]²_jj; it takes no saliency', { where: fieldPath(where, 'saliency') });
    }
    if (raw.scope !== undefined && raw.scope !== 'row') {
      // the paper's mask is chosen per column block over all rows; 'scope' only applies to score-based methods
      throw new TopiaryError('E_USAGE', 'SparseGPT chooses its mask per column block; scope does not apply', { where: fieldPath(where, 'scope') });
    }
    const base = validatePostTraining(raw, where, 'wanda');
    const blocksize = optionalNumber(raw, 'blocksize', where, 128, { min: 1, integer: true });
    if (base.pattern && blocksize % base.pattern.m !== 0) {
      throw new TopiaryError('E_USAGE', `must be a multiple of M = ${base.pattern.m}, got ${blocksize}`, { where: fieldPath(where, 'blocksize') });
    }
    return { ...base, blocksize, dampening: optionalNumber(raw, 'dampening', where, 0.01, { above: 0 }) };
  },
  async prune(model: CausalLM, options: SparseGPTOptions, ctx: PruneContext): Promise<PruneResult> {
    const details = {
      blocksize: options.blocksize,
      dampening: options.dampening,
      pattern: options.pattern ? `${options.pattern.n}:${options.pattern.m}` : null,
      target: options.sparsity,
    };
    const report = await pruneLayerwise(model, sparsegptMethod(options), { ...options, owlSaliency: 'wanda', details }, ctx);
    return { model, report };
  },
});

export default definePlugin({
  name: 'pruner-sparsegpt',
  description: 'SparseGPT post-training pruning',
  register(container) {
    container.register(Tokens.Pruner, { useValue: sparsegptPruner });
  },
});
