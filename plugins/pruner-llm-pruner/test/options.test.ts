import { describe, expect, it } from 'vitest';
import { optionFields, optionsJsonSchema, parseOptions } from '@topiary/kernel';
import { llmPruner } from '../src/index.js';

const parse = (raw: Record<string, unknown>, where = '') => parseOptions(llmPruner.options, raw, where);

describe('llm-pruner options as a schema', () => {
  it('lists its fields with descriptions in the JSON Schema', () => {
    const json = optionsJsonSchema(llmPruner.options) as {
      properties: Record<string, { description?: string; default?: unknown; enum?: unknown[] }>;
      required: string[];
      additionalProperties: boolean;
    };
    expect(Object.keys(json.properties)).toEqual(['ratio', 'saliency', 'aggregation', 'ranking', 'global', 'attention', 'layers', 'batchSize']);
    for (const [key, field] of Object.entries(json.properties)) expect(field.description, key).toBeTruthy();
    expect(json.required).toEqual(['ratio']);
    expect(json.properties.aggregation).toMatchObject({ default: 'sum', enum: ['sum', 'mean', 'max', 'prod', 'last'] });
    expect(json.properties.saliency!.default).toBe('taylor-element');
    expect(json.additionalProperties).toBe(false);
  });

  it('gives the flags the CLI had', () => {
    const fields = optionFields(llmPruner.options);
    expect(fields.map((f) => f.flag)).toEqual(['--ratio', '--saliency', '--aggregation', '--ranking', '--global', '--attention', '--layers', '--batch-size']);
    expect(fields.find((f) => f.flag === '--ratio')).toMatchObject({ required: true, valueName: 'r', types: ['number'] });
    expect(fields.find((f) => f.flag === '--global')!.boolean).toBe(true);
    expect(fields.find((f) => f.flag === '--aggregation')).toMatchObject({ valueName: 'how', choices: ['sum', 'mean', 'max', 'prod', 'last'] });
    expect(fields.find((f) => f.flag === '--attention')!.choices).toEqual(['auto', 'head', 'kv-group']);
    expect(fields.find((f) => f.flag === '--layers')).toMatchObject({ valueName: 'START:END', types: ['string', 'null'] });
  });

  it('keeps the defaults and rules', () => {
    expect(llmPruner.needsCalibration).toBe(true);
    expect(parse({ ratio: 0.2 })).toMatchObject({ ratio: 0.2, saliency: 'taylor-element', aggregation: 'sum', ranking: 'per-layer', attention: 'auto', batchSize: 0 });
    expect(parse({ ratio: 0.2 }).layers).toBeUndefined();
    expect(parse({ ratio: 0.2, layers: '' }).layers).toBeUndefined();
    expect(parse({ ratio: 0.2, global: true }).ranking).toBe('global');
    expect(parse({ ratio: 0.2, ranking: 'global' }).ranking).toBe('global');
    expect(parse({ ratio: 0.2, layers: '2:' }).layers).toMatchObject({ start: 2, end: null });
    expect(() => parse({ ratio: 0 })).toThrow(expect.objectContaining({ where: 'ratio', message: 'must be in (0,1), got 0' }));
    expect(() => parse({ ratio: 0.2, ranking: 'flat' })).toThrow(expect.objectContaining({ where: 'ranking', message: 'must be one of "per-layer", "global", got "flat"' }));
    expect(() => parse({ ratio: 0.2, attention: 'query' })).toThrow(expect.objectContaining({ where: 'attention' }));
    expect(() => parse({ ratio: 0.2, batchSize: -1 })).toThrow(expect.objectContaining({ where: 'batchSize' }));
    expect(() => parse({ ratio: 0.2, layers: 'x' }, 'stages[1].prune')).toThrow(
      expect.objectContaining({ where: 'stages[1].prune.layers', hint: 'e.g. 1:4 (or 1-3) for blocks 1, 2 and 3; 2: for block 2 to the last' }),
    );
    expect(() => parse({ ratio: 0.2, sparsity: 0.5 })).toThrow(expect.objectContaining({ where: 'sparsity', message: 'unknown field' }));
  });
});
