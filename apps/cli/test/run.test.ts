import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { loadRecipe } from '@topiary/kernel';
import { runCli } from './helpers.js';
import { createRunContext, type GlobalOptions } from '../src/context.js';
import { executeRecipe } from '../src/commands/run.js';
import { RunFolder } from '@topiary/pipeline';

const repo = resolve(__dirname, '../../..');
const model = join(repo, 'assets/models/stories260K-hf');
// the first 40 KB of the shipped TinyStories text: enough windows, fast to tokenize
const textDir = mkdtempSync(join(tmpdir(), 'topiary-run-text-'));
const text = join(textDir, 'tinystories-40k.txt');
writeFileSync(text, readFileSync(join(repo, 'assets/data/tinystories_val_head.txt'), 'utf8').slice(0, 40_000));

const cli = runCli;

function recipe(dir: string, stages: string, name = 'r.yaml'): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    `model: { from: ${model} }
seed: 1
data:
  calibration: { path: ${text}, samples: 8, seqlen: 64 }
stages:
${stages}
output: ./run
`,
  );
  return file;
}

const evalStage = `  - eval: { perplexity: [${text}], seqlen: 64, limit: 4 }`;

describe('topiary run', () => {
  it('runs a multi-stage recipe into a complete run folder', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-run-'));
    const file = recipe(dir, [evalStage, '  - prune: { method: magnitude, sparsity: 0.3 }', '  - prune: { method: wanda, pattern: "2:4" }', evalStage].join('\n'));
    const r = await cli(['--json', 'run', file]);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout) as { status: string; run: string };
    expect(summary.status).toBe('completed');
    const run = join(dir, 'run');
    for (const f of ['recipe.resolved.yaml', 'state.json', 'metrics.jsonl', 'results.json', 'report.html', 'model/model.safetensors', 'model/config.json', 'model/tokenizer.json', 'checkpoints/stage-2/model.safetensors', 'checkpoints/stage-3/model.safetensors']) {
      expect(existsSync(join(run, f)), f).toBe(true);
    }
    const results = JSON.parse(readFileSync(join(run, 'results.json'), 'utf8')) as { stages: { kind: string; sparsity?: number; eval?: { perplexity: Record<string, { ppl: number }> } }[] };
    expect(results.stages.map((s) => s.kind)).toEqual(['eval', 'prune', 'prune', 'eval']);
    const before = results.stages[0]!.eval!.perplexity[text]!.ppl;
    const after = results.stages[3]!.eval!.perplexity[text]!.ppl;
    expect(before).toBeGreaterThan(1);
    expect(after).toBeGreaterThan(before); // pruning half the weights costs perplexity on a 260K model
    // 2:4 on top of 30 % magnitude pruning: every group of 4 has at least 2 zeros
    expect(results.stages[2]!.sparsity).toBeGreaterThanOrEqual(0.5);
    // the resolved recipe is a valid recipe with absolute paths, so the folder is self-describing
    const resolved = loadRecipe(join(run, 'recipe.resolved.yaml'));
    expect(resolved.model!.from).toBe(model);
    const html = readFileSync(join(run, 'report.html'), 'utf8');
    expect(html).toContain('<td>input model</td>');
    expect(html).toContain('after 3. prune (wanda)');
    // `topiary report` rewrites it from the folder alone
    const again = await cli(['--json', 'report', run]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).report).toBe(join(run, 'report.html'));
    expect((await cli(['report', join(dir, 'nope')])).code).toBe(1);
  });

  it('stops at a stage boundary when interrupted, leaves a consistent folder, and --resume finishes it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-resume-'));
    const file = recipe(dir, ['  - prune: { method: magnitude, sparsity: 0.2 }', '  - prune: { method: magnitude, sparsity: 0.4 }', evalStage].join('\n'));
    const options: GlobalOptions = { backend: 'wasm', seed: 1, json: true, quiet: true, debug: false, plugin: [], allowPluginPath: false };
    const run = await createRunContext(options);
    const abort = new AbortController();
    run.events.on('checkpoint', () => abort.abort()); // "Ctrl-C" right after the first stage's checkpoint
    const folder = new RunFolder(join(dir, 'run'));
    const recipeObj = loadRecipe(file);
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    let code: number;
    try {
      code = await executeRecipe(run, { ...recipeObj, output: folder.dir }, folder, false, { signal: abort.signal });
    } finally {
      out.mockRestore();
      run.close();
    }
    expect(code).toBe(130);
    expect(folder.readState().completed).toBe(1);
    expect(JSON.parse(readFileSync(folder.path('results.json'), 'utf8')).status).toBe('interrupted');
    expect(existsSync(folder.path('model'))).toBe(false);
    const r = await cli(['--json', 'run', '--resume', folder.dir]);
    expect(r.code).toBe(0);
    expect(folder.readState().completed).toBe(3);
    const results = JSON.parse(readFileSync(folder.path('results.json'), 'utf8')) as { status: string; stages: { kind: string; sparsity?: number }[] };
    expect(results.status).toBe('completed');
    expect(results.stages.map((s) => s.sparsity ?? null)).toEqual([expect.closeTo(0.2, 1), expect.closeTo(0.4, 1), null]);
  });

  it('checks every stage before running anything: an unknown method names the file and the path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-bad-'));
    const file = recipe(dir, [evalStage, '  - prune: { method: wandaa, sparsity: 0.5 }'].join('\n'));
    const r = await cli(['run', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}: stages[1].prune.method: unknown pruner "wandaa"`);
    expect(r.stderr).toContain('known pruner names:');
    expect(existsSync(join(dir, 'run'))).toBe(false);
  });

  it('names a bad pruner option by its recipe path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-bad-'));
    const file = recipe(dir, ['  - prune: { method: wanda, sparsity: 1.5 }'].join('\n'));
    const r = await cli(['run', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('stages[0].prune.sparsity');
  });

  it('refuses to overwrite an existing run and points to --resume', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-twice-'));
    const file = recipe(dir, ['  - prune: { method: magnitude, sparsity: 0.1 }'].join('\n'));
    expect((await cli(['--quiet', 'run', file])).code).toBe(0);
    const again = await cli(['run', file]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('--resume');
  });

  it('a train stage continues from the current model (pruning-aware, to a target size) and the run ends with the slimmed model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-run-train-'));
    const file = recipe(
      dir,
      [
        '  - train:',
        `      data: { train: ${text}, seqLen: 32, validFraction: 0.1 }`,
        '      batchSize: 4',
        '      steps: 6',
        '      lr: { schedule: constant, lr: 1.0e-3 }',
        '      eval: { every: 3, batches: 2 }',
        '      checkpoint: { every: 3, keep: 1 }',
        '      prune: { targetRatio: 0.8, schedule: { name: linear, start: 1, end: 4, every: 1 }, kinds: [ffn-channel] }',
        evalStage,
      ].join('\n'),
    );
    const r = await cli(['--json', 'run', file]);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const results = JSON.parse(readFileSync(join(dir, 'run', 'results.json'), 'utf8')) as {
      stages: { kind: string; parametersBefore?: number; parametersAfter?: number; architectureAfter?: { layers: { hiddenDim: number }[] } }[];
    };
    const trainStage = results.stages[0]!;
    expect(trainStage.kind).toBe('train');
    expect(trainStage.parametersAfter! / trainStage.parametersBefore!).toBeLessThanOrEqual(0.8 + 1e-9);
    expect(trainStage.parametersAfter! / trainStage.parametersBefore!).toBeGreaterThan(0.7);
    expect(trainStage.architectureAfter!.layers.some((l) => l.hiddenDim < 172)).toBe(true);
    expect(existsSync(join(dir, 'run', 'checkpoints', 'stage-1', 'model.safetensors'))).toBe(true);
    expect(existsSync(join(dir, 'run', 'stages', 'train-1'))).toBe(true);
  });

  it('structured pruning then recovery fine-tuning distilled from the source model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-run-ft-'));
    const file = recipe(
      dir,
      [
        '  - prune: { method: llm-pruner, ratio: 0.2, calibration: { path: ' + text + ', samples: 4, seqlen: 32 } }',
        evalStage,
        `  - finetune: { data: ${text}, steps: 4, lr: 1.0e-3, batchSize: 2, seqlen: 32, distillFrom: source, alpha: 0.5 }`,
        evalStage,
      ].join('\n'),
    );
    const r = await cli(['--json', 'run', file]);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const results = JSON.parse(readFileSync(join(dir, 'run', 'results.json'), 'utf8')) as {
      stages: { kind: string; name: string; parametersBefore?: number; parametersAfter?: number; details?: { distillFrom?: string }; eval?: { perplexity: Record<string, { ppl: number }> } }[];
    };
    expect(results.stages.map((s) => s.kind)).toEqual(['prune', 'eval', 'finetune', 'eval']);
    const pruned = results.stages[0]!;
    expect(pruned.parametersAfter!).toBeLessThan(pruned.parametersBefore!);
    expect(results.stages[2]!.name).toBe('finetune (distilled)');
    expect(results.stages[2]!.details!.distillFrom).toBe(model);
    expect(results.stages[2]!.parametersAfter).toBe(pruned.parametersAfter); // recovery keeps the slim shape
    const html = readFileSync(join(dir, 'run', 'report.html'), 'utf8');
    expect(html).toContain('FFN width per layer');
  });
});
