import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { runCli } from './helpers.js';

const run = runCli;

describe('topiary train', () => {
  it('--help shows examples', async () => {
    const r = await run(['train', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
  });

  it('a schedule ending after the token budget is a configuration error naming the field (exit 2)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-cli-train-'));
    const recipe = join(dir, 'r.yaml');
    writeFileSync(
      recipe,
      `stages:\n- train:\n    model: { vocabSize: 512, dim: 32, nLayers: 2, nHeads: 4, hiddenDim: 64 }\n    data: { train: x.txt, tokenizer: bytes }\n    steps: 10\n    out: ${dir}/run\n    prune: { targetRatio: 0.5, schedule: { name: cubic, end: 50 } }\n`,
    );
    const r = await run(['--json', 'train', recipe]);
    expect(r.code).toBe(2);
    const e = JSON.parse(r.stdout || r.stderr).error;
    expect(e.where).toBe('stages[0].train.prune.schedule.end');
    expect(e.message).toMatch(/after the token budget/);
    expect(e.file).toBe(recipe);
  });
});
