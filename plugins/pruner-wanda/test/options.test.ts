import { describe, expect, it } from 'vitest';
import { optionFields, optionsJsonSchema, parseOptions } from '@topiary/kernel';
import { wandaPruner } from '../src/index.js';

describe('wanda options as a schema', () => {
  it('lists its fields with descriptions in the JSON Schema', () => {
    const json = optionsJsonSchema(wandaPruner.options) as { properties: Record<string, { description?: string; default?: unknown }>; additionalProperties: boolean };
    expect(Object.keys(json.properties)).toEqual(['sparsity', 'pattern', 'scope', 'owl', 'owlM', 'owlLambda', 'saliency', 'layers', 'batchSize']);
    for (const [key, field] of Object.entries(json.properties)) expect(field.description, key).toBeTruthy();
    expect(json.properties.scope!.default).toBe('row');
    expect(json.properties.saliency!.default).toBe('wanda');
    expect(json.properties.batchSize!.default).toBe(0);
  });

  it('gives the flags the CLI had', () => {
    const fields = optionFields(wandaPruner.options);
    expect(fields.map((f) => f.flag)).toEqual(['--sparsity', '--pattern', '--scope', '--owl', '--owl-m', '--owl-lambda', '--saliency', '--layers', '--batch-size']);
    expect(fields.find((f) => f.flag === '--owl')!.boolean).toBe(true);
    expect(fields.find((f) => f.flag === '--sparsity')!.types).toEqual(['number']);
  });

  it('always needs calibration data; defaults and cross-field rules as before', () => {
    expect(wandaPruner.needsCalibration).toBe(true);
    expect(parseOptions(wandaPruner.options, { sparsity: 0.5 }, '')).toMatchObject({ sparsity: 0.5, scope: 'row', saliency: 'wanda', batchSize: 0 });
    expect(() => parseOptions(wandaPruner.options, { pattern: '2:4', owl: true }, 'stages[0].prune')).toThrow(
      expect.objectContaining({ where: 'stages[0].prune.owl', hint: 'use --owl with unstructured sparsity only' }),
    );
  });
});
