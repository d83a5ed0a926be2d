import { describe, expect, it } from 'vitest';
import { genericPrimitives as p } from '@topiary/linalg';
import { isExactNM, nmKeepMask, nmPruneCount, outlierRatio, owlSparsities, parseLayers, selectKeepMask, validatePostTraining } from '../src/index.js';
import { readReference, type UnitReference } from './fixture.js';

function scoresOf(rows: number, cols: number, seed = 1): Float32Array {
  // a deterministic permutation-like sequence (no ties) — shape tests only; real-weight tests live in the pruners
  const s = new Float32Array(rows * cols);
  let x = seed;
  for (let i = 0; i < s.length; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    s[i] = x / 2147483648;
  }
  return s;
}

describe('N:M masks', () => {
  it('keep exactly M−N of every group, and the N largest of each', () => {
    const rows = 7;
    const cols = 64;
    const s = scoresOf(rows, cols);
    for (const [n, m] of [[2, 4], [4, 8], [1, 4]] as const) {
      const keep = nmKeepMask(p, s, rows, cols, n, m);
      expect(isExactNM(keep, rows, cols, n, m)).toBe(true);
      for (let r = 0; r < rows; r++) {
        for (let g = 0; g < cols; g += m) {
          const kept = [...Array(m).keys()].filter((j) => keep[r * cols + g + j] === 1).map((j) => s[r * cols + g + j]!);
          const dropped = [...Array(m).keys()].filter((j) => keep[r * cols + g + j] === 0).map((j) => s[r * cols + g + j]!);
          expect(Math.min(...kept)).toBeGreaterThan(Math.max(...dropped));
        }
      }
    }
  });

  it('a trailing partial group drops floor(N·r/M) (172 columns under 4:8)', () => {
    expect(nmPruneCount(4, 8, 4)).toBe(2);
    expect(nmPruneCount(2, 4, 3)).toBe(1);
    expect(nmPruneCount(4, 8, 8)).toBe(4);
    const s = scoresOf(5, 172);
    const keep = nmKeepMask(p, s, 5, 172, 4, 8);
    expect(isExactNM(keep, 5, 172, 4, 8)).toBe(true);
    expect(keep.reduce((a, b) => a + b, 0)).toBe(5 * 86);
  });

  it('row and layer scopes drop floor(cols·s) per row / floor(n·s) overall', () => {
    const s = scoresOf(6, 50);
    const row = selectKeepMask(p, s, 6, 50, { sparsity: 0.3, scope: 'row' });
    for (let r = 0; r < 6; r++) expect(row.subarray(r * 50, r * 50 + 50).reduce((a, b) => a + b, 0)).toBe(35);
    const layer = selectKeepMask(p, s, 6, 50, { sparsity: 0.3, scope: 'layer' });
    expect(layer.reduce((a, b) => a + b, 0)).toBe(300 - 90);
  });
});

describe('OWL', () => {
  const ref = readReference<UnitReference>('prune_unit.json').owl;

  it('matches the PyTorch reference sparsities from the same outlier ratios', () => {
    const got = owlSparsities(ref.ratios, ref.target, ref.lambda);
    got.forEach((s, i) => expect(s).toBeCloseTo(ref.sparsities[i]!, 12));
  });

  it('has mean = target, spread = 2λ, and more outliers → lower sparsity', () => {
    const ratios = [0.01, 0.05, 0.02, 0.03];
    const s = owlSparsities(ratios, 0.6, 0.08);
    expect(s.reduce((a, b) => a + b, 0) / s.length).toBeCloseTo(0.6, 12);
    expect(Math.max(...s) - Math.min(...s)).toBeCloseTo(0.16, 12);
    expect(s[1]).toBe(Math.min(...s));
    expect(s[0]).toBe(Math.max(...s));
    expect(owlSparsities([0.2, 0.2], 0.5, 0.08)).toEqual([0.5, 0.5]);
  });

  it('outlier ratio counts scores above M × the mean of all arrays together', () => {
    // mean of [1,1,1,1,1,1,1,1,1,11] = 2; > 5·2 = 10 → one outlier in ten
    expect(outlierRatio([new Float32Array([1, 1, 1, 1, 1]), new Float32Array([1, 1, 1, 1, 11])], 5)).toBeCloseTo(0.1, 12);
  });

  it('refuses ratios that leave [0, 1)', () => {
    expect(() => owlSparsities([0, 1], 0.05, 0.1)).toThrow(/outside \[0, 1\)/);
  });
});

function whereOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { where?: string }).where;
  }
  return undefined;
}

describe('options', () => {
  it('validates sparsity, pattern, OWL and layers with the flag in the error', () => {
    expect(validatePostTraining({ sparsity: 0.5 }, '', 'wanda')).toMatchObject({ sparsity: 0.5, scope: 'row', saliency: 'wanda' });
    expect(validatePostTraining({ pattern: '2:4' }, '', 'wanda')).toMatchObject({ sparsity: 0.5, pattern: { n: 2, m: 4 } });
    expect(() => validatePostTraining({ sparsity: 1 }, '', 'wanda')).toThrow(/must be in \[0,1\)/);
    expect(whereOf(() => validatePostTraining({ sparsity: -0.1 }, '--sparsity', 'wanda'))).toBe('--sparsity');
    expect(whereOf(() => validatePostTraining({}, '', 'wanda'))).toBe('sparsity');
    expect(() => validatePostTraining({ sparsity: 0.5, pattern: '4:4' }, '', 'wanda')).toThrow(/0 < N < M/);
    expect(() => validatePostTraining({ sparsity: 0.3, pattern: '2:4' }, '', 'wanda')).toThrow(/fixes the sparsity/);
    expect(() => validatePostTraining({ sparsity: 0.5, pattern: '2:4', owl: true }, '', 'wanda')).toThrow(/N:M/);
    expect(validatePostTraining({ sparsity: 0.5, owl: true }, '', 'wanda').owl).toEqual({ M: 5, lambda: 0.08 });
    expect(parseLayers('0,2-4', '--layers')).toEqual([0, 2, 3, 4]);
    expect(parseLayers('1:4', '--layers')).toEqual([1, 2, 3]); // the structured pruners' START:END form
    expect(() => parseLayers('3:3', '--layers')).toThrow(/empty/);
    try {
      validatePostTraining({ sparsity: 2 }, 'stages[0].prune', 'wanda');
      expect.unreachable();
    } catch (e) {
      expect((e as { where?: string }).where).toBe('stages[0].prune.sparsity');
    }
  });
});
