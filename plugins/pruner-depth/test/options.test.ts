import { describe, expect, it } from 'vitest';
import { optionFields, optionsJsonSchema, parseOptions } from '@topiary/kernel';
import { depthPruner } from '../src/index.js';

const parse = (raw: Record<string, unknown>, where = '') => parseOptions(depthPruner.options, raw, where);

describe('depth options as a schema', () => {
  it('lists its fields with descriptions in the JSON Schema', () => {
    const json = optionsJsonSchema(depthPruner.options) as {
      properties: Record<string, { description?: string; default?: unknown }>;
      required: string[];
      additionalProperties: boolean;
    };
    expect(Object.keys(json.properties)).toEqual(['remove', 'score', 'iterative', 'saliency', 'layers', 'batchSize']);
    for (const [key, field] of Object.entries(json.properties)) expect(field.description, key).toBeTruthy();
    expect(json.required).toEqual(['remove']);
    expect(json.properties.score!.default).toBe('block-influence');
    expect(json.additionalProperties).toBe(false);
  });

  it('gives the flags the CLI had', () => {
    const fields = optionFields(depthPruner.options);
    expect(fields.map((f) => f.flag)).toEqual(['--remove', '--score', '--iterative', '--saliency', '--layers', '--batch-size']);
    expect(fields.find((f) => f.flag === '--remove')).toMatchObject({ required: true, valueName: 'k' });
    expect(fields.find((f) => f.flag === '--score')).toMatchObject({ valueName: 'how', choices: ['block-influence', 'ppl', 'taylor'] });
    expect(fields.find((f) => f.flag === '--iterative')!.boolean).toBe(true);
  });

  it('keeps the defaults and rules', () => {
    expect(depthPruner.needsCalibration).toBe(true);
    expect(parse({ remove: 1 })).toMatchObject({ remove: 1, score: 'block-influence', iterative: false, saliency: 'taylor-element', batchSize: 0 });
    expect(parse({ remove: 1, layers: '1-3' }).layers).toMatchObject({ start: 1, end: 4 });
    expect(parse({ remove: 2, iterative: true, score: 'ppl' })).toMatchObject({ iterative: true, score: 'ppl' });
    expect(() => parse({ remove: 1.5 })).toThrow(expect.objectContaining({ where: 'remove', message: 'must be an integer, got 1.5' }));
    expect(() => parse({ remove: 1, iterative: 'yes' })).toThrow(expect.objectContaining({ where: 'iterative' }));
    expect(() => parse({ remove: 1, layers: 'first' })).toThrow(expect.objectContaining({ where: 'layers', message: expect.stringMatching(/START:END/) }));
    expect(() => parse({ remove: 1, ratio: 0.2 })).toThrow(expect.objectContaining({ where: 'ratio', message: 'unknown field' }));
  });
});
