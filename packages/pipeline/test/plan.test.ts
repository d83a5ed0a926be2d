/** Checking a whole recipe before anything runs: every problem at once, and every file it names. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRecipeText, TopiaryError } from '@topiary/kernel';
import { errorsOf, installedStages, looksLikeHubId, modelPathError, openRun, planRecipe, RecipeErrors, recipePathErrors, resolveRecipePaths, type RunOptions } from '../src/index.js';

const options: RunOptions = { backend: 'wasm', seed: 0, plugin: [], allowPluginPath: false };
const repo = resolve(__dirname, '../../..');
const model = join(repo, 'assets/models/stories260K-hf');
const text = join(repo, 'assets/data/tinystories_val_head.txt');

/** The errors a call throws, as `{ where, message }`. */
function thrown(f: () => unknown): Array<{ where?: string; message: string; code: string }> {
  try {
    f();
  } catch (e) {
    return errorsOf(e).map((one) => {
      const t = one as TopiaryError;
      return { where: t.where, message: t.message, code: t.code };
    });
  }
  return [];
}

describe('planRecipe: every problem at once', () => {
  it('collects the errors of every stage (unknown kind, unknown field, bad value, unknown method), the first one first', async () => {
    const run = await openRun(options, [repo]);
    const recipe = parseRecipeText(
      [
        `model: ${model}`,
        'stages:',
        '  - eval: { perplexity: a.txt, limt: 3 }',
        '  - notes: {}',
        '  - prune: { method: wandaa, sparsity: 0.5 }',
        '  - prune: { method: magnitude, sparsity: 1.5 }',
        '  - eval: { perplexity: a.txt }',
      ].join('\n'),
      'r.yaml',
    );
    let error: unknown;
    try {
      planRecipe(run, recipe);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RecipeErrors);
    const all = (error as RecipeErrors).errors;
    expect(all.map((e) => e.where)).toEqual(['stages[0].eval.limt', 'stages[1]', 'stages[2].prune.method', 'stages[3].prune.sparsity']);
    expect(all.every((e) => e.file === 'r.yaml')).toBe(true);
    // it reads as the first: message, place, exit code
    const first = all[0]!;
    expect(error).toMatchObject({ code: first.code, message: first.message, where: first.where, file: 'r.yaml', exitCode: 2 });
    // one problem is thrown as itself
    const one = parseRecipeText(`model: ${model}\nstages:\n  - eval: { perplexity: a.txt, limit: 0 }\n`, 'r.yaml');
    expect(() => planRecipe(run, one)).toThrow(expect.objectContaining({ where: 'stages[0].eval.limit' }));
    expect(thrown(() => planRecipe(run, one))).toHaveLength(1);
  });

  it('with paths: every missing file the recipe names — model, data, calibration, eval, finetune and train data — before anything is created', async () => {
    const run = await openRun(options, [repo]);
    const dir = mkdtempSync(join(tmpdir(), 'topiary-plan-'));
    writeFileSync(join(dir, 'here.txt'), 'present');
    const raw = [
      'model: { from: ./no-model, tokenizer: ./no-tokenizer.json }',
      'data:',
      '  calibration: { path: ./no-calibration.txt, samples: 4, seqlen: 32 }',
      '  train: ./no-train-data.txt',
      'stages:',
      '  - prune: { method: wanda, sparsity: 0.5, calibration: { path: ./no-stage-calibration.txt } }',
      '  - eval: { perplexity: [./here.txt, ./no-eval.txt] }',
      '  - finetune: { data: ./no-finetune.txt, steps: 2, distillFrom: source }',
      '  - train: { data: { train: ./no-train.txt, tokenizer: bytes }, steps: 2, out: ./not-yet-written }',
      '  - eval: { perplexity: ./here.txt }',
    ].join('\n');
    const recipe = resolveRecipePaths(parseRecipeText(raw, join(dir, 'r.yaml')), dir, installedStages(run));
    const errors = thrown(() => planRecipe(run, recipe, { paths: true }));
    const missing = errors.filter((e) => e.message.startsWith('no such file or folder'));
    expect(missing.map((e) => e.where)).toEqual([
      'model',
      'model.tokenizer',
      'data.calibration.path',
      'data.train',
      'stages[0].prune.calibration.path',
      'stages[1].eval.perplexity[1]',
      'stages[2].finetune.data',
      'stages[3].train.data.train',
    ]);
    expect(missing.every((e) => e.code === 'E_RECIPE')).toBe(true);
    expect(missing[0]!.message).toBe(`no such file or folder: ${join(dir, 'no-model')}`);
    // outputs (`out`) and keywords (`source`, `bytes`) are not files to look for; files that are there pass
    expect(errors.map((e) => e.where)).not.toContain('stages[3].train.out');
    // without the paths check the same recipe plans fine (its options are all valid)
    expect(planRecipe(run, recipe)).toHaveLength(5);
    // files that are there pass
    expect(recipePathErrors({ ...recipe, model: { from: model }, data: { calibration: { path: text, seed: 0 } }, stages: [recipe.stages[4]!] }, installedStages(run))).toEqual([]);
  });

  it('a Hub id as the model gets a sentence saying models are local paths (not "no such file")', async () => {
    expect(looksLikeHubId('meta-llama/Llama-2-7b-hf')).toBe(true);
    expect(looksLikeHubId('./models/x')).toBe(false);
    expect(looksLikeHubId('models/stories.bin')).toBe(false);
    expect(looksLikeHubId('/abs/org/name')).toBe(false);
    const e = modelPathError('meta-llama/Llama-2-7b-hf', 'model', { recipe: true, file: 'r.yaml' })!;
    expect(e).toMatchObject({ code: 'E_RECIPE', where: 'model', file: 'r.yaml' });
    expect(e.message).toContain('nothing is downloaded');
    expect(e.message).not.toContain('no such file');
    expect(modelPathError(model, '--model')).toBeUndefined();
    // on the command line: a Hub id is a usage error (2), a missing local path an I/O error (1) as it always was
    expect(modelPathError('org/name', '--model')).toMatchObject({ code: 'E_USAGE', where: '--model' });
    expect(modelPathError('/nowhere/model.bin', '--model')).toMatchObject({ code: 'E_IO', where: '--model', message: 'no such file or folder: /nowhere/model.bin' });
  });
});
