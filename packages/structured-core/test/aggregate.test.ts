import { describe, expect, it } from 'vitest';
import { TopiaryError, type ParameterGroup, type Saliency } from '@topiary/kernel';
import { aggregate, checkAggregation, groupImportance, memberImportance, saliencyLevel, sliceSum, type LeveledSaliency } from '../src/index.js';

describe('aggregate', () => {
  const v = [2, -1, 4, 0.5];
  it('implements sum, mean, max, prod and last', () => {
    expect(aggregate(v, 'sum')).toBe(5.5);
    expect(aggregate(v, 'mean')).toBe(1.375);
    expect(aggregate(v, 'max')).toBe(4);
    expect(aggregate(v, 'prod')).toBe(-4);
    expect(aggregate(v, 'last')).toBe(0.5);
    expect(aggregate([], 'sum')).toBe(0);
  });
  it('rejects unknown aggregations and lists the known ones', () => {
    expect(() => checkAggregation('median', '--aggregation')).toThrow(TopiaryError);
    try {
      checkAggregation('median', '--aggregation');
    } catch (e) {
      const err = e as TopiaryError;
      expect(err.where).toBe('--aggregation');
      expect(err.hint).toContain('sum, mean, max, prod, last');
    }
  });
});

describe('slices of a member', () => {
  // W = [[1,2,3],[4,5,6]] (2 rows, 3 cols)
  const w = new Float32Array([1, 2, 3, 4, 5, 6]);
  it('sums rows (axis 0), columns (axis 1) and 1-D entries', () => {
    expect(sliceSum(w, [2, 3], { param: 'w', axis: 0, indices: [1] })).toBe(15);
    expect(sliceSum(w, [2, 3], { param: 'w', axis: 1, indices: [0, 2] })).toBe(1 + 3 + 4 + 6);
    expect(sliceSum(w, [6], { param: 'w', axis: 0, indices: [0, 5] })).toBe(7);
  });
  it('vector level takes |Σ| of signed scores, element level the plain sum', () => {
    const signed = new Float32Array([1, -3, 0.5, 2, -2, 1]);
    const m = { param: 'w', axis: 1, indices: [1] };
    expect(memberImportance(signed, [2, 3], m, 'vector')).toBe(5); // column 1 = [-3, -2]
    expect(memberImportance(signed, [2, 3], { param: 'w', axis: 0, indices: [0] }, 'vector')).toBe(1.5);
    expect(memberImportance(signed, [2, 3], m, 'element')).toBe(-5);
  });
});

describe('groupImportance', () => {
  // A head-like group: rows 0..1 of q (2x2), column 1 of o (2x2); an FFN-like group: row 1 of q, column 0 of o.
  const q = new Float32Array([1, 2, 3, 4]);
  const o = new Float32Array([10, 20, 30, 40]);
  const scores = new Map([
    ['q', q],
    ['o', o],
  ]);
  const shapes = new Map<string, readonly number[]>([
    ['q', [2, 2]],
    ['o', [2, 2]],
  ]);
  const g1: ParameterGroup = {
    id: 'a',
    kind: 'head',
    layer: 0,
    index: 0,
    size: 6,
    members: [
      { param: 'q', axis: 0, indices: [0, 1] },
      { param: 'o', axis: 1, indices: [1] },
    ],
  };
  const g2: ParameterGroup = { ...g1, id: 'b', members: [{ param: 'q', axis: 0, indices: [1] }, { param: 'o', axis: 1, indices: [0] }] };
  it('sums each member slice then aggregates across members', () => {
    // g1 members: 1+2+3+4 = 10 and 20+40 = 60; g2: 3+4 = 7 and 10+30 = 40
    expect([...groupImportance([g1, g2], { scores, shapes }, 'element', 'sum')]).toEqual([70, 47]);
    expect([...groupImportance([g1, g2], { scores, shapes }, 'element', 'mean')]).toEqual([35, 23.5]);
    expect([...groupImportance([g1, g2], { scores, shapes }, 'element', 'max')]).toEqual([60, 40]);
    expect([...groupImportance([g1, g2], { scores, shapes }, 'element', 'prod')]).toEqual([600, 280]);
    expect([...groupImportance([g1, g2], { scores, shapes }, 'element', 'last')]).toEqual([60, 40]);
  });
  it('names the group when a parameter has no scores', () => {
    const g3: ParameterGroup = { ...g1, id: 'c', members: [{ param: 'missing', axis: 0, indices: [0] }] };
    expect(() => groupImportance([g3], { scores, shapes }, 'element', 'sum')).toThrow(/missing.*group c/);
  });
});

describe('saliency level (the kernel Saliency says it)', () => {
  const base = { name: 's', description: 's', needs: ['weights', 'grads'] as const, score: (x: { weight: Float32Array }) => x.weight };
  const vector: Saliency = { ...base, level: 'vector' };
  const plain: Saliency = base;
  it('is element unless the criterion says vector', () => {
    expect(saliencyLevel(vector)).toBe('vector');
    expect(saliencyLevel({ ...base, level: 'element' })).toBe('element');
    expect(saliencyLevel(plain)).toBe('element');
    const old: LeveledSaliency = vector; // the alias still names the same type
    expect(saliencyLevel(old)).toBe('vector');
  });
  it('a vector-level criterion scores a member by |Σ| of its signed scores, an element-level one by the sum', () => {
    // signed w·g of a taylor-vector-like criterion over one member of four weights
    const signed = new Float32Array([1, -0.5, -1, 0.3]);
    const g: ParameterGroup = { id: 'g', kind: 'head', layer: 0, index: 0, size: 4, members: [{ param: 'w', axis: 0, indices: [0, 1] }] };
    const shapes = new Map([['w', [2, 2] as const]]);
    const vec = groupImportance([g], { scores: new Map([['w', signed]]), shapes }, saliencyLevel(vector), 'sum');
    expect(vec[0]).toBeCloseTo(Math.abs(1 - 0.5 - 1 + 0.3), 6); // 0.2: cancellation is the point of the vector form
    const el = groupImportance([g], { scores: new Map([['w', signed.map(Math.abs)]]), shapes }, saliencyLevel(plain), 'sum');
    expect(el[0]).toBeCloseTo(2.8, 6);
  });
});
