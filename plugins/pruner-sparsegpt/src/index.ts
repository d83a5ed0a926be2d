/**
 * SparseGPT as a Topiary pruner: the shared sequential driver collects each linear layer's Gram matrix XᵀX from
 * calibration inputs (flowing through the already pruned blocks); `sparsegptPrune` does the OBS reconstruction.
 */
import { crossFieldIssue, definePlugin, Tokens, TopiaryError, z, type CausalLM, type OptionsOf, type PruneContext, type Pruner, type PruneResult } from '@topiary/kernel';
import { checkPostTraining, postTrainingFields, pruneLayerwise, resolvePostTraining, type LayerwiseMethod } from '@topiary/prune-core';
import { hessianFromGram, prepareHessianInPlace, SparseGPTBuffers, sparsegptPrunePrepared, type PreparedHessian } from './sparsegpt.js';

export * from './sparsegpt.js';

// SparseGPT selects weights by w²/[H⁻¹]²_jj per column block over all rows: it takes no saliency and no scope (OWL's
// outlier ratios use the `wanda` scores, as in the OWL paper).
const { sparsity, pattern, owl, owlM, owlLambda, layers, batchSize } = postTrainingFields({ defaultSaliency: 'wanda' });

/** SparseGPT's options: the post-training set without saliency and scope, plus block size and dampening. */
export const sparsegptOptions = z
  .object({
    sparsity,
    pattern,
    owl,
    owlM,
    owlLambda,
    layers,
    batchSize,
    blocksize: z.number().int().min(1).default(128).meta({ description: 'column block size', valueName: 'n' }),
    dampening: z.number().positive().default(0.01).meta({ description: 'dampening, fraction of the mean Hessian diagonal', valueName: 'f' }),
  })
  .strict()
  .superRefine(checkPostTraining)
  .superRefine((v, ctx) => {
    if (v.pattern && v.blocksize % v.pattern.m !== 0) ctx.addIssue(crossFieldIssue(['blocksize'], `must be a multiple of M = ${v.pattern.m}, got ${v.blocksize}`));
  })
  .overwrite(resolvePostTraining);

export type SparseGPTOptions = OptionsOf<typeof sparsegptOptions>;

export function sparsegptMethod(options: SparseGPTOptions): LayerwiseMethod {
  let dead = 0;
  // Layers of one block fed the same input (q/k/v, gate/up) get the same Gram array from the driver: factorise it
  // once. Only the current block's factors are kept (the driver may hand the same array to a later block).
  let block = -1;
  const prepared = new Map<Float64Array, PreparedHessian>();
  const buffers = new SparseGPTBuffers();
  return {
    name: 'sparsegpt',
    collect: 'gram',
    apply({ linear, weight, stats, sparsity }, ctx: PruneContext) {
      if (!stats?.gram) throw new TopiaryError('E_INTERNAL', `no Hessian for ${linear.param}`, { where: 'sparsegpt' });
      const p = ctx.backend.primitives;
      if (linear.layer !== block) {
        prepared.clear();
        block = linear.layer;
      }
      let hessian = prepared.get(stats.gram);
      if (!hessian) {
        const cols = linear.inFeatures;
        hessian = prepareHessianInPlace(hessianFromGram(stats.gram, stats.tokens, buffers.float64('hessian', cols * cols)), cols, options.dampening, p);
        prepared.set(stats.gram, hessian);
      }
      // `weight` is the driver's copy, given to the method to modify: the result is written into it
      const result = sparsegptPrunePrepared(
        weight,
        hessian,
        { rows: linear.outFeatures, cols: linear.inFeatures, sparsity, pattern: options.pattern, blocksize: options.blocksize, dampening: options.dampening },
        p,
        buffers,
      );
      if (result.deadInputs > 0) {
        dead += result.deadInputs;
        ctx.events.log('debug', `${linear.param}: ${result.deadInputs} dead input(s) zeroed (total ${dead})`);
      }
      return result;
    },
  };
}

export const sparsegptPruner: Pruner<typeof sparsegptOptions> = Object.freeze({
  name: 'sparsegpt',
  description: 'SparseGPT: OBS reconstruction with the inverse-Hessian Cholesky, unstructured or N:M, optional OWL',
  granularity: 'element' as const,
  streams: true,
  needsCalibration: true,
  options: sparsegptOptions,
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
