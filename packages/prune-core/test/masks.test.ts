import { describe, expect, it } from 'vitest';
import { genericPrimitives as p } from '@topiary/linalg';
import { optionFields, optionsJsonSchema, parseOptions, TopiaryError } from '@topiary/kernel';
import {
  defaultBatchSize,
  isExactNM,
  nmKeepMask,
  nmPruneCount,
  outlierRatio,
  owlSparsities,
  parseLayers,
  postTrainingOptions,
  scorePruner,
  saliencyMethod,
  selectKeepMask,
  type PostTrainingOptions,
} from '../src/index.js';
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

const wanda = postTrainingOptions({ defaultSaliency: 'wanda' });
const parse = (raw: Record<string, unknown>, where = '') => parseOptions(wanda, raw, where);

function errorOf(fn: () => unknown): TopiaryError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TopiaryError);
    return e as TopiaryError;
  }
  throw new Error('expected an error');
}

describe('options', () => {
  it('validates sparsity, pattern, OWL and layers with the field in the error', () => {
    expect(parse({ sparsity: 0.5 })).toMatchObject({ sparsity: 0.5, scope: 'row', saliency: 'wanda', batchSize: 0 });
    expect(parse({ sparsity: 0.5 }).owl).toBeUndefined();
    expect(parse({ pattern: '2:4' })).toMatchObject({ sparsity: 0.5, pattern: { n: 2, m: 4 } });
    expect(parse({ pattern: '2:4', sparsity: 0.5 })).toMatchObject({ sparsity: 0.5, pattern: { n: 2, m: 4 } });
    expect(() => parse({ sparsity: 1 })).toThrow(/must be in \[0,1\)/);
    expect(whereOf(() => parse({ sparsity: -0.1 }))).toBe('sparsity');
    expect(errorOf(() => parse({})).message).toMatch(/is required/);
    expect(whereOf(() => parse({}))).toBe('sparsity');
    expect(errorOf(() => parse({ sparsity: 'half' })).message).toBe('must be a number, got "half"');
    expect(errorOf(() => parse({ pattern: '2/4' }))).toMatchObject({ where: 'pattern', message: 'must look like N:M (e.g. 2:4), got "2/4"' });
    expect(() => parse({ sparsity: 0.5, pattern: '4:4' })).toThrow(/0 < N < M/);
    const fixed = errorOf(() => parse({ sparsity: 0.3, pattern: '2:4' }));
    expect(fixed).toMatchObject({ where: 'sparsity', hint: 'leave the sparsity out or set it to N/M' });
    expect(fixed.message).toMatch(/fixes the sparsity/);
    const owlNM = errorOf(() => parse({ sparsity: 0.5, pattern: '2:4', owl: true }));
    expect(owlNM).toMatchObject({ where: 'owl', hint: 'use --owl with unstructured sparsity only' });
    expect(owlNM.message).toMatch(/N:M/);
    expect(parse({ sparsity: 0.5, owl: true }).owl).toEqual({ M: 5, lambda: 0.08 });
    expect(parse({ sparsity: 0.5, owl: false }).owl).toBeUndefined();
    expect(parse({ sparsity: 0.5, owl: true, owlM: 7, owlLambda: 0.1 }).owl).toEqual({ M: 7, lambda: 0.1 });
    expect(parse({ sparsity: 0.5, owl: { M: 3 } }).owl).toEqual({ M: 3, lambda: 0.08 });
    expect(whereOf(() => parse({ sparsity: 0.5, owl: { lambda: 0.5 } }, 'stages[0].prune'))).toBe('stages[0].prune.owl.lambda');
    expect(whereOf(() => parse({ sparsity: 0.5, owl: true, owlM: 0 }))).toBe('owlM');
    expect(parse({ sparsity: 0.5, layers: '0,2-4' }).layers).toEqual([0, 2, 3, 4]);
    expect(parse({ sparsity: 0.5, layers: [3, 1] }).layers).toEqual([1, 3]);
    expect(errorOf(() => parse({ sparsity: 0.5, layers: '3:3' }))).toMatchObject({ where: 'layers', hint: 'A-B includes B; START:END excludes END' });
    expect(whereOf(() => parse({ sparsity: 0.5, batchSize: -1 }))).toBe('batchSize');
    expect(errorOf(() => parse({ sparsity: 0.5, bogus: 1 }))).toMatchObject({ where: 'bogus', message: 'unknown field' });
    expect(parseLayers('0,2-4', '--layers')).toEqual([0, 2, 3, 4]);
    expect(parseLayers('1:4', '--layers')).toEqual([1, 2, 3]); // the structured pruners' START:END form
    expect(() => parseLayers('3:3', '--layers')).toThrow(/empty/);
    try {
      parse({ sparsity: 2 }, 'stages[0].prune');
      expect.unreachable();
    } catch (e) {
      expect((e as { where?: string }).where).toBe('stages[0].prune.sparsity');
    }
  });

  it('defaults per pruner: the saliency and the scope', () => {
    const magnitude = postTrainingOptions({ defaultSaliency: 'magnitude', defaultScope: 'layer' });
    expect(parseOptions(magnitude, { sparsity: 0.5 }, '')).toMatchObject({ scope: 'layer', saliency: 'magnitude' });
    expect(parseOptions(magnitude, { sparsity: 0.5, scope: 'row', saliency: 'wanda' }, '')).toMatchObject({ scope: 'row', saliency: 'wanda' });
  });

  it('a score pruner needs data for its own score, or (magnitude) for OWL only', () => {
    const base = { name: 'x', description: 'x', defaultSaliency: 'magnitude' };
    const magnitude = scorePruner({ ...base, needsCalibration: false, defaultScope: 'layer' });
    const needs = magnitude.needsCalibration as (o: PostTrainingOptions) => boolean;
    expect(typeof needs).toBe('function');
    expect(needs(parseOptions(magnitude.options, { sparsity: 0.5 }, ''))).toBe(false);
    expect(needs(parseOptions(magnitude.options, { sparsity: 0.5, owl: true }, ''))).toBe(true);
    expect(scorePruner({ ...base, needsCalibration: true }).needsCalibration).toBe(true);
  });

  it('lists its fields with descriptions as JSON Schema and as flags', () => {
    const json = optionsJsonSchema(wanda) as { properties: Record<string, { description?: string }>; additionalProperties: boolean };
    const keys = ['sparsity', 'pattern', 'scope', 'owl', 'owlM', 'owlLambda', 'saliency', 'layers', 'batchSize'];
    expect(Object.keys(json.properties)).toEqual(keys);
    for (const key of keys) expect(json.properties[key]!.description, key).toBeTruthy();
    expect(json.additionalProperties).toBe(false);
    const fields = optionFields(wanda);
    expect(fields.map((f) => f.flag)).toEqual(['--sparsity', '--pattern', '--scope', '--owl', '--owl-m', '--owl-lambda', '--saliency', '--layers', '--batch-size']);
    expect(fields.find((f) => f.key === 'owl')!.boolean).toBe(true);
    expect(fields.find((f) => f.key === 'scope')!.choices).toEqual(['row', 'layer']);
    expect(fields.every((f) => !f.required)).toBe(true);
  });
});

describe('defaults that bound memory', () => {
  const model = (c: { dim: number; hiddenDim: number; nHeads: number }) => ({ config: c }) as unknown as Parameters<typeof defaultBatchSize>[0];
  const windows = (n: number, t: number) => Array.from({ length: n }, () => new Int32Array(t));
  it('8 windows per forward call, fewer when their temporaries would pass 64 MiB', () => {
    expect(defaultBatchSize(model({ dim: 288, hiddenDim: 768, nHeads: 6 }), windows(128, 256))).toBe(8);
    // Llama-2-7B: 2 windows of 128 tokens (≈ 26 MiB each), one of 2048 (over the budget alone: still one)
    expect(defaultBatchSize(model({ dim: 4096, hiddenDim: 11008, nHeads: 32 }), windows(128, 128))).toBe(2);
    expect(defaultBatchSize(model({ dim: 4096, hiddenDim: 11008, nHeads: 32 }), windows(128, 2048))).toBe(1);
  });

  it('row chunks of a row-wise criterion give the whole layer’s masks and weights', () => {
    const rows = 300;
    const cols = 20_000; // > 2^22 elements: the apply takes several chunks of 209 rows
    const weight = scoresOf(rows, cols, 5).map((v, i) => (i % 7 === 0 ? -v : v));
    const rowwise = { name: 'abs', description: '', needs: ['weights'] as const, rowwise: true, score: (s: { weight: Float32Array }) => s.weight.map(Math.abs) };
    const whole = { ...rowwise, rowwise: false };
    const ctx = { backend: { primitives: p } } as unknown as Parameters<ReturnType<typeof saliencyMethod>['apply']>[1];
    const linear = { param: 'w', layer: 0, kind: 'q', outFeatures: rows, inFeatures: cols } as never;
    for (const rule of [{ scope: 'row' as const }, { scope: 'row' as const, pattern: { n: 2, m: 4 } }]) {
      const a = saliencyMethod('x', rowwise, rule).apply({ linear, weight: weight.slice(), sparsity: 0.5 }, ctx);
      const b = saliencyMethod('x', whole, rule).apply({ linear, weight: weight.slice(), sparsity: 0.5 }, ctx);
      // byte comparisons (a deep equality over 6M elements takes minutes)
      expect(Buffer.from(a.keep).equals(Buffer.from(b.keep))).toBe(true);
      expect(Buffer.from(a.weight.buffer).equals(Buffer.from(b.weight.buffer))).toBe(true);
      expect(a.keep.reduce((n, k) => n + k, 0)).toBe((rows * cols) / 2);
    }
  });
});
