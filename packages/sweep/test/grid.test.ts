/**
 * Expanding a grid: axes as full paths and short forms, checked against the recipe's envelope and each stage's
 * schema with the installed plugins; bad axes, values and empty grids refused naming the axis.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TopiaryError } from '@topiary/kernel';
import { errorsOf, openRun, type RunContext } from '@topiary/pipeline';
import { expandGrid, formatFieldPath, parseFieldPath, readGrid, setAtPath } from '../src/index.js';
import { repo, writeGrid } from './helpers.js';

let run: RunContext;
beforeAll(async () => {
  run = await openRun({ backend: 'wasm', seed: 0, plugin: [], allowPluginPath: false }, [repo]);
});
afterAll(() => run.close());

/** Every error expanding a grid gives (the one, or the list of a RecipeErrors). */
function problemsOf(matrix: string, stages?: string): TopiaryError[] {
  const { file } = writeGrid(matrix, stages ? { stages } : {});
  try {
    expandGrid(run, readGrid(file));
  } catch (e) {
    return errorsOf(e) as TopiaryError[];
  }
  throw new Error('expected the grid to be refused');
}

describe('field paths', () => {
  it('reads and writes the paths errors use', () => {
    expect(parseFieldPath('stages[1].prune.method')).toEqual(['stages', 1, 'prune', 'method']);
    expect(parseFieldPath('data.calibration.seed')).toEqual(['data', 'calibration', 'seed']);
    expect(formatFieldPath(['stages', 1, 'prune', 'method'])).toBe('stages[1].prune.method');
    for (const bad of ['', 'a..b', 'stages[x]', '[1]', 'a b']) expect(parseFieldPath(bad), bad).toBeUndefined();
    const raw: Record<string, unknown> = { stages: [{ eval: null }] };
    expect(setAtPath(raw, ['stages', 0, 'eval', 'limit'], 4)).toBe(true);
    expect(raw).toEqual({ stages: [{ eval: { limit: 4 } }] });
    expect(setAtPath(raw, ['stages', 3, 'prune', 'method'], 'wanda')).toBe(false);
  });
});

describe('expanding a grid', () => {
  it('gives every combination, each a checked recipe with absolute paths and its own run folder', () => {
    const { file, dir, text } = writeGrid('matrix:\n  stages[1].prune.method: [magnitude, wanda]\n  sparsity: [0.3, 0.5]\n  data.calibration.seed: [0, 1]\n  seed: [7]');
    const plan = expandGrid(run, readGrid(file));
    expect(plan.dir).toBe(join(dir, 'sweep'));
    expect(plan.axes.map((a) => [a.name, a.path, a.label])).toEqual([
      ['stages[1].prune.method', 'stages[1].prune.method', 'method'],
      ['sparsity', 'stages[1].prune.sparsity', 'sparsity'], // the short form found its one stage
      ['data.calibration.seed', 'data.calibration.seed', 'data-calibration-seed'], // two axes end in `seed`
      ['seed', 'seed', 'seed'],
    ]);
    expect(plan.points).toHaveLength(8);
    expect(plan.points.map((p) => p.id)).toEqual([
      'method-magnitude_sparsity-0.3_data-calibration-seed-0_seed-7',
      'method-magnitude_sparsity-0.3_data-calibration-seed-1_seed-7',
      'method-magnitude_sparsity-0.5_data-calibration-seed-0_seed-7',
      'method-magnitude_sparsity-0.5_data-calibration-seed-1_seed-7',
      'method-wanda_sparsity-0.3_data-calibration-seed-0_seed-7',
      'method-wanda_sparsity-0.3_data-calibration-seed-1_seed-7',
      'method-wanda_sparsity-0.5_data-calibration-seed-0_seed-7',
      'method-wanda_sparsity-0.5_data-calibration-seed-1_seed-7',
    ]);
    const last = plan.points[7]!;
    expect(last.values).toEqual({ 'stages[1].prune.method': 'wanda', sparsity: 0.5, 'data.calibration.seed': 1, seed: 7 });
    expect(last.runDir).toBe(join(dir, 'sweep', 'runs', last.id));
    const doc = last.document as { seed: number; model: { from: string }; data: { calibration: { path: string; seed: number } }; stages: Record<string, Record<string, unknown>>[]; output?: string; name: string };
    expect(doc.seed).toBe(7);
    expect(doc.data.calibration).toMatchObject({ path: text, seed: 1, samples: 4 }); // relative path made absolute
    expect(doc.stages[1]!.prune).toEqual({ method: 'wanda', sparsity: 0.5 });
    expect(doc.stages[0]!.eval!.perplexity).toEqual([text]);
    expect(doc.output).toBeUndefined(); // the sweep gives the folder
    expect(doc.name).toBe(`grid · ${last.id}`);
    // the same grid in the same folder is the same sweep (its queue jobs keep their ids)
    expect(expandGrid(run, readGrid(file)).id).toBe(plan.id);
  });

  it('names the axis when its path names no field, with the fields there are', () => {
    const [full] = problemsOf('matrix:\n  stages[1].prune.sparsty: [0.5]');
    expect(full!.where).toBe('matrix.stages[1].prune.sparsty');
    expect(full!.message).toContain('does not exist');
    expect(full!.hint).toContain('sparsity');
    expect(full!.exitCode).toBe(2);
    const [short] = problemsOf('matrix:\n  sparsty: [0.5]');
    expect(short!.where).toBe('matrix.sparsty');
    expect(short!.message).toContain('names no field');
    expect(short!.hint).toMatch(/stages\[1\]\.prune: .*sparsity/);
    const [envelope] = problemsOf('matrix:\n  data.calibration.samplez: [4]');
    expect(envelope!.where).toBe('matrix.data.calibration.samplez');
    const [top] = problemsOf('matrix:\n  modle.from: [x]');
    expect(top!.where).toBe('matrix.modle.from');
    expect(top!.message).toContain('names no field of a recipe');
    const [index] = problemsOf('matrix:\n  stages[5].prune.method: [wanda]');
    expect(index!.message).toContain('the recipe has 3 stages');
    const [kind] = problemsOf('matrix:\n  stages[0].prune.method: [wanda]');
    expect(kind!.message).toContain('stages[0] is a eval stage, not prune');
    const [syntax] = problemsOf('matrix:\n  "stages[x].prune": [1]');
    expect(syntax!.message).toContain('is not a field path');
  });

  it('names the axis and the value a stage refuses, and an unknown method with the installed ones', () => {
    const [value] = problemsOf('matrix:\n  sparsity: [0.5, 2]');
    expect(value!.where).toBe('matrix.sparsity');
    expect(value!.message).toContain('value 2 is refused at stages[1].prune.sparsity');
    const [method] = problemsOf('matrix:\n  stages[1].prune.method: [wanda, nosuch]');
    expect(method!.code).toBe('E_PLUGIN_UNKNOWN');
    expect(method!.where).toBe('matrix.stages[1].prune.method');
    expect(method!.hint).toContain('sparsegpt');
    // a method's own options: `pattern` is an option of wanda, and 3:1 is not an N:M pattern
    const [pattern] = problemsOf('matrix:\n  pattern: ["2:4", "3:1"]');
    expect(pattern!.where).toBe('matrix.pattern');
  });

  it('reports every problem at once, and a short form that fits several stages asks for the full path', () => {
    const all = problemsOf('matrix:\n  sparsty: [0.5]\n  stages[9].prune.method: [wanda]');
    expect(all.map((e) => e.where).sort()).toEqual(['matrix.sparsty', 'matrix.stages[9].prune.method']);
    const both = problemsOf('matrix:\n  sparsity: [0.5, 7]\n  stages[1].prune.method: [wanda, nosuch]');
    expect(both.map((e) => e.where).sort()).toEqual(['matrix.sparsity', 'matrix.stages[1].prune.method']);
    const [ambiguous] = problemsOf('matrix:\n  limit: [2, 4]');
    expect(ambiguous!.message).toContain('several stages (stages[0].eval.limit, stages[2].eval.limit)');
    expect(ambiguous!.hint).toContain('stages[0].eval.limit');
  });

  it('refuses an empty grid, a grid without matrix, repeated values and an axis on the output', () => {
    expect(problemsOf('matrix: {}')[0]!.message).toContain('empty grid');
    const [noValues] = problemsOf('matrix:\n  sparsity: []');
    expect(noValues!.where).toBe('matrix.sparsity');
    expect(noValues!.message).toContain('empty grid');
    expect(problemsOf('')[0]!.message).toContain('is required');
    expect(problemsOf('matrix:\n  sparsity: [0.5, 0.5]')[0]!.message).toContain('lists 0.5 twice');
    expect(problemsOf('matrix:\n  output: [a, b]')[0]!.message).toContain('cannot be an axis');
  });
});
