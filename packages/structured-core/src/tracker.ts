/**
 * The element-level picture of a model whose groups are being masked one decision at a time: which elements are
 * gone, the live parameter count (what `slim()` would keep), the live architecture, and the greedy selection under
 * minimum widths. Group ids and the head → kv-group relation come from the model (`CausalLM.groups()`); nothing
 * here builds an id.
 */
import * as tf from '@tensorflow/tfjs-core';
import { TopiaryError, type CausalLM, type GroupKind, type ParameterGroup } from '@topiary/kernel';
import { selectGlobal, type Normalisation } from './ranking.js';

export interface MinKeep {
  /** Query heads (and kv groups) kept per layer at least. */
  heads: number;
  /** FFN channels kept per layer at least. */
  ffn: number;
  /** Hidden channels kept at least. */
  hidden: number;
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

export class PruneTracker {
  readonly shapes = new Map<string, number[]>();
  readonly removed = new Map<string, Uint8Array>();
  readonly masked = new Set<string>();
  private readonly groups: ParameterGroup[];
  private readonly byId: Map<string, ParameterGroup>;
  /** kv-group id → the query heads reading it. */
  private readonly readers = new Map<string, string[]>();
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
    for (const g of this.groups) if (g.kind === 'head' && g.kvGroup) this.readers.set(g.kvGroup, [...(this.readers.get(g.kvGroup) ?? []), g.id]);
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

  /** Groups of these kinds not removed yet. */
  liveGroups(kinds?: readonly GroupKind[]): ParameterGroup[] {
    return this.allGroups(kinds).filter((g) => !this.masked.has(g.id));
  }

  /** Parameters still live (what `slim()` would keep). */
  effectiveCount(): number {
    return this.total - this.removedCount;
  }

  /** Members a group would remove, plus the k/v rows of a shared kv head once its last query head goes. */
  private membersOf(g: ParameterGroup): ParameterGroup['members'] {
    if (g.kind !== 'head' || !g.kvGroup) return g.members;
    const readers = this.readers.get(g.kvGroup) ?? [];
    if (readers.length <= 1) return g.members;
    const lastStanding = readers.every((h) => h === g.id || this.masked.has(h)) && !this.masked.has(g.kvGroup);
    return lastStanding ? [...g.members, ...this.group(g.kvGroup).members] : g.members;
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
    if (g.kind === 'kv-group') for (const h of this.readers.get(g.id) ?? []) this.masked.add(h);
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

  private headLive(g: ParameterGroup): boolean {
    return !this.masked.has(g.id) && !(g.kvGroup && this.masked.has(g.kvGroup));
  }

  /** Live units per layer and kind, and hidden channels, under the current masks. */
  architecture(): ArchitectureSnapshot {
    const layers: LayerSnapshot[] = Array.from({ length: this.model.numBlocks }, () => ({ heads: 0, kvHeads: 0, ffn: 0 }));
    const liveKv = layers.map(() => new Set<string>());
    let hidden = 0;
    for (const g of this.groups) {
      if (g.kind === 'head' && this.headLive(g)) {
        layers[g.layer!]!.heads++;
        liveKv[g.layer!]!.add(g.kvGroup ?? g.id);
      } else if (g.kind === 'ffn-channel' && !this.masked.has(g.id)) layers[g.layer!]!.ffn++;
      else if (g.kind === 'hidden-channel' && !this.masked.has(g.id)) hidden++;
    }
    layers.forEach((l, i) => (l.kvHeads = liveKv[i]!.size));
    return { hidden, layers, params: this.effectiveCount() };
  }

  /**
   * Remove the least important live groups of `kinds`, ranked globally on the `normalise` scale, until at least
   * `need` parameters are gone, never below `minKeep` (nor the last kv group of a layer; blocks are never chosen:
   * pruning-aware training keeps depth). Marks them; returns their ids.
   */
  select(o: { kinds: readonly GroupKind[]; normalise: Normalisation; minKeep: MinKeep; need: number; importance: (id: string) => number | undefined }): {
    ids: string[];
    removed: number;
  } {
    const arch = this.architecture();
    const live = { heads: arch.layers.map((l) => l.heads), kv: arch.layers.map((l) => l.kvHeads), ffn: arch.layers.map((l) => l.ffn), hidden: arch.hidden };
    return selectGlobal({
      candidates: this.liveGroups(o.kinds).filter((g) => g.kind !== 'block'),
      importance: o.importance,
      normalise: o.normalise,
      need: o.need,
      take: (g) => {
        const layer = g.layer ?? 0;
        if (g.kind === 'head' && live.heads[layer]! <= o.minKeep.heads) return null;
        if (g.kind === 'kv-group' && live.kv[layer]! <= 1) return null;
        if (g.kind === 'ffn-channel' && live.ffn[layer]! <= o.minKeep.ffn) return null;
        if (g.kind === 'hidden-channel' && live.hidden <= o.minKeep.hidden) return null;
        if (g.kind === 'head') live.heads[layer]!--;
        if (g.kind === 'kv-group') live.kv[layer]!--;
        if (g.kind === 'ffn-channel') live.ffn[layer]!--;
        if (g.kind === 'hidden-channel') live.hidden--;
        return this.mark(g);
      },
    });
  }
}
