/** `topiary run` / `train` check the whole recipe first and report every problem at once (exit 2), before any folder exists. */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers.js';

const repo = resolve(__dirname, '../../..');
const model = join(repo, 'assets/models/stories260K-hf');
const text = join(repo, 'assets/data/tinystories_val_head.txt');

function write(dir: string, lines: string[], name = 'r.yaml'): string {
  const file = join(dir, name);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

interface ErrorJson {
  code: string;
  message: string;
  file?: string;
  where?: string;
}

describe('recipe errors, all at once', () => {
  it('stage errors and missing files: one line each, exit 2, no run folder', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-recipe-errors-'));
    const file = write(dir, [
      `model: { from: ${model} }`,
      'data:',
      '  calibration: { path: ./missing-calibration.txt, samples: 4, seqlen: 32 }',
      'stages:',
      '  - prune: { method: wandaa, sparsity: 0.5 }',
      '  - eval: { perplexity: [./missing-eval.txt], limt: 2 }',
      '  - finetune: { data: ./missing-finetune.txt, steps: 2 }',
      '  - eval: { perplexity: ./missing-eval-2.txt }',
      'output: ./run',
    ]);
    const r = await runCli(['run', file]);
    expect(r.code).toBe(2);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('topiary: '));
    expect(lines).toEqual([
      `topiary: ${file}: stages[0].prune.method: unknown pruner "wandaa"`,
      `topiary: ${file}: stages[1].eval.limt: unknown field`,
      `topiary: ${file}: data.calibration.path: no such file or folder: ${join(dir, 'missing-calibration.txt')}`,
      `topiary: ${file}: stages[1].eval.perplexity[0]: no such file or folder: ${join(dir, 'missing-eval.txt')}`,
      `topiary: ${file}: stages[2].finetune.data: no such file or folder: ${join(dir, 'missing-finetune.txt')}`,
      `topiary: ${file}: stages[3].eval.perplexity: no such file or folder: ${join(dir, 'missing-eval-2.txt')}`,
    ]);
    expect(existsSync(join(dir, 'run'))).toBe(false);
  });

  it('--json: "error" is the first, as before, and "errors" lists them all', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-recipe-errors-'));
    const file = write(dir, [`model: { from: ${model} }`, 'stages:', '  - prune: { method: magnitude, sparsity: 1.5 }', `  - eval: { perplexity: [${text}, ./gone.txt] }`, 'output: ./run']);
    const r = await runCli(['--json', 'run', file]);
    expect(r.code).toBe(2);
    const body = JSON.parse(r.stderr.trim().split('\n').pop()!) as { error: ErrorJson; errors: ErrorJson[] };
    expect(body.errors.map((e) => e.where)).toEqual(['stages[0].prune.sparsity', 'stages[1].eval.perplexity[1]']);
    expect(body.error).toEqual(body.errors[0]);
    expect(body.error).toMatchObject({ code: 'E_RECIPE', file });
    expect(existsSync(join(dir, 'run'))).toBe(false);
  });

  it('the envelope: every problem of the top-level fields at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-recipe-errors-'));
    const file = write(dir, [`model: { from: ${model} }`, 'seed: -1', 'backedn: cpu', 'stages:', '  - eval: { perplexity: x.txt }']);
    const r = await runCli(['--json', 'run', file]);
    expect(r.code).toBe(2);
    const body = JSON.parse(r.stderr.trim().split('\n').pop()!) as { error: ErrorJson; errors: ErrorJson[] };
    expect(body.errors.map((e) => e.where).sort()).toEqual(['backedn', 'seed']);
  });

  it('a Hub id as the recipe model says models are local paths', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-recipe-errors-'));
    const file = write(dir, ['model: { from: meta-llama/Llama-2-7b-hf }', 'stages:', `  - eval: { perplexity: ${text} }`, 'output: ./run']);
    // (not a file in the recipe's folder either, where relative paths are looked for)
    const r = await runCli(['run', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`topiary: ${file}: model: "meta-llama/Llama-2-7b-hf" is not a local path nor in the local Hugging Face cache`);
    expect(r.stderr).not.toContain('no such file');
    expect(existsSync(join(dir, 'run'))).toBe(false);
  });

  it('topiary train: the files of the model, data and train stage, all at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-train-errors-'));
    const file = write(dir, [
      'model: { from: ./no-model }',
      'data: { train: ./no-data.txt }',
      'stages:',
      '  - train: { data: { train: ./no-stage-data.txt }, steps: 2 }',
      'output: ./run',
    ]);
    const r = await runCli(['--json', 'train', file]);
    expect(r.code).toBe(2);
    const body = JSON.parse(r.stderr.trim().split('\n').pop()!) as { errors: ErrorJson[] };
    // the train options' own problem (no tokenizer beside a model that is not there) comes with the missing files
    expect(body.errors.map((e) => e.where)).toEqual(['stages[0].train.data.tokenizer', 'model', 'data.train', 'stages[0].train.data.train']);
    expect(body.errors.slice(1).every((e) => e.message.startsWith('no such file or folder: '))).toBe(true);
    expect(existsSync(join(dir, 'run'))).toBe(false);
  });
});
