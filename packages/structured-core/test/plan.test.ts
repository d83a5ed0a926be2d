import { describe, expect, it } from 'vitest';
import { TopiaryError, type ParameterGroup } from '@topiary/kernel';
import { defaultLayerRange, parseLayerRange, selectGroups, type ScoredGroup } from '../src/index.js';

function group(kind: ParameterGroup['kind'], layer: number, index: number, size: number): ParameterGroup {
  const tag = kind === 'ffn-channel' ? 'ffn' : kind;
  return { id: `layers.${layer}.${tag}.${index}`, kind, layer, index, size, members: [] };
}

// 3 layers, each 4 kv-groups of 100 params and 10 FFN channels of 10 params (500 prunable per layer).
function candidates(score: (kind: string, layer: number, index: number) => number): ScoredGroup[] {
  const out: ScoredGroup[] = [];
  for (let l = 0; l < 3; l++) {
    for (let i = 0; i < 4; i++) out.push({ group: group('kv-group', l, i, 100), importance: score('kv', l, i) });
    for (let i = 0; i < 10; i++) out.push({ group: group('ffn-channel', l, i, 10), importance: score('ffn', l, i) });
  }
  return out;
}

describe('layer ranges', () => {
  it('default skips the first and last block', () => {
    expect(defaultLayerRange(5)).toEqual({ start: 1, end: 4 });
    expect(defaultLayerRange(2)).toEqual({ start: 0, end: 2 });
  });
  it('parses START:END with open ends and rejects bad ones naming the flag', () => {
    expect(parseLayerRange('1:3', 5)).toEqual({ start: 1, end: 3 });
    expect(parseLayerRange(':3', 5)).toEqual({ start: 0, end: 3 });
    expect(parseLayerRange('2:', 5)).toEqual({ start: 2, end: 5 });
    expect(parseLayerRange('1-3', 5)).toEqual({ start: 1, end: 4 }); // the post-training pruners' inclusive form
    expect(() => parseLayerRange('3:3', 5)).toThrow(TopiaryError);
    expect(() => parseLayerRange('0:6', 5)).toThrow(/5 blocks/);
    try {
      parseLayerRange('x', 5);
    } catch (e) {
      expect((e as TopiaryError).where).toBe('--layers');
    }
  });
});

describe('selectGroups', () => {
  it('per-layer: the same fraction of each layer, lowest importance first', () => {
    // total 2000 params, ratio 0.375 -> 750 of the 1500 prunable in range 0..2 -> r = 0.5: 2 kv-groups, 5 channels.
    const c = candidates((_k, l, i) => (l === 1 ? 10 - i : i));
    const sel = selectGroups({ candidates: c, totalParameters: 2000, ratio: 0.375, ranking: 'per-layer', range: { start: 0, end: 3 } });
    expect(sel.removedParameters).toBe(3 * (200 + 50));
    expect(sel.remove).toContain('layers.0.kv-group.0');
    expect(sel.remove).toContain('layers.0.kv-group.1');
    expect(sel.remove).toContain('layers.1.kv-group.3');
    expect(sel.remove).toContain('layers.1.kv-group.2');
    expect(sel.remove).not.toContain('layers.1.kv-group.0');
    expect(sel.layers[0]).toEqual({ layer: 0, attention: [4, 2], ffn: [10, 5] });
  });
  it('per-layer: respects the layer range', () => {
    const c = candidates(() => 1);
    const sel = selectGroups({ candidates: c, totalParameters: 2000, ratio: 0.125, ranking: 'per-layer', range: { start: 1, end: 2 } });
    expect(sel.remove.every((id) => id.startsWith('layers.1.'))).toBe(true);
    expect(sel.removedParameters).toBe(200 + 50);
  });
  it('per-layer: a ratio that empties a layer is an error naming --ratio', () => {
    const c = candidates(() => 1);
    let err: TopiaryError | undefined;
    try {
      selectGroups({ candidates: c, totalParameters: 2000, ratio: 0.23, ranking: 'per-layer', range: { start: 1, end: 2 } });
    } catch (e) {
      err = e as TopiaryError;
    }
    expect(err).toBeInstanceOf(TopiaryError);
    expect(err!.where).toBe('--ratio');
    expect(err!.message).toMatch(/every attention head of block 1/);
  });
  it('a ratio above what the range holds is an error', () => {
    expect(() =>
      selectGroups({ candidates: candidates(() => 1), totalParameters: 2000, ratio: 0.3, ranking: 'per-layer', range: { start: 1, end: 2 } }),
    ).toThrow(/hold only 500/);
  });
  it('global: ranks by importance per parameter and never empties a layer', () => {
    // kv-groups of layer 2 are cheap per parameter (importance 1 per 100 params) -> go first, but one must stay.
    const c = candidates((k, l) => (k === 'kv' ? (l === 2 ? 1 : 1000) : 5));
    const sel = selectGroups({ candidates: c, totalParameters: 2000, ratio: 0.2, ranking: 'global', range: { start: 0, end: 3 } });
    expect(sel.remove.slice(0, 3)).toEqual(['layers.2.kv-group.0', 'layers.2.kv-group.1', 'layers.2.kv-group.2']);
    expect(sel.remove).not.toContain('layers.2.kv-group.3');
    expect(sel.removedParameters).toBeGreaterThanOrEqual(400);
    expect(sel.layers[2]!.attention).toEqual([4, 1]);
  });
});
