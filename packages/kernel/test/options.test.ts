import { describe, expect, it } from 'vitest';
import { coerceFlagValue, crossFieldIssue, optionErrors, optionFields, optionsJsonSchema, parseOptions, z } from '../src/index.js';

const schema = z
  .object({
    sparsity: z.number().min(0).lt(1).optional().meta({ description: 'fraction of weights to remove' }),
    scope: z.enum(['row', 'layer']).default('row').meta({ description: 'where scores are compared' }),
    owlM: z.number().positive().default(5).meta({ description: 'outlier threshold' }),
    owl: z.boolean().optional().meta({ description: 'outlier-weighted layer sparsity' }),
    steps: z.number().int().min(1).optional(),
    nested: z.object({ path: z.string() }).strict().optional().meta({ cli: false }),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.owl && v.scope === 'layer') ctx.addIssue(crossFieldIssue(['owl'], 'OWL needs per-row scores', 'drop --scope layer'));
  });

describe('options as schemas', () => {
  it('gives the typed value with defaults', () => {
    const v = parseOptions(schema, { sparsity: 0.5 }, 'stages[0].prune');
    expect(v).toEqual({ sparsity: 0.5, scope: 'row', owlM: 5 });
  });

  it('names the exact path and says what is wrong, like a person would', () => {
    const errors = optionErrors(schema, { sparsity: 1.5, scope: 'col', steps: 2.5, bogus: 1, nested: { path: 3 } }, 'stages[1].prune', 'r.yaml');
    const byWhere = Object.fromEntries(errors.map((e) => [e.where, e.message]));
    expect(byWhere['stages[1].prune.sparsity']).toBe('must be in [0,1), got 1.5');
    expect(byWhere['stages[1].prune.scope']).toBe('must be one of "row", "layer", got "col"');
    expect(byWhere['stages[1].prune.steps']).toBe('must be an integer, got 2.5');
    expect(byWhere['stages[1].prune.bogus']).toBe('unknown field');
    expect(byWhere['stages[1].prune.nested.path']).toBe('must be a string, got 3');
    expect(errors.every((e) => e.file === 'r.yaml' && e.code === 'E_RECIPE')).toBe(true);
    expect(errors.find((e) => e.where === 'stages[1].prune.bogus')!.hint).toContain('sparsity, scope, owlM');
    expect(() => parseOptions(schema, { owl: true, scope: 'layer' }, '')).toThrow(expect.objectContaining({ where: 'owl', hint: 'drop --scope layer' }));
  });

  it('emits JSON Schema with the descriptions and defaults', () => {
    const json = optionsJsonSchema(schema) as { properties: Record<string, { description?: string; default?: unknown }>; additionalProperties: boolean };
    expect(json.properties.sparsity!.description).toBe('fraction of weights to remove');
    expect(json.properties.scope!.default).toBe('row');
    expect(json.additionalProperties).toBe(false);
  });

  it('gives the command-line flags: kebab-case, booleans without a value, object forms left out', () => {
    const fields = optionFields(schema);
    expect(fields.map((f) => f.flag)).toEqual(['--sparsity', '--scope', '--owl-m', '--owl', '--steps']);
    const owl = fields.find((f) => f.key === 'owl')!;
    expect(owl.boolean).toBe(true);
    const scope = fields.find((f) => f.key === 'scope')!;
    expect(scope.choices).toEqual(['row', 'layer']);
    expect(scope.default).toBe('row');
    const sparsity = fields.find((f) => f.key === 'sparsity')!;
    expect(coerceFlagValue(sparsity, '0.5')).toBe(0.5);
    expect(coerceFlagValue(sparsity, 'half')).toBe('half'); // left for the schema to refuse with its message
    expect(coerceFlagValue(scope, 'row')).toBe('row');
  });
});
