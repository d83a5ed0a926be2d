/**
 * A layer-wise method whose mask comes from a saliency score (magnitude, Wanda, or any criterion a plugin adds):
 * score every weight, keep the highest per row / per layer / per N:M group, zero the rest. No weight update.
 */
import { TopiaryError, type PruneContext, type Saliency } from '@topiary/kernel';
import { releaseHostMemory } from '@topiary/files';
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

/**
 * Scores per chunk of rows: at most this many elements (16 MB of float32 scores). Why: a whole-layer score array is
 * as large as the weight (180 MB for a Llama-2-7B FFN matrix), and row-wise selection never needs more than a row.
 */
const CHUNK_ELEMENTS = 1 << 22;

export function saliencyMethod(name: string, saliency: Saliency, rule: Omit<MaskRule, 'sparsity'>): LayerwiseMethod {
  // per row or per N:M group, with a criterion that scores each row from its own statistics: chunks of rows give
  // exactly the whole layer's scores and masks
  const byRows = saliency.rowwise === true && (rule.pattern !== undefined || rule.scope === 'row');
  // one scores buffer for every layer of the run, grown to the largest chunk (fresh weight-sized arrays fault in slowly)
  let scores: Float32Array | undefined;
  const scratch = (n: number): Float32Array => {
    if (!scores || scores.length < n) scores = new Float32Array(n);
    return scores;
  };
  return {
    name,
    collect: calibrationFor(saliency),
    // a row-wise criterion scores host arrays from their own statistics, and the mask primitives run on the host:
    // no tensor operation, so the weight can be the engine's own memory
    inPlace: saliency.rowwise === true,
    apply({ linear, weight, stats, sparsity }, ctx: PruneContext) {
      const { outFeatures: rows, inFeatures: cols } = linear;
      const p = ctx.backend.primitives;
      const score = (r0: number, r1: number, w: Float32Array) =>
        saliency.score({ param: linear.param, rows: r1 - r0, cols, weight: w, activationSquares: stats?.activationSquares, tokens: stats?.tokens, into: scratch(w.length) });
      const step = Math.max(1, Math.floor(CHUNK_ELEMENTS / cols));
      // the whole layer at once (a layer that fits one chunk: its mask is the layer's, no copy)
      if (!byRows || step >= rows) {
        const keep = selectKeepMask(p, score(0, rows, weight), rows, cols, { ...rule, sparsity });
        return { weight: applyKeepMask(weight, keep), keep };
      }
      const keep = new Uint8Array(rows * cols);
      for (let r0 = 0; r0 < rows; r0 += step) {
        const r1 = Math.min(rows, r0 + step);
        const w = weight.subarray(r0 * cols, r1 * cols);
        const chunk = selectKeepMask(p, score(r0, r1, w), r1 - r0, cols, { ...rule, sparsity });
        applyKeepMask(w, chunk);
        keep.set(chunk, r0 * cols);
        // this chunk's scores and mask are garbage: given back before the next chunk's (a 7B FFN layer has 11)
        if (r1 < rows) releaseHostMemory();
      }
      return { weight, keep };
    },
  };
}
