/**
 * Minimal coupled parameter groups of a Llama model, and `slimWeights`, which removes masked groups physically.
 *
 *  head         one query head: its headDim rows of q, its headDim columns of o (and its kv head's rows of k, v when
 *               no other query head reads that kv head, i.e. plain multi-head attention)
 *  kv-group     one kv head: its rows of k and v, plus every query head reading it (q rows, o columns)
 *               (with attention biases, each q/k/v row comes with its bias entry: a head's q rows → its q bias entries)
 *  ffn-channel  one intermediate channel: a row of gate and up, a column of down
 *  hidden-channel one residual-stream channel: an embedding column, every norm weight, every projection's input
 *               column (q, k, v, gate, up, lm_head) and output row (o, down)
 *  block        a whole decoder layer (masked: the block is the identity)
 */
import { loadedDtype, rememberDtype } from './formats/dtype.js';
import type { GroupKind, GroupMember, LayerShape, ParameterGroup } from '@topiary/kernel';
import { keptFields, headKvMap, isUniform, layerShape, makeConfig, parameterShapes, type LlamaConfig } from './config.js';
import { EMBED, FINAL_NORM, LM_HEAD, biasName, blockParamNames, inputNormName, linearName, postNormName, type BiasKind } from './names.js';

function range(start: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => start + i);
}

/**
 * The model's names for its groups. Ids are stable within one architecture; after `slim()` units renumber, and
 * `slimGroupMapping` says where each id went. Nothing outside this package builds an id from its parts.
 */
export const groupId = {
  head: (layer: number, h: number): string => `layers.${layer}.head.${h}`,
  kv: (layer: number, g: number): string => `layers.${layer}.kv.${g}`,
  ffn: (layer: number, c: number): string => `layers.${layer}.ffn.${c}`,
  hidden: (c: number): string => `hidden.${c}`,
  block: (layer: number): string => `layers.${layer}`,
};

export function computeGroups(config: LlamaConfig): ParameterGroup[] {
  const shapes = parameterShapes(config);
  const sizeOf = (members: readonly GroupMember[]): number =>
    members.reduce((sum, m) => {
      const shape = shapes.get(m.param)!;
      const other = shape.reduce((a, b) => a * b, 1) / shape[m.axis]!;
      return sum + m.indices.length * other;
    }, 0);
  const groups: ParameterGroup[] = [];
  const push = (g: Omit<ParameterGroup, 'size'>): void => {
    groups.push({ ...g, size: sizeOf(g.members) });
  };
  const hd = config.headDim;
  const withBias = config.attentionBias === true;
  for (let i = 0; i < config.nLayers; i++) {
    const l = layerShape(config, i);
    const map = headKvMap(l);
    const readers = (g: number): number[] => map.flatMap((k, h) => (k === g ? [h] : []));
    const headRows = (h: number): number[] => range(h * hd, hd);
    // a projection's rows, with the same entries of its bias when the model has biases
    const rows = (kind: BiasKind, h: number): GroupMember[] => [
      { param: linearName(i, kind), axis: 0, indices: headRows(h) },
      ...(withBias ? [{ param: biasName(i, kind), axis: 0, indices: headRows(h) }] : []),
    ];
    const queryMembers = (h: number): GroupMember[] => [...rows('q', h), { param: linearName(i, 'o'), axis: 1, indices: headRows(h) }];
    const kvMembers = (g: number): GroupMember[] => [...rows('k', g), ...rows('v', g)];
    for (let h = 0; h < l.nHeads; h++) {
      const own = readers(map[h]!).length === 1;
      push({
        id: groupId.head(i, h),
        kind: 'head',
        layer: i,
        index: h,
        members: [...queryMembers(h), ...(own ? kvMembers(map[h]!) : [])],
        kvGroup: groupId.kv(i, map[h]!),
      });
    }
    for (let g = 0; g < l.nKvHeads; g++) {
      push({ id: groupId.kv(i, g), kind: 'kv-group', layer: i, index: g, members: [...kvMembers(g), ...readers(g).flatMap(queryMembers)] });
    }
    for (let c = 0; c < l.hiddenDim; c++) {
      push({
        id: groupId.ffn(i, c),
        kind: 'ffn-channel',
        layer: i,
        index: c,
        members: [
          { param: linearName(i, 'gate'), axis: 0, indices: [c] },
          { param: linearName(i, 'up'), axis: 0, indices: [c] },
          { param: linearName(i, 'down'), axis: 1, indices: [c] },
        ],
      });
    }
  }
  for (let c = 0; c < config.dim; c++) {
    const members: GroupMember[] = [{ param: EMBED, axis: 1, indices: [c] }];
    for (let i = 0; i < config.nLayers; i++) {
      members.push({ param: inputNormName(i), axis: 0, indices: [c] });
      for (const k of ['q', 'k', 'v'] as const) members.push({ param: linearName(i, k), axis: 1, indices: [c] });
      members.push({ param: linearName(i, 'o'), axis: 0, indices: [c] });
      members.push({ param: postNormName(i), axis: 0, indices: [c] });
      for (const k of ['gate', 'up'] as const) members.push({ param: linearName(i, k), axis: 1, indices: [c] });
      members.push({ param: linearName(i, 'down'), axis: 0, indices: [c] });
    }
    members.push({ param: FINAL_NORM, axis: 0, indices: [c] });
    if (!config.tiedEmbeddings) members.push({ param: LM_HEAD, axis: 1, indices: [c] });
    push({ id: groupId.hidden(c), kind: 'hidden-channel', layer: null, index: c, members });
  }
  for (let i = 0; i < config.nLayers; i++) {
    const members = blockParamNames(i, withBias).map((param) => ({ param, axis: 0, indices: range(0, shapes.get(param)![0]!) }));
    push({ id: groupId.block(i), kind: 'block', layer: i, index: i, members });
  }
  return groups;
}

/**
 * How many groups of each kind `computeGroups` makes, per layer and in all, without building them (their member
 * lists of a 7B model take seconds): one per query head, kv head and FFN channel of each layer, one per hidden
 * channel, one per block. `inspect` shows these; a test checks them against `computeGroups`.
 */
export function groupCounts(config: LlamaConfig): { layers: { head: number; 'kv-group': number; 'ffn-channel': number }[]; total: Record<GroupKind, number> } {
  const layers = Array.from({ length: config.nLayers }, (_, i) => {
    const l = layerShape(config, i);
    return { head: l.nHeads, 'kv-group': l.nKvHeads, 'ffn-channel': l.hiddenDim };
  });
  const sum = (k: 'head' | 'kv-group' | 'ffn-channel'): number => layers.reduce((a, l) => a + l[k], 0);
  return { layers, total: { head: sum('head'), 'kv-group': sum('kv-group'), 'ffn-channel': sum('ffn-channel'), 'hidden-channel': config.dim, block: config.nLayers } };
}

/** Rows `rows` and columns `cols` of a row-major [R, C] matrix. */
function select(data: Float32Array, cols: number, rows: readonly number[], keepCols: readonly number[]): Float32Array {
  const out = new Float32Array(rows.length * keepCols.length);
  let o = 0;
  for (const r of rows) {
    const base = r * cols;
    for (const c of keepCols) out[o++] = data[base + c]!;
  }
  return out;
}

function selectBytes(data: Uint8Array, cols: number, rows: readonly number[], keepCols: readonly number[]): Uint8Array {
  const out = new Uint8Array(rows.length * keepCols.length);
  let o = 0;
  for (const r of rows) for (const c of keepCols) out[o++] = data[r * cols + c]!;
  return out;
}

/** What survives slimming, per kept block (in order) and for the residual stream: indices in the masked model. */
interface KeptUnits {
  hidden: number[];
  blocks: { layer: number; heads: number[]; kvs: number[]; ffn: number[]; headKvMap: number[] }[];
}

/**
 * The one statement of the slimming rules: masked units go, the rest keep their order; a kv head no live query
 * head reads goes too; a masked block goes and the later blocks renumber. `slimWeights` and `slimGroupMapping`
 * both read it.
 */
function keptUnits(config: LlamaConfig, masked: ReadonlySet<string>): KeptUnits {
  const blocks: KeptUnits['blocks'] = [];
  for (let i = 0; i < config.nLayers; i++) {
    if (masked.has(groupId.block(i))) continue;
    const l = layerShape(config, i);
    const map = headKvMap(l);
    const heads = range(0, l.nHeads).filter((h) => !masked.has(groupId.head(i, h)) && !masked.has(groupId.kv(i, map[h]!)));
    const kvs = range(0, l.nKvHeads).filter((g) => !masked.has(groupId.kv(i, g)) && heads.some((h) => map[h] === g));
    const ffn = range(0, l.hiddenDim).filter((c) => !masked.has(groupId.ffn(i, c)));
    blocks.push({ layer: i, heads, kvs, ffn, headKvMap: heads.map((h) => kvs.indexOf(map[h]!)) });
  }
  return { hidden: range(0, config.dim).filter((c) => !masked.has(groupId.hidden(c))), blocks };
}

/** Where each group id of the masked model lands in the slimmed one (ids of removed groups are absent). */
export function slimGroupMapping(config: LlamaConfig, masked: ReadonlySet<string>): Map<string, string> {
  const kept = keptUnits(config, masked);
  const out = new Map<string, string>();
  kept.blocks.forEach((b, j) => {
    b.heads.forEach((h, n) => out.set(groupId.head(b.layer, h), groupId.head(j, n)));
    b.kvs.forEach((g, n) => out.set(groupId.kv(b.layer, g), groupId.kv(j, n)));
    b.ffn.forEach((c, n) => out.set(groupId.ffn(b.layer, c), groupId.ffn(j, n)));
    out.set(groupId.block(b.layer), groupId.block(j));
  });
  kept.hidden.forEach((c, n) => out.set(groupId.hidden(c), groupId.hidden(n)));
  return out;
}

export interface SlimResult {
  config: LlamaConfig;
  weights: Map<string, Float32Array>;
  /** Element keep masks carried over to the smaller shapes (by new parameter names). */
  keep: Map<string, Uint8Array>;
}

/** One tensor of the slim model: rows (and, for matrices, columns) of a tensor of the model it comes from. */
export interface SlimTake {
  /** The parameter it is cut from (old name). */
  from: string;
  rows: readonly number[];
  /** Kept columns of a 2-D tensor; null for a 1-D one. */
  cols: readonly number[] | null;
}

/** The slim model's config and where each of its tensors comes from: what `slimWeights` cuts, without any weight. */
export interface SlimPlan {
  config: LlamaConfig;
  /** By new parameter name, in the slim model's parameter order. */
  takes: Map<string, SlimTake>;
}

/**
 * Plan the removal of masked groups (see `slimWeights`): kv heads no remaining query head reads are removed too;
 * blocks are renumbered; per-layer sizes go to config.layers when they differ. A streamed model slims by this plan
 * tensor by tensor (streamed-slim.ts); `slimWeights` materialises it at once — one plan, so both cut the same values.
 */
export function slimPlan(config: LlamaConfig, masked: ReadonlySet<string>): SlimPlan {
  const hd = config.headDim;
  const kept = keptUnits(config, masked);
  const hidden = kept.hidden;
  const takes = new Map<string, SlimTake>();
  const take = (from: string, to: string, rows: readonly number[], cols: readonly number[] | null): void => {
    takes.set(to, { from, rows, cols });
  };
  const headRows = (heads: readonly number[]): number[] => heads.flatMap((h) => range(h * hd, hd));

  take(EMBED, EMBED, range(0, config.vocabSize), hidden);
  const layers: LayerShape[] = [];
  for (const [j, { layer: i, heads, kvs, ffn, headKvMap: newMap }] of kept.blocks.entries()) {
    take(inputNormName(i), inputNormName(j), hidden, null);
    take(linearName(i, 'q'), linearName(j, 'q'), headRows(heads), hidden);
    take(linearName(i, 'k'), linearName(j, 'k'), headRows(kvs), hidden);
    take(linearName(i, 'v'), linearName(j, 'v'), headRows(kvs), hidden);
    if (config.attentionBias) {
      // each bias keeps the entries of its projection's kept rows
      take(biasName(i, 'q'), biasName(j, 'q'), headRows(heads), null);
      take(biasName(i, 'k'), biasName(j, 'k'), headRows(kvs), null);
      take(biasName(i, 'v'), biasName(j, 'v'), headRows(kvs), null);
    }
    take(linearName(i, 'o'), linearName(j, 'o'), hidden, headRows(heads));
    take(postNormName(i), postNormName(j), hidden, null);
    take(linearName(i, 'gate'), linearName(j, 'gate'), ffn, hidden);
    take(linearName(i, 'up'), linearName(j, 'up'), ffn, hidden);
    take(linearName(i, 'down'), linearName(j, 'down'), hidden, ffn);
    layers.push({ nHeads: heads.length, nKvHeads: kvs.length, hiddenDim: ffn.length, headKvMap: newMap });
  }
  take(FINAL_NORM, FINAL_NORM, hidden, null);
  if (!config.tiedEmbeddings) take(LM_HEAD, LM_HEAD, range(0, config.vocabSize), hidden);

  const base = { ...keptFields(config), dim: hidden.length, nLayers: layers.length, headDim: hd };
  const first = layers[0] ?? { nHeads: config.nHeads, nKvHeads: config.nKvHeads, hiddenDim: config.hiddenDim };
  const top = { ...base, nHeads: first.nHeads, nKvHeads: first.nKvHeads, hiddenDim: first.hiddenDim };
  const candidate = makeConfig({ ...top, layers }, 'slim');
  const slimConfig = isUniform(candidate) && (first.nKvHeads === 0 || first.nHeads % first.nKvHeads === 0) ? makeConfig(top, 'slim') : candidate;
  // the slim model is stored as the model it came from was (bf16 stays bf16)
  const dtype = loadedDtype(config);
  if (dtype) rememberDtype(slimConfig, dtype);
  return { config: slimConfig, takes };
}

/** Cut one planned tensor out of its source tensor `data` (shape `shape`). */
export function cutTake(take: SlimTake, data: Float32Array, shape: readonly number[]): Float32Array {
  if (take.cols === null || shape.length === 1) return Float32Array.from(take.rows, (r) => data[r]!);
  return select(data, shape[1]!, take.rows, take.cols);
}

/**
 * Remove masked groups: the result computes exactly what the masked model computes. Kv heads no remaining query
 * head reads are removed too; blocks are renumbered; per-layer sizes go to config.layers when they differ.
 */
export function slimWeights(
  config: LlamaConfig,
  weights: ReadonlyMap<string, Float32Array>,
  masked: ReadonlySet<string>,
  keep: ReadonlyMap<string, Uint8Array>,
): SlimResult {
  const shapes = parameterShapes(config);
  const plan = slimPlan(config, masked);
  const out = new Map<string, Float32Array>();
  const outKeep = new Map<string, Uint8Array>();
  for (const [to, t] of plan.takes) {
    const shape = shapes.get(t.from)!;
    out.set(to, cutTake(t, weights.get(t.from)!, shape));
    const k = keep.get(t.from);
    if (!k) continue;
    outKeep.set(to, t.cols === null || shape.length === 1 ? Uint8Array.from(t.rows, (r) => k[r]!) : selectBytes(k, shape[1]!, t.rows, t.cols));
  }
  return { config: plan.config, weights: out, keep: outKeep };
}
