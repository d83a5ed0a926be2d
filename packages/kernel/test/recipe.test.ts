import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkNumber, loadRecipe, parseRecipeText, recipeErrors, TopiaryError } from '../src/index.js';

function errorOf(fn: () => unknown): TopiaryError {
  try {
    fn();
  } catch (e) {
    if (e instanceof TopiaryError) return e;
    throw e;
  }
  throw new Error('expected a TopiaryError');
}

const valid = `
model: { from: ./models/stories260K }
backend: wasm
seed: 3
data:
  calibration: { path: ./data/tiny.txt, samples: 16, seqlen: 64 }
stages:
  - prune: { method: wanda, sparsity: 0.5, pattern: "2:4" }
  - eval: { perplexity: [./data/tiny.txt] }
output: ./runs/example
`;

describe('recipes', () => {
  it('parses a valid YAML recipe with defaults filled in', () => {
    const r = parseRecipeText(valid, 'example.yaml');
    expect(r.model).toEqual({ from: './models/stories260K', tokenizer: undefined });
    expect(r.seed).toBe(3);
    expect(r.data.calibration).toEqual({ path: './data/tiny.txt', samples: 16, seqlen: 64 }); // no seed of its own: the draw uses the recipe's (3)
    expect(r.stages.map((s) => [s.kind, s.where])).toEqual([
      ['prune', 'stages[0].prune'],
      ['eval', 'stages[1].eval'],
    ]);
    expect(r.stages[0]!.options).toEqual({ method: 'wanda', sparsity: 0.5, pattern: '2:4' });
  });

  it('accepts JSON', () => {
    const r = parseRecipeText(JSON.stringify({ stages: [{ eval: { perplexity: ['a.txt'] } }] }), 'r.json');
    expect(r.backend).toBe('wasm');
    expect(r.stages).toHaveLength(1);
  });

  it('names the file and the path of a bad field', () => {
    const err = errorOf(() => parseRecipeText(valid.replace('samples: 16', 'samples: -2'), 'bad.yaml'));
    expect(err.code).toBe('E_RECIPE');
    expect(err.file).toBe('bad.yaml');
    expect(err.where).toBe('data.calibration.samples');
    expect(err.describe()).toBe('bad.yaml: data.calibration.samples: must be in [1,∞), got -2');
  });

  it('points at the stage of an unknown stage kind (the installed kinds are given by the pipeline)', () => {
    const unknown = errorOf(() => parseRecipeText('stages:\n  - prune: { method: wanda }\n  - distil: {}\n', 'r.yaml', ['prune', 'eval']));
    expect(unknown.where).toBe('stages[1]');
    expect(unknown.message).toContain('unknown stage "distil"');
    expect(unknown.hint).toBe('stages are: prune, eval');
  });

  it('lists every problem at once', () => {
    const errors = recipeErrors({ seed: -1, data: { calibration: { path: 'c.txt', samples: 0 } }, stages: [{ eval: {} }, 3], outptu: 'x' }, 'r.yaml', ['eval']);
    expect(errors.map((e) => e.where).sort()).toEqual(['data.calibration.samples', 'outptu', 'seed', 'stages[1]']);
  });

  it('rejects unknown top-level fields (typos are not ignored)', () => {
    const err = errorOf(() => parseRecipeText('stages: [{ eval: {} }]\noutptu: x\n', 'r.yaml'));
    expect(err.where).toBe('outptu');
    expect(err.hint).toContain('output');
  });

  it('reports YAML syntax errors with the line', () => {
    const err = errorOf(() => parseRecipeText('stages:\n  - prune: { method: wanda\n', 'broken.yaml'));
    expect(err.code).toBe('E_RECIPE');
    expect(err.file).toBe('broken.yaml');
    expect(err.where).toMatch(/^line \d+$/);
  });

  it('a flag value is checked with its flag as the place', () => {
    const flag = errorOf(() => checkNumber('1.5', '--sparsity', { min: 0, below: 1 }));
    expect(flag.describe()).toBe('--sparsity: must be in [0,1), got 1.5');
    expect(checkNumber('16', '--samples', { min: 1, integer: true })).toBe(16);
  });

  it('loads from a file and names a missing one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-recipe-'));
    const path = join(dir, 'r.yaml');
    writeFileSync(path, valid);
    expect(loadRecipe(path).output).toBe('./runs/example');
    const err = errorOf(() => loadRecipe(join(dir, 'missing.yaml')));
    expect(err.code).toBe('E_IO');
    expect(err.where).toBe(join(dir, 'missing.yaml'));
  });
});
