import { describe, expect, it } from 'vitest';
import { optionFields, optionsJsonSchema, parseOptions } from '@topiary/kernel';
import { sparsegptPruner } from '../src/index.js';

const parse = (raw: Record<string, unknown>, where = '') => parseOptions(sparsegptPruner.options, raw, where);

describe('sparsegpt options as a schema', () => {
  it('lists its fields with descriptions in the JSON Schema', () => {
    const json = optionsJsonSchema(sparsegptPruner.options) as { properties: Record<string, { description?: string; default?: unknown }>; additionalProperties: boolean };
    expect(Object.keys(json.properties)).toEqual(['sparsity', 'pattern', 'owl', 'owlM', 'owlLambda', 'layers', 'batchSize', 'blocksize', 'dampening']);
    for (const [key, field] of Object.entries(json.properties)) expect(field.description, key).toBeTruthy();
    expect(json.properties.blocksize!.default).toBe(128);
    expect(json.properties.dampening!.default).toBe(0.01);
    expect(json.additionalProperties).toBe(false);
  });

  it('gives the flags the CLI had (no --saliency, no --scope)', () => {
    const fields = optionFields(sparsegptPruner.options);
    expect(fields.map((f) => f.flag)).toEqual(['--sparsity', '--pattern', '--owl', '--owl-m', '--owl-lambda', '--layers', '--batch-size', '--blocksize', '--dampening']);
    expect(fields.find((f) => f.flag === '--blocksize')).toMatchObject({ valueName: 'n', default: 128 });
  });

  it('keeps the rules: defaults, block size a multiple of M, no saliency, no scope', () => {
    expect(sparsegptPruner.needsCalibration).toBe(true);
    expect(parse({ sparsity: 0.5 })).toMatchObject({ sparsity: 0.5, blocksize: 128, dampening: 0.01, batchSize: 0 });
    expect(parse({ pattern: '4:8', blocksize: 64 })).toMatchObject({ sparsity: 0.5, pattern: { n: 4, m: 8 }, blocksize: 64 });
    expect(parse({ sparsity: 0.5, owl: true }).owl).toEqual({ M: 5, lambda: 0.08 });
    expect(() => parse({ pattern: '2:4', blocksize: 6 }, 'stages[0].prune')).toThrow(
      expect.objectContaining({ where: 'stages[0].prune.blocksize', message: 'must be a multiple of M = 4, got 6' }),
    );
    expect(() => parse({ sparsity: 0.5, blocksize: 0 })).toThrow(expect.objectContaining({ where: 'blocksize' }));
    expect(() => parse({ sparsity: 0.5, dampening: 0 })).toThrow(expect.objectContaining({ where: 'dampening', message: 'must be in (0,∞), got 0' }));
    expect(() => parse({ sparsity: 0.5, saliency: 'magnitude' })).toThrow(expect.objectContaining({ where: 'saliency', message: 'unknown field' }));
    expect(() => parse({ sparsity: 0.5, scope: 'layer' })).toThrow(expect.objectContaining({ where: 'scope', message: 'unknown field' }));
    expect(() => parse({ sparsity: 0.3, pattern: '2:4' })).toThrow(/fixes the sparsity/);
    expect(() => parse({})).toThrow(expect.objectContaining({ where: 'sparsity', message: expect.stringMatching(/is required/) }));
  });
});
