/**
 * `topiary prune --method llm-pruner|depth` streams by default: scoring block by block (LLM-Pruner's gradients by
 * per-block recomputation), the slimmed model cut from the checkpoint by plan and written block by block. The
 * streamed and the in-memory (`--in-memory`) paths give bit-identical weights, removed groups and perplexity — on
 * stories260K and on a random 4-block GQA model stored in bf16 across shards.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers.js';
import { STORIES, root, streamingFixtures } from './streaming-fixtures.js';

const { work, text: TEXT, randomBf16Model } = streamingFixtures('topiary-stream-structured-');

async function prune(model: string, out: string, method: string[], extra: string[] = []) {
  const r = await runCli([
    '--json', '--out', out, 'prune', '--model', model, ...method,
    '--calibration', TEXT, '--samples', '6', '--seqlen', '48', '--batch-size', '4', '--eval', TEXT, '--eval-seqlen', '64', '--eval-limit', '4', ...extra,
  ]);
  return { ...r, json: r.code === 0 ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined };
}

const bytes = (dir: string) => readFileSync(join(dir, 'model.safetensors'));

describe('streamed structured prune = in-memory prune, bit for bit', () => {
  const methods: [string, string[]][] = [
    ['llm-pruner', ['--method', 'llm-pruner', '--ratio', '0.2', '--saliency', 'taylor-vector']],
    ['depth ppl', ['--method', 'depth', '--remove', '1', '--score', 'ppl']],
    ['depth taylor', ['--method', 'depth', '--remove', '2', '--score', 'taylor']],
  ];
  for (const [name, model] of [
    ['stories260K (f32)', () => STORIES],
    ['random 4-block model, bf16 shards', randomBf16Model],
  ] as const) {
    for (const [label, method] of methods) {
      it(`${name}, ${label}: same weights, same removed groups/blocks, same perplexity`, async () => {
        const input = model();
        const tag = `${label.replace(/\W/g, '-')}-${name.length}`;
        const a = await prune(input, join(work, `${tag}-streamed`), method);
        const b = await prune(input, join(work, `${tag}-memory`), method, ['--in-memory']);
        expect(a.code, a.stderr).toBe(0);
        expect(b.code, b.stderr).toBe(0);
        expect(a.json!.streamed).toBe(true);
        expect(b.json!.streamed).toBe(false);
        expect(bytes(join(work, `${tag}-streamed`)).equals(bytes(join(work, `${tag}-memory`)))).toBe(true);
        expect(a.json!.perplexity).toEqual(b.json!.perplexity);
        expect(a.json!.parametersAfter).toBe(b.json!.parametersAfter);
        const { seconds: _a, ...da } = a.json!.details as Record<string, unknown>;
        const { seconds: _b, ...db } = b.json!.details as Record<string, unknown>;
        expect(da).toEqual(db);
        expect(a.json!.architectureAfter).toEqual(b.json!.architectureAfter);
        const config = JSON.parse(readFileSync(join(work, `${tag}-streamed`, 'config.json'), 'utf8'));
        expect(config.torch_dtype).toBe(name.includes('bf16') ? 'bfloat16' : 'float32');
        expect(config).toEqual(JSON.parse(readFileSync(join(work, `${tag}-memory`, 'config.json'), 'utf8')));
      });
    }
  }

  it('under a tiny memory budget (block inputs spilled to --spill-dir): the same bytes, the folder left clean', async () => {
    const spill = join(work, 'spill');
    const method = ['--method', 'llm-pruner', '--ratio', '0.2'];
    const a = await prune(STORIES, join(work, 'tiny'), method, ['--max-memory', '0.00005', '--spill-dir', spill]);
    const b = await prune(STORIES, join(work, 'tiny-memory'), method, ['--in-memory']);
    expect(a.code, a.stderr).toBe(0);
    expect(bytes(join(work, 'tiny')).equals(bytes(join(work, 'tiny-memory')))).toBe(true);
    expect(a.json!.perplexity).toEqual(b.json!.perplexity);
    expect(existsSync(spill) ? readdirSync(spill) : []).toEqual([]);
  });

  it('a llama2.c .bin input: the same bytes streamed and in memory (its block tensors are read whole, cut, then by rows)', async () => {
    const bin = join(root, 'assets', 'models', 'stories260K');
    const method = ['--method', 'llm-pruner', '--ratio', '0.2', '--tokenizer', join(bin, 'tok512.bin')];
    const a = await prune(join(bin, 'stories260K.bin'), join(work, 'l2c'), method);
    const b = await prune(join(bin, 'stories260K.bin'), join(work, 'l2c-memory'), method, ['--in-memory']);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.json!.streamed).toBe(true);
    expect(bytes(join(work, 'l2c')).equals(bytes(join(work, 'l2c-memory')))).toBe(true);
  });

  it('--resume is refused for methods that change the shape, naming the flag', async () => {
    const r = await prune(STORIES, join(work, 'resume'), ['--method', 'depth', '--remove', '1'], ['--resume']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--resume');
    expect(r.stderr).toContain('depth');
  });
});

/** A recipe in `dir` over `model`: seed 1, 6 × 48 calibration windows of the text, the given stages, output ./run. */
function writeRecipe(dir: string, model: string, stages: string[]): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'r.yaml');
  const lines = [`model: { from: ${model} }`, 'seed: 1', 'data:', `  calibration: { path: ${TEXT}, samples: 6, seqlen: 48 }`, 'stages:', ...stages.map((s) => `  - ${s}`), 'output: ./run'];
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

describe('topiary run streams recipes with structured stages', () => {
  it('LLM-Pruner then depth then eval: streamed, the same final bytes as `topiary prune --in-memory` twice', async () => {
    const dir = join(work, 'recipe');
    const file = writeRecipe(dir, STORIES, [
      'prune: { method: llm-pruner, ratio: 0.2, saliency: taylor-vector, batchSize: 4 }',
      'prune: { method: depth, remove: 1, score: taylor, batchSize: 4 }',
      `eval: { perplexity: [${TEXT}], seqlen: 64, limit: 4 }`,
    ]);
    const r = await runCli(['run', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('the model is streamed');
    const calibration = ['--calibration', TEXT, '--samples', '6', '--seqlen', '48', '--batch-size', '4', '--seed', '1', '--in-memory'];
    const first = await runCli(['--json', '--out', join(dir, 'mem-1'), 'prune', '--model', STORIES, '--method', 'llm-pruner', '--ratio', '0.2', '--saliency', 'taylor-vector', ...calibration]);
    expect(first.code, first.stderr).toBe(0);
    const second = await runCli(['--json', '--out', join(dir, 'mem-2'), 'prune', '--model', join(dir, 'mem-1'), '--method', 'depth', '--remove', '1', '--score', 'taylor', ...calibration]);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout).streamed).toBe(false);
    expect(readFileSync(join(dir, 'run', 'model', 'model.safetensors')).equals(bytes(join(dir, 'mem-2')))).toBe(true);
    expect(readFileSync(join(dir, 'run', 'checkpoints', 'stage-1', 'model.safetensors')).equals(bytes(join(dir, 'mem-1')))).toBe(true);
    const results = JSON.parse(readFileSync(join(dir, 'run', 'results.json'), 'utf8')) as { stages: { kind: string; parametersAfter?: number }[] };
    expect(results.stages.map((s) => s.kind)).toEqual(['prune', 'prune', 'eval']);
    expect(results.stages[1]!.parametersAfter).toBe(JSON.parse(second.stdout).parametersAfter);
  });
});

describe('topiary run: a structured stage after a stage that changed a bf16 model', () => {
  it('reads the float32 values the run holds: the checkpoint before it is float32, equal to the prune command’s --dtype f32 output', async () => {
    const dir = join(work, 'recipe-bf16');
    const model = randomBf16Model();
    const file = writeRecipe(dir, model, ['prune: { method: sparsegpt, sparsity: 0.5, batchSize: 4 }', 'prune: { method: llm-pruner, ratio: 0.2, batchSize: 4 }']);
    const r = await runCli(['run', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('the model is streamed');
    const stage1 = join(dir, 'run', 'checkpoints', 'stage-1');
    expect(JSON.parse(readFileSync(join(stage1, 'config.json'), 'utf8')).torch_dtype).toBe('float32');
    const cli = await runCli(['--json', '--out', join(dir, 'f32'), 'prune', '--model', model, '--method', 'sparsegpt', '--sparsity', '0.5', '--dtype', 'f32',
      '--calibration', TEXT, '--samples', '6', '--seqlen', '48', '--batch-size', '4', '--seed', '1']);
    expect(cli.code, cli.stderr).toBe(0);
    expect(readFileSync(join(stage1, 'model.safetensors')).equals(bytes(join(dir, 'f32')))).toBe(true);
    expect(existsSync(join(dir, 'run', 'model', 'config.json'))).toBe(true);
  });
});
