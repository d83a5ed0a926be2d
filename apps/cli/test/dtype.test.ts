/** `--dtype` on every command that writes a model; without it the input's dtype is kept. */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers.js';

const hf = resolve(__dirname, '..', '..', '..', 'assets', 'models', 'stories260K-hf');

function stored(dir: string): { torch: string; dtypes: string[] } {
  const buf = readFileSync(join(dir, 'model.safetensors'));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string }>;
  const dtypes = [...new Set(Object.entries(header).filter(([k]) => k !== '__metadata__').map(([, t]) => t.dtype))];
  return { torch: (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { torch_dtype: string }).torch_dtype, dtypes };
}

describe('--dtype', () => {
  it('prune writes the chosen dtype; a bad value is refused before any work', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-dtype-'));
    const r = await runCli(['--json', 'prune', '--model', hf, '--method', 'magnitude', '--sparsity', '0.5', '--dtype', 'bf16', '--out', join(dir, 'bf16')]);
    expect(r.code, r.stderr).toBe(0);
    expect(stored(join(dir, 'bf16'))).toEqual({ torch: 'bfloat16', dtypes: ['BF16'] });
    // read back and pruned again without --dtype: bf16 stays bf16
    const again = await runCli(['--json', 'prune', '--model', join(dir, 'bf16'), '--method', 'magnitude', '--sparsity', '0.6', '--out', join(dir, 'again')]);
    expect(again.code, again.stderr).toBe(0);
    expect(stored(join(dir, 'again')).dtypes).toEqual(['BF16']);
    const bad = await runCli(['prune', '--model', hf, '--method', 'magnitude', '--sparsity', '0.5', '--dtype', 'f8', '--out', join(dir, 'bad')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--dtype: "f8" is not one of f32, f16, bf16');
    expect(existsSync(join(dir, 'bad'))).toBe(false);
  });

  it('run writes its checkpoints and final model in the chosen dtype', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-dtype-run-'));
    const recipe = join(dir, 'r.yaml');
    writeFileSync(recipe, `model: ${JSON.stringify(hf)}\nstages:\n  - prune: { method: magnitude, sparsity: 0.5 }\n`);
    const r = await runCli(['--json', 'run', recipe, '--out', join(dir, 'run'), '--dtype', 'f16']);
    expect(r.code, r.stderr).toBe(0);
    expect(stored(join(dir, 'run', 'model'))).toEqual({ torch: 'float16', dtypes: ['F16'] });
    expect(stored(join(dir, 'run', 'checkpoints', 'stage-1')).dtypes).toEqual(['F16']);
  });
});
