/**
 * LLM-Pruner (Ma et al. 2023), the width part: score every coupled group of the blocks in range by a Taylor
 * criterion from calibration gradients, drop the lowest groups to reach a parameter-ratio target, and remove them
 * physically (`maskGroups` then `slim`). Attention units are KV groups when the model shares KV heads (GQA: a KV
 * head with all the query heads that read it), single heads otherwise; FFN units are intermediate channels.
 */
import {
  TopiaryError,
  type CausalLM,
  type GroupKind,
  type ParameterGroup,
  type PruneContext,
  type PruneResult,
  type Pruner,
} from '@topiary/kernel';
import {
  elementScores,
  forEachBlockGradient,
  groupImportance,
  resolveLayerRange,
  saliencyLevel,
  selectGroups,
  type LayerRange,
} from '@topiary/structured-core';
import { llmPrunerOptions, type LlmPrunerOptions } from './options.js';

export interface GroupScores {
  range: LayerRange;
  attentionKind: 'head' | 'kv-group';
  groups: ParameterGroup[];
  importance: Float64Array;
}

/** Whether any block shares KV heads between query heads. */
export function usesGqa(model: CausalLM): boolean {
  const c = model.config;
  if (c.layers) return c.layers.some((l) => l.nKvHeads < l.nHeads);
  return c.nKvHeads < c.nHeads;
}

/** Importance of every scored group, by kind (`head`, `kv-group`, `ffn-channel`): what the run's report plots. */
function groupScoresByKind(groups: readonly ParameterGroup[], importance: ArrayLike<number>): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  groups.forEach((g, i) => (out[g.kind] ??= []).push(importance[i]!));
  return out;
}

/** Importance of every attention unit and FFN channel in the layer range (no pruning). */
export async function scoreGroups(model: CausalLM, options: LlmPrunerOptions, ctx: PruneContext): Promise<GroupScores> {
  const range = resolveLayerRange(options.layers, model.numBlocks);
  const saliency = ctx.saliency(options.saliency);
  if (!saliency.needs.includes('grads') && saliency.needs.some((n) => n !== 'weights')) {
    throw new TopiaryError('E_USAGE', `saliency "${saliency.name}" needs ${saliency.needs.join(', ')}; llm-pruner collects weights and gradients only`, {
      where: '--saliency',
      hint: 'use taylor-element, taylor-element-2nd or taylor-vector',
    });
  }
  const attentionKind = options.attention === 'auto' ? (usesGqa(model) ? 'kv-group' : 'head') : options.attention;
  const kinds: GroupKind[] = [attentionKind, 'ffn-channel'];
  const groups = model.groups(kinds).filter((g) => g.layer !== null && g.layer >= range.start && g.layer < range.end);
  const params = new Set(groups.flatMap((g) => g.members.map((m) => m.param)));
  const level = saliencyLevel(saliency);
  const importance = new Float64Array(groups.length);
  // the groups of one block, with their places in `groups`: scored as soon as that block's gradients are final
  const byLayer = new Map<number, number[]>();
  groups.forEach((g, i) => {
    const at = byLayer.get(g.layer!);
    if (at) at.push(i);
    else byLayer.set(g.layer!, [i]);
  });
  const scoreLayer = (layer: number, from: Parameters<typeof elementScores>[2]): void => {
    const at = byLayer.get(layer) ?? [];
    const scores = groupImportance(at.map((i) => groups[i]!), elementScores(model, saliency, from), level, options.aggregation);
    at.forEach((i, k) => (importance[i] = scores[k]!));
  };
  if (saliency.needs.includes('grads')) {
    const calibration = ctx.calibration ?? [];
    if (calibration.length === 0) {
      throw new TopiaryError('E_USAGE', `llm-pruner with saliency "${saliency.name}" needs calibration data for its gradients`, {
        where: '--calibration',
        hint: 'pass --calibration FILE (LLM-Pruner uses 10 samples of 64 tokens)',
      });
    }
    // block by block in reverse (per-block recomputation): a streamed model holds one block and its gradients
    await forEachBlockGradient(
      model,
      calibration,
      {
        batchSize: options.batchSize,
        params,
        lowest: range.start,
        events: ctx.events,
        task: 'llm-pruner:gradients',
        ...(ctx.activationBytes !== undefined ? { activationBytes: ctx.activationBytes } : {}),
        ...(ctx.spillDir !== undefined ? { spillDir: ctx.spillDir } : {}),
      },
      (layer, grads) => scoreLayer(layer, grads),
    );
  } else {
    // weights-only criteria: no gradient, one block's weights at a time
    for (const layer of byLayer.keys()) {
      const names = new Set(byLayer.get(layer)!.flatMap((i) => groups[i]!.members.map((m) => m.param)));
      const shapes = shapesOf(model, layer, names);
      scoreLayer(layer, new Map([...shapes].map(([n, shape]) => [n, { grad: new Float32Array(0), gradSquared: new Float32Array(0), shape }] as const)));
    }
  }
  return { range, attentionKind, groups, importance };
}

/** Shapes of block `layer`'s parameters `names`, from its block group (every row of each parameter) and its weights. */
function shapesOf(model: CausalLM, layer: number, names: ReadonlySet<string>): Map<string, readonly number[]> {
  const block = model.groups(['block']).find((g) => g.layer === layer);
  const out = new Map<string, readonly number[]>();
  for (const m of block?.members ?? []) {
    if (!names.has(m.param)) continue;
    const size = model.readWeight(m.param).length;
    out.set(m.param, size === m.indices.length ? [size] : [m.indices.length, size / m.indices.length]);
  }
  return out;
}

/** Per-layer sizes of a model (heads, kv heads, FFN width, parameters). */
export function layerSizes(model: CausalLM): { layer: number; nHeads: number; nKvHeads: number; hiddenDim: number }[] {
  const c = model.config;
  return Array.from({ length: model.numBlocks }, (_, i) => {
    const l = c.layers?.[i] ?? c;
    return { layer: i, nHeads: l.nHeads, nKvHeads: l.nKvHeads, hiddenDim: l.hiddenDim };
  });
}

export const llmPruner: Pruner<typeof llmPrunerOptions> = Object.freeze({
  name: 'llm-pruner',
  description: 'LLM-Pruner: Taylor importance of heads/KV groups and FFN channels, parameter-ratio target, physical removal',
  granularity: 'group' as const,
  // scores by per-block recomputation and removes by maskGroups + slim(): runs on a streamed model (SlimmableStream)
  streamsBySlimPlan: true,
  needsCalibration: true,
  // LLM-Pruner hf_prune.py: --num_examples 10, get_examples(..., seq_len=64)
  calibrationDefaults: { samples: 10, seqLen: 64, source: 'LLM-Pruner (hf_prune.py: 10 examples × 64 tokens)' },
  options: llmPrunerOptions,
  async prune(model: CausalLM, options: LlmPrunerOptions, ctx: PruneContext): Promise<PruneResult> {
    const started = performance.now();
    const before = model.parameterCount();
    const scored = await scoreGroups(model, options, ctx);
    const selection = selectGroups({
      candidates: scored.groups.map((group, i) => ({ group, importance: scored.importance[i]! })),
      totalParameters: before,
      ratio: options.ratio,
      ranking: options.ranking,
      range: scored.range,
    });
    model.maskGroups(selection.remove);
    const slim = model.slim();
    const after = slim.parameterCount();
    ctx.events.log('info', `llm-pruner removed ${selection.remove.length} groups: ${before} -> ${after} parameters`);
    return {
      model: slim,
      report: {
        method: 'llm-pruner',
        parametersBefore: before,
        parametersAfter: after,
        seconds: (performance.now() - started) / 1000,
        layers: [],
        details: {
          ratio: options.ratio,
          achievedRatio: (before - after) / before,
          saliency: options.saliency,
          aggregation: options.aggregation,
          ranking: options.ranking,
          layerRange: `${scored.range.start}:${scored.range.end}`,
          attentionUnit: scored.attentionKind,
          removedGroups: selection.remove,
          // every candidate group's importance, by group kind (the report draws one histogram per kind)
          groupScores: groupScoresByKind(scored.groups, scored.importance),
          perLayer: selection.layers,
          layerSizes: layerSizes(slim),
        },
      },
    };
  },
});
