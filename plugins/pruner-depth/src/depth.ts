/**
 * Depth pruning: remove whole blocks, lowest score first, one-shot (score once, remove K) or iterative (remove the
 * lowest, slim, re-score the smaller model, K times). Removal is physical: the block group is masked and the
 * model slimmed, so the result has K fewer blocks and computes exactly what the masked model computes.
 */
import { TopiaryError, type CausalLM, type PruneContext, type PruneResult, type Pruner } from '@topiary/kernel';
import { calibrationBatchSize, type LayerRange } from '@topiary/structured-core';
import { depthOptions, type DepthOptions } from './options.js';
import { blockInfluence, blockTaylor, droppedLoss } from './scores.js';

export async function scoreBlocks(model: CausalLM, options: DepthOptions, ctx: PruneContext): Promise<Float64Array> {
  const windows = ctx.calibration ?? [];
  if (windows.length === 0) {
    throw new TopiaryError('E_USAGE', `depth pruning by ${options.score} needs calibration data`, {
      where: '--calibration',
      hint: 'pass --calibration FILE',
    });
  }
  const batch = calibrationBatchSize(windows, options.batchSize);
  const spill = { ...(ctx.activationBytes !== undefined ? { budget: ctx.activationBytes } : {}), ...(ctx.spillDir !== undefined ? { spillDir: ctx.spillDir } : {}) };
  switch (options.score) {
    case 'block-influence':
      return blockInfluence(model, windows, batch, spill);
    case 'ppl':
      return droppedLoss(model, windows, batch, spill);
    case 'taylor':
      return blockTaylor(model, windows, batch, ctx.saliency(options.saliency), spill);
  }
}

function candidateRange(options: DepthOptions, numBlocks: number): LayerRange {
  if (options.remove >= numBlocks) {
    throw new TopiaryError('E_USAGE', `cannot remove ${options.remove} of the model's ${numBlocks} blocks: at least one must remain`, {
      where: '--remove',
      hint: `use --remove between 1 and ${numBlocks - 1}`,
    });
  }
  const range = options.layers ? checkRange(options.layers.start, options.layers.end ?? numBlocks, numBlocks) : { start: 0, end: numBlocks };
  if (options.remove > range.end - range.start) {
    throw new TopiaryError('E_USAGE', `cannot remove ${options.remove} blocks from the ${range.end - range.start} candidate blocks ${range.start}:${range.end}`, {
      where: '--remove',
      hint: 'lower --remove or widen --layers',
    });
  }
  return range;
}

function checkRange(start: number, end: number, numBlocks: number): LayerRange {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > numBlocks || start >= end) {
    throw new TopiaryError('E_USAGE', `layer range ${start}:${end} is not a non-empty range of the model's ${numBlocks} blocks`, {
      where: '--layers',
      hint: `use START:END with 0 <= START < END <= ${numBlocks}`,
    });
  }
  return { start, end };
}

function lowest(scores: Float64Array, candidates: readonly number[], k: number): number[] {
  return [...candidates].sort((a, b) => scores[a]! - scores[b]! || a - b).slice(0, k);
}

function blockId(model: CausalLM, layer: number): string {
  const g = model.groups(['block']).find((x) => x.layer === layer);
  if (!g) throw new TopiaryError('E_INTERNAL', `the model lists no block group for block ${layer}`, { where: 'depth' });
  return g.id;
}

export const depthPruner: Pruner<typeof depthOptions> = Object.freeze({
  name: 'depth',
  description: 'Depth pruning: remove whole blocks by Block Influence, perplexity when dropped, or block Taylor; one-shot or iterative',
  granularity: 'block' as const,
  // scores block by block and removes by maskGroups + slim(): runs on a streamed model (SlimmableStream)
  streamsBySlimPlan: true,
  needsCalibration: true,
  // Shortened LLaMA (src/anal_block_sensitivity_*.py): --num_calib_data 10, --max_seq_len 128
  calibrationDefaults: { samples: 10, seqLen: 128, source: 'Shortened LLaMA (10 samples × 128 tokens)' },
  options: depthOptions,
  async prune(model: CausalLM, options: DepthOptions, ctx: PruneContext): Promise<PruneResult> {
    const started = performance.now();
    const before = model.parameterCount();
    const range = candidateRange(options, model.numBlocks);
    // original[i] = the original index of the current model's block i
    let original = Array.from({ length: model.numBlocks }, (_, i) => i);
    const removed: number[] = [];
    const rounds: { scores: Record<number, number>; removed: number[] }[] = [];
    let current = model;
    const steps = options.iterative ? options.remove : 1;
    for (let round = 0; round < steps; round++) {
      const scores = await scoreBlocks(current, options, ctx);
      const candidates = original.flatMap((o, i) => (o >= range.start && o < range.end ? [i] : []));
      const take = lowest(scores, candidates, options.iterative ? 1 : options.remove);
      const removedNow = take.map((i) => original[i]!);
      rounds.push({ scores: Object.fromEntries(original.map((o, i) => [o, scores[i]!])), removed: removedNow });
      removed.push(...removedNow);
      current.maskGroups(take.map((i) => blockId(current, i)));
      const slim = current.slim();
      if (current !== model) current.dispose();
      current = slim;
      original = original.filter((_, i) => !take.includes(i));
      ctx.events.progress('depth', round + 1, steps, `removed block(s) ${removedNow.join(', ')} (original numbering)`, 'round');
    }
    const after = current.parameterCount();
    ctx.events.log('info', `depth removed blocks ${removed.join(', ')}: ${before} -> ${after} parameters`);
    return {
      model: current,
      report: {
        method: 'depth',
        parametersBefore: before,
        parametersAfter: after,
        seconds: (performance.now() - started) / 1000,
        layers: [],
        details: { score: options.score, iterative: options.iterative, removedBlocks: removed, keptBlocks: original, rounds },
      },
    };
  },
});
