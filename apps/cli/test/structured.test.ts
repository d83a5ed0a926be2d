/**
 * Structured pruning and recovery through the CLI, on the shipped stories260K model: llm-pruner and depth with
 * --json (parameters and perplexity before/after), finetune with distillation (perplexity before/after recovery),
 * and the bad-input errors naming their flags.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { runCli } from './helpers.js';

const root = join(import.meta.dirname, '..', '..', '..');
const model = join(root, 'assets/models/stories260K-hf');
const text = join(root, 'assets/data/tinystories_val_head.txt');
const dir = mkdtempSync(join(tmpdir(), 'topiary-structured-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = runCli;

const calib = ['--calibration', text, '--samples', '10', '--seqlen', '64', '--eval', text, '--eval-limit', '8'];

describe('topiary prune (structured) and finetune', () => {
  it('llm-pruner --json: parameters and perplexity before/after; the saved model is smaller', async () => {
    const out = join(dir, 'llmp');
    const r = await run(['--json', '--out', out, 'prune', '--model', model, '--method', 'llm-pruner', '--ratio', '0.2', '--saliency', 'taylor-vector', ...calib]);
    expect(r.code, r.stderr).toBe(0);
    const body = JSON.parse(r.stdout) as { parametersBefore: number; parametersAfter: number; perplexity: { before: number; after: number } };
    expect(body.parametersBefore).toBe(260032);
    expect(body.parametersAfter).toBeLessThan(260032 * 0.81);
    expect(body.perplexity.after).toBeGreaterThan(body.perplexity.before);
    expect(statSync(join(out, 'model.safetensors')).size).toBeLessThan(statSync(join(model, 'model.safetensors')).size * 0.82);

    const ft = join(dir, 'llmp-ft');
    const f = await run(['--json', '--out', ft, 'finetune', '--model', out, '--data', text, '--steps', '30', '--lr', '3e-3', '--batch-size', '4', '--seqlen', '64',
      '--distill-from', model, '--temperature', '2', '--alpha', '0.5', '--eval', text, '--eval-seqlen', '64', '--eval-limit', '8']);
    expect(f.code, f.stderr).toBe(0);
    const fb = JSON.parse(f.stdout) as { parameters: number; perplexity: { before: number; after: number }; firstLoss: number; lastLoss: number };
    expect(fb.parameters).toBe(body.parametersAfter);
    expect(fb.perplexity.after).toBeLessThan(fb.perplexity.before);
  });

  it('depth --json removes one block', async () => {
    const r = await run(['--json', '--out', join(dir, 'depth'), 'prune', '--model', model, '--method', 'depth', '--remove', '1', '--score', 'block-influence', ...calib]);
    expect(r.code, r.stderr).toBe(0);
    const body = JSON.parse(r.stdout) as { parametersBefore: number; parametersAfter: number; details: { removedBlocks: number[] } };
    expect(body.parametersBefore - body.parametersAfter).toBe(45440);
    expect(body.details.removedBlocks).toHaveLength(1);
  });

  it('with no --samples/--seqlen each method uses its published calibration (LLM-Pruner 10 × 64, depth 10 × 128)', async () => {
    for (const [method, extra, samples, seqLen] of [
      ['llm-pruner', ['--ratio', '0.2'], 10, 64],
      ['depth', ['--remove', '1'], 10, 128],
    ] as const) {
      const r = await run(['--json', '--out', join(dir, `default-${method}`), 'prune', '--model', model, '--method', method, ...extra, '--calibration', text]);
      expect(r.code, r.stderr).toBe(0);
      expect((JSON.parse(r.stdout) as { calibration: unknown }).calibration).toMatchObject({ samples, seqLen });
    }
    const help = await run(['prune', '--help']);
    expect(help.stdout).toMatch(/llm-pruner\s+10 windows × 64 tokens/);
    expect(help.stdout).toMatch(/depth\s+10 windows × 128 tokens/);
  }, 120_000);

  it('a calibration the size of the model context (128 × 512) runs in bounded batches instead of crashing', async () => {
    // the default calibration before the fix: one forward over 128 × 512 tokens ran the wasm heap out of bounds
    const r = await run(['--json', '--out', join(dir, 'depth-big'), 'prune', '--model', model, '--method', 'depth', '--remove', '1', '--calibration', text, '--samples', '128', '--seqlen', '512']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/internal error/);
    expect((JSON.parse(r.stdout) as { calibration: unknown }).calibration).toMatchObject({ samples: 128, seqLen: 512 });
  }, 180_000);

  it('bad input names the flag and exits 2', async () => {
    const cases: [string[], RegExp][] = [
      [['--method', 'llm-pruner', '--ratio', '0.5'], /--ratio.*every attention head/],
      [['--method', 'llm-pruner', '--ratio', '0.2', '--saliency', 'nope'], /--saliency.*unknown saliency "nope"[\s\S]*taylor-element/],
      [['--method', 'depth', '--remove', '5'], /--remove.*5 of the model's 5 blocks/],
    ];
    for (const [args, message] of cases) {
      const r = await run(['--out', join(dir, 'bad'), 'prune', '--model', model, ...args, '--calibration', text, '--samples', '2', '--seqlen', '32']);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const f = await run(['--out', join(dir, 'bad'), 'finetune', '--model', model, '--data', text]);
    expect(f.code).toBe(2);
    expect(f.stderr).toMatch(/--steps/);
  });
});
