/**
 * Pruning bookkeeping for the current (possibly masked) model: which elements are gone, the effective parameter
 * count, the global ranking of groups across kinds, and how group ids move when the model is slimmed.
 *
 * Ranking across kinds on a common scale (`normalise`):
 *  - `per-param` (default): accumulated |ΔL| divided by the parameters the group removes. The score estimates
 *    the loss increase of removing the group, which is already in loss units for every kind; what differs is the
 *    price. Removing P parameters at the least loss is a knapsack whose greedy solution takes groups by ΔL per
 *    parameter, so this ranking lets a hidden channel (which spans every layer) compete fairly with an FFN channel.
 *  - `zscore`: standardise within each kind; it forces every kind to lose a similar share, which undoes the point
 *    of a global ranking — kept for comparison.
 *  - `none`: raw scores.
 */
import * as tf from '@tensorflow/tfjs';
import { TopiaryError, type CausalLM, type GroupKind, type ModelConfig, type ParameterGroup } from '@topiary/kernel';
import { headKvMap, layerShape } from '@topiary/model-llama';

export type Normalisation = 'per-param' | 'zscore' | 'none';
export const NORMALISATIONS: readonly Normalisation[] = ['per-param', 'zscore', 'none'];

export interface MinKeep {
  /** Query heads (and kv groups) kept per layer at least. */
  heads: number;
  /** FFN channels kept per layer at least. */
  ffn: number;
  /** Hidden channels kept at least. */
  hidden: number;
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The element-level picture of what is removed from the current model. */
export class PruneTracker {
  readonly shapes = new Map<string, number[]>();
  readonly removed = new Map<string, Uint8Array>();
  readonly masked = new Set<string>();
  private readonly groups: ParameterGroup[];
  private readonly byId: Map<string, ParameterGroup>;
  /** head id → its kv-group id, for kv heads shared by several query heads. */
  private readonly kvOfHead = new Map<string, string>();
  private readonly headsOfKv = new Map<string, string[]>();
  private removedCount = 0;
  readonly total: number;

  constructor(readonly model: CausalLM) {
    let total = 0;
    for (const [name, v] of model.parameters()) {
      this.shapes.set(name, [...v.shape]);
      this.removed.set(name, new Uint8Array(v.size));
      total += v.size;
    }
    this.total = total;
    this.groups = model.groups();
    this.byId = new Map(this.groups.map((g) => [g.id, g]));
    const config = model.config;
    for (let i = 0; i < config.nLayers; i++) {
      const map = headKvMap(layerShape(config, i));
      map.forEach((k, h) => {
        const kv = `layers.${i}.kv.${k}`;
        this.kvOfHead.set(`layers.${i}.head.${h}`, kv);
        this.headsOfKv.set(kv, [...(this.headsOfKv.get(kv) ?? []), `layers.${i}.head.${h}`]);
      });
    }
    for (const id of model.maskedGroups()) this.mark(this.group(id));
  }

  group(id: string): ParameterGroup {
    const g = this.byId.get(id);
    if (!g) throw new TopiaryError('E_INTERNAL', `no group "${id}" in the current model`, { where: id });
    return g;
  }

  allGroups(kinds?: readonly GroupKind[]): ParameterGroup[] {
    return kinds ? this.groups.filter((g) => kinds.includes(g.kind)) : this.groups;
  }

  /** Parameters still live (what `slim()` would keep). */
  effectiveCount(): number {
    return this.total - this.removedCount;
  }

  /** Members a group would remove, plus the k/v rows of a shared kv head once its last query head goes. */
  private membersOf(g: ParameterGroup): ParameterGroup['members'] {
    if (g.kind !== 'head') return g.members;
    const kv = this.kvOfHead.get(g.id);
    const readers = kv ? this.headsOfKv.get(kv)! : [];
    if (!kv || readers.length <= 1) return g.members;
    const lastStanding = readers.every((h) => h === g.id || this.masked.has(h)) && !this.masked.has(kv);
    return lastStanding ? [...g.members, ...this.group(kv).members] : g.members;
  }

  private visit(g: ParameterGroup, write: boolean): number {
    let n = 0;
    for (const m of this.membersOf(g)) {
      const shape = this.shapes.get(m.param);
      const bits = this.removed.get(m.param);
      if (!shape || !bits) continue;
      if (shape.length === 1) {
        for (const i of m.indices) if (!bits[i]) (n++, write && (bits[i] = 1));
      } else if (m.axis === 0) {
        const cols = shape[1]!;
        for (const r of m.indices) for (let c = r * cols; c < (r + 1) * cols; c++) if (!bits[c]) (n++, write && (bits[c] = 1));
      } else {
        const [rows, cols] = shape as [number, number];
        for (let r = 0; r < rows; r++) for (const c of m.indices) if (!bits[r * cols + c]) (n++, write && (bits[r * cols + c] = 1));
      }
    }
    return n;
  }

  /** Parameters removing `g` would take away now (overlaps with earlier removals not counted twice). */
  marginal(g: ParameterGroup): number {
    return this.visit(g, false);
  }

  /** Record `g` as removed; returns the parameters it took away. */
  mark(g: ParameterGroup): number {
    const n = this.visit(g, true);
    this.masked.add(g.id);
    if (g.kind === 'kv-group') for (const h of this.headsOfKv.get(g.id) ?? []) this.masked.add(h);
    this.removedCount += n;
    return n;
  }

  /** Keep masks (1 live, 0 removed) as tensors, for the parameters that lost anything. Caller disposes. */
  keepTensors(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, bits] of this.removed) {
      if (!bits.includes(1)) continue;
      out.set(name, tf.tensor(Float32Array.from(bits, (b) => 1 - b), this.shapes.get(name)!));
    }
    return out;
  }

  /** Live units per layer and kind, and hidden channels, under the current masks. */
  architecture(): ArchitectureSnapshot {
    const c = this.model.config;
    const layers: LayerSnapshot[] = [];
    for (let i = 0; i < c.nLayers; i++) {
      const l = layerShape(c, i);
      const map = headKvMap(l);
      const heads = map.filter((k, h) => !this.masked.has(`layers.${i}.head.${h}`) && !this.masked.has(`layers.${i}.kv.${k}`));
      const liveKv = new Set(map.filter((k, h) => !this.masked.has(`layers.${i}.head.${h}`) && !this.masked.has(`layers.${i}.kv.${k}`)));
      let ffn = 0;
      for (let j = 0; j < l.hiddenDim; j++) if (!this.masked.has(`layers.${i}.ffn.${j}`)) ffn++;
      layers.push({ heads: heads.length, kvHeads: liveKv.size, ffn });
    }
    let hidden = 0;
    for (let j = 0; j < c.dim; j++) if (!this.masked.has(`hidden.${j}`)) hidden++;
    return { hidden, layers, params: this.effectiveCount() };
  }
}

export interface LayerSnapshot {
  heads: number;
  kvHeads: number;
  ffn: number;
}

export interface ArchitectureSnapshot {
  hidden: number;
  layers: LayerSnapshot[];
  params: number;
}

/** Scores on the common scale used for the global ranking. */
export function normaliseScores(
  groups: readonly ParameterGroup[],
  raw: (id: string) => number | undefined,
  mode: Normalisation,
): Map<string, number> {
  const out = new Map<string, number>();
  if (mode === 'zscore') {
    const byKind = new Map<GroupKind, ParameterGroup[]>();
    for (const g of groups) byKind.set(g.kind, [...(byKind.get(g.kind) ?? []), g]);
    for (const list of byKind.values()) {
      const xs = list.map((g) => raw(g.id) ?? 0);
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length) || 1;
      list.forEach((g, i) => out.set(g.id, (xs[i]! - mean) / sd));
    }
    return out;
  }
  for (const g of groups) {
    const s = raw(g.id) ?? 0;
    out.set(g.id, mode === 'per-param' ? s / Math.max(1, g.size) : s);
  }
  return out;
}

export interface SelectOptions {
  kinds: readonly GroupKind[];
  normalise: Normalisation;
  minKeep: MinKeep;
  /** Parameters that must go now. */
  need: number;
  score: (id: string) => number | undefined;
}

/**
 * Pick the least salient live groups, globally across `kinds`, until at least `need` parameters are gone (the
 * last group may overshoot by less than its own size). Marks them in the tracker; returns their ids.
 */
export function selectGroups(tracker: PruneTracker, o: SelectOptions): { ids: string[]; removed: number } {
  if (o.need <= 0) return { ids: [], removed: 0 };
  const candidates = tracker.allGroups(o.kinds).filter((g) => !tracker.masked.has(g.id));
  const scores = normaliseScores(candidates, o.score, o.normalise);
  // Ties (e.g. never-observed groups) fall back to the model's group order, so the choice is deterministic.
  const order = candidates.map((g, i) => ({ g, s: scores.get(g.id)!, i })).sort((a, b) => a.s - b.s || a.i - b.i);
  const arch = tracker.architecture();
  const live = {
    heads: arch.layers.map((l) => l.heads),
    kv: arch.layers.map((l) => l.kvHeads),
    ffn: arch.layers.map((l) => l.ffn),
    hidden: arch.hidden,
  };
  const ids: string[] = [];
  let removed = 0;
  for (const { g } of order) {
    if (removed >= o.need) break;
    const layer = g.layer ?? 0;
    if (g.kind === 'head' && live.heads[layer]! <= o.minKeep.heads) continue;
    if (g.kind === 'kv-group' && live.kv[layer]! <= 1) continue;
    if (g.kind === 'ffn-channel' && live.ffn[layer]! <= o.minKeep.ffn) continue;
    if (g.kind === 'hidden-channel' && live.hidden <= o.minKeep.hidden) continue;
    if (g.kind === 'block') continue; // blocks are never chosen by the size schedule (EfficientLLM keeps depth)
    removed += tracker.mark(g);
    ids.push(g.id);
    if (g.kind === 'head') live.heads[layer]!--;
    if (g.kind === 'kv-group') live.kv[layer]!--;
    if (g.kind === 'ffn-channel') live.ffn[layer]!--;
    if (g.kind === 'hidden-channel') live.hidden--;
  }
  return { ids, removed };
}

/**
 * Where each group id of the masked model lands in the slimmed one (the same rules as `slimWeights`: masked units
 * are dropped, the rest keep their order; kv heads no live query head reads are dropped; blocks renumber).
 */
export function slimIdMapping(config: ModelConfig, masked: ReadonlySet<string>): Map<string, string> {
  const out = new Map<string, string>();
  let j = 0;
  for (let i = 0; i < config.nLayers; i++) {
    if (masked.has(`layers.${i}`)) continue;
    const l = layerShape(config, i);
    const map = headKvMap(l);
    const heads = map.flatMap((k, h) => (!masked.has(`layers.${i}.head.${h}`) && !masked.has(`layers.${i}.kv.${k}`) ? [h] : []));
    heads.forEach((h, n) => out.set(`layers.${i}.head.${h}`, `layers.${j}.head.${n}`));
    const kvs = [...Array(l.nKvHeads).keys()].filter((g) => !masked.has(`layers.${i}.kv.${g}`) && heads.some((h) => map[h] === g));
    kvs.forEach((g, n) => out.set(`layers.${i}.kv.${g}`, `layers.${j}.kv.${n}`));
    let n = 0;
    for (let c = 0; c < l.hiddenDim; c++) if (!masked.has(`layers.${i}.ffn.${c}`)) out.set(`layers.${i}.ffn.${c}`, `layers.${j}.ffn.${n++}`);
    out.set(`layers.${i}`, `layers.${j}`);
    j++;
  }
  let n = 0;
  for (let c = 0; c < config.dim; c++) if (!masked.has(`hidden.${c}`)) out.set(`hidden.${c}`, `hidden.${n++}`);
  return out;
}

export function parameterTotal(model: CausalLM): number {
  let n = 0;
  for (const v of model.parameters().values()) n += product(v.shape);
  return n;
}
