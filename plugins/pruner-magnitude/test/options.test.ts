import { describe, expect, it } from 'vitest';
import { optionFields, optionsJsonSchema, parseOptions } from '@topiary/kernel';
import { magnitudePruner } from '../src/index.js';

describe('magnitude options as a schema', () => {
  it('lists its fields with descriptions in the JSON Schema', () => {
    const json = optionsJsonSchema(magnitudePruner.options) as { properties: Record<string, { description?: string; default?: unknown }>; additionalProperties: boolean };
    expect(Object.keys(json.properties)).toEqual(['sparsity', 'pattern', 'scope', 'owl', 'owlM', 'owlLambda', 'saliency', 'layers', 'batchSize']);
    for (const [key, field] of Object.entries(json.properties)) expect(field.description, key).toBeTruthy();
    expect(json.properties.scope!.default).toBe('layer');
    expect(json.properties.saliency!.default).toBe('magnitude');
    expect(json.additionalProperties).toBe(false);
  });

  it('gives the flags the CLI had', () => {
    const fields = optionFields(magnitudePruner.options);
    expect(fields.map((f) => f.flag)).toEqual(['--sparsity', '--pattern', '--scope', '--owl', '--owl-m', '--owl-lambda', '--saliency', '--layers', '--batch-size']);
    expect(fields.find((f) => f.flag === '--owl')!.boolean).toBe(true);
    expect(fields.find((f) => f.flag === '--pattern')!.valueName).toBe('N:M');
    expect(fields.find((f) => f.flag === '--scope')).toMatchObject({ choices: ['row', 'layer'], default: 'layer' });
  });

  it('needs data only for OWL (a saliency that needs data is the pipeline’s to see)', () => {
    const needs = magnitudePruner.needsCalibration;
    expect(typeof needs).toBe('function');
    if (typeof needs !== 'function') return;
    expect(needs(parseOptions(magnitudePruner.options, { sparsity: 0.5 }, ''))).toBe(false);
    expect(needs(parseOptions(magnitudePruner.options, { sparsity: 0.5, owl: true }, ''))).toBe(true);
    expect(needs(parseOptions(magnitudePruner.options, { pattern: '2:4' }, ''))).toBe(false);
  });
});
