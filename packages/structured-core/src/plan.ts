/**
 * Which groups to remove for a parameter-ratio target.
 *
 * The target `ratio` is the fraction of the WHOLE model's parameters (`CausalLM.parameterCount()`: embeddings,
 * norms and head included, a tied head counted once) to remove. Only attention units (heads, or KV groups under
 * GQA) and FFN channels of the blocks in the layer range are candidates, so the achievable ratio is bounded by
 * their share of the model.
 *
 * - `per-layer` (LLM-Pruner's default): every block in range loses the same fraction
 *   `r = ratio · total / Σ_range (attention + FFN parameters)` of its prunable parameters: `round(r · units)`
 *   attention units, then as many FFN channels as make up the rest of the block's share (rounded), so the coarse
 *   attention rounding does not throw the total off; within a block the lowest-importance units go.
 * - `global`: all candidate groups of the range are ranked together by importance per parameter
 *   (importance / group size, so a KV group and an FFN channel compare on one scale) and removed lowest first
 *   until the removed parameters reach the target; a group that would empty its layer's attention or FFN is skipped
 *   (`selectGlobal`, the selection the pruning-aware trainer uses too).
 */
import { parseBlockRange, TopiaryError, type BlockRangeSpec, type ParameterGroup } from '@topiary/kernel';
import { selectGlobal } from './ranking.js';

export type Ranking = 'per-layer' | 'global';

/** Blocks [start, end) that may be pruned. */
export interface LayerRange {
  start: number;
  end: number;
}

/** LLM-Pruner's choice: leave the first and the last block alone. */
export function defaultLayerRange(numBlocks: number): LayerRange {
  return numBlocks > 2 ? { start: 1, end: numBlocks - 1 } : { start: 0, end: numBlocks };
}

/** A layer range as written, before the model is known: END may be open (`2:`). */
export type LayerSpec = BlockRangeSpec;

/** Parse a contiguous range (`START:END`, END exclusive, either side may be empty; or `A-B`, inclusive). */
export function parseLayerSpec(text: string, where = '--layers'): LayerSpec {
  const range = parseBlockRange(text);
  if (!range) {
    throw new TopiaryError('E_USAGE', `layer range must look like START:END (block indices, END exclusive), got ${JSON.stringify(text)}`, {
      where,
      hint: 'e.g. 1:4 (or 1-3) for blocks 1, 2 and 3; 2: for block 2 to the last',
    });
  }
  return range;
}

/** The concrete range of a spec for a model with `numBlocks` blocks (no spec: the default range). */
export function resolveLayerRange(spec: LayerSpec | undefined, numBlocks: number, where = '--layers'): LayerRange {
  if (spec === undefined) return defaultLayerRange(numBlocks);
  return checkLayerRange({ start: spec.start, end: spec.end ?? numBlocks }, numBlocks, where);
}

export function parseLayerRange(text: string, numBlocks: number, where = '--layers'): LayerRange {
  return resolveLayerRange(parseLayerSpec(text, where), numBlocks, where);
}

export function checkLayerRange(range: LayerRange, numBlocks: number, where = '--layers'): LayerRange {
  const { start, end } = range;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > numBlocks || start >= end) {
    throw new TopiaryError('E_USAGE', `layer range ${start}:${end} is not a non-empty range of the model's ${numBlocks} blocks`, {
      where,
      hint: `use START:END with 0 <= START < END <= ${numBlocks}`,
    });
  }
  return { start, end };
}

export interface ScoredGroup {
  group: ParameterGroup;
  importance: number;
}

export interface SelectionRequest {
  /** Attention units (kind `head` or `kv-group`) and FFN channels (`ffn-channel`) with importances. */
  candidates: readonly ScoredGroup[];
  /** Whole-model parameter count. */
  totalParameters: number;
  ratio: number;
  ranking: Ranking;
  range: LayerRange;
  /** Flag or field to name in errors (default `--ratio`). */
  where?: string;
}

export interface Selection {
  /** Group ids to remove, in ascending importance within each layer. */
  remove: string[];
  removedParameters: number;
  targetParameters: number;
  /** Per layer: attention units and FFN channels before → after. */
  layers: { layer: number; attention: [number, number]; ffn: [number, number] }[];
}

function sum(groups: readonly ScoredGroup[]): number {
  return groups.reduce((a, c) => a + c.group.size, 0);
}

function isAttention(g: ParameterGroup): boolean {
  return g.kind === 'head' || g.kind === 'kv-group';
}

function byAscending(a: ScoredGroup, b: ScoredGroup): number {
  return a.importance - b.importance || a.group.index - b.group.index;
}

export function selectGroups(req: SelectionRequest): Selection {
  const where = req.where ?? '--ratio';
  const target = Math.round(req.ratio * req.totalParameters);
  const inRange = req.candidates.filter((c) => c.group.layer !== null && c.group.layer >= req.range.start && c.group.layer < req.range.end);
  const layers = new Map<number, { attention: ScoredGroup[]; ffn: ScoredGroup[] }>();
  for (const c of inRange) {
    const l = c.group.layer!;
    const slot = layers.get(l) ?? { attention: [], ffn: [] };
    if (isAttention(c.group)) slot.attention.push(c);
    else if (c.group.kind === 'ffn-channel') slot.ffn.push(c);
    layers.set(l, slot);
  }
  const prunable = inRange.reduce((s, c) => s + c.group.size, 0);
  const rangeText = `blocks ${req.range.start}..${req.range.end - 1}`;
  if (target > prunable) {
    throw new TopiaryError(
      'E_USAGE',
      `ratio ${req.ratio} asks to remove ${target} of ${req.totalParameters} parameters, but the attention and FFN groups of ${rangeText} hold only ${prunable}`,
      { where, hint: `use a ratio below ${(prunable / req.totalParameters).toFixed(3)} or widen --layers` },
    );
  }
  const remove: string[] = [];
  const removedIn = new Map<number, { attention: number; ffn: number }>();
  let removed = 0;
  const order = [...layers.keys()].sort((a, b) => a - b);
  if (req.ranking === 'per-layer') {
    const r = prunable === 0 ? 0 : target / prunable;
    for (const l of order) {
      const slot = layers.get(l)!;
      // Attention units are coarse (a KV group can be 10x an FFN channel): round them first, then let the FFN
      // channels make up the difference so each block loses its share r of its prunable parameters.
      const nA = Math.round(r * slot.attention.length);
      const layerTarget = r * (sum(slot.attention) + sum(slot.ffn));
      const ffnSize = slot.ffn.length > 0 ? sum(slot.ffn) / slot.ffn.length : 1;
      const attentionRemoved = slot.attention.length > 0 ? (nA * sum(slot.attention)) / slot.attention.length : 0;
      const nF = Math.max(0, Math.round((layerTarget - attentionRemoved) / ffnSize));
      if (slot.attention.length > 0 && nA >= slot.attention.length) {
        throw new TopiaryError('E_USAGE', `ratio ${req.ratio} would remove every attention head of block ${l} (${nA} of ${slot.attention.length} units)`, {
          where,
          hint: `lower the ratio, widen --layers, or use --global ranking`,
        });
      }
      if (slot.ffn.length > 0 && nF >= slot.ffn.length) {
        throw new TopiaryError('E_USAGE', `ratio ${req.ratio} would remove every FFN channel of block ${l} (${nF} of ${slot.ffn.length})`, {
          where,
          hint: `lower the ratio, widen --layers, or use --global ranking`,
        });
      }
      const goA = [...slot.attention].sort(byAscending).slice(0, nA);
      const goF = [...slot.ffn].sort(byAscending).slice(0, nF);
      for (const c of [...goA, ...goF]) {
        remove.push(c.group.id);
        removed += c.group.size;
      }
      removedIn.set(l, { attention: nA, ffn: nF });
    }
  } else {
    for (const l of order) removedIn.set(l, { attention: 0, ffn: 0 });
    const importance = new Map(inRange.map((c) => [c.group.id, c.importance] as const));
    const taken = selectGlobal({
      candidates: inRange.map((c) => c.group),
      importance: (id) => importance.get(id),
      normalise: 'per-param',
      need: target,
      take: (g) => {
        const slot = layers.get(g.layer!)!;
        const done = removedIn.get(g.layer!)!;
        if (isAttention(g)) {
          if (done.attention + 1 >= slot.attention.length) return null;
          done.attention++;
        } else {
          if (done.ffn + 1 >= slot.ffn.length) return null;
          done.ffn++;
        }
        return g.size;
      },
    });
    remove.push(...taken.ids);
    removed = taken.removed;
    if (removed < target) {
      throw new TopiaryError('E_USAGE', `ratio ${req.ratio} cannot be reached without removing every attention head or FFN channel of a block in ${rangeText}`, {
        where,
        hint: 'lower the ratio or widen --layers',
      });
    }
  }
  return {
    remove,
    removedParameters: removed,
    targetParameters: target,
    layers: order.map((l) => {
      const slot = layers.get(l)!;
      const done = removedIn.get(l)!;
      return {
        layer: l,
        attention: [slot.attention.length, slot.attention.length - done.attention],
        ffn: [slot.ffn.length, slot.ffn.length - done.ffn],
      };
    }),
  };
}
