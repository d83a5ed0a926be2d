import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../src/program.js';

const root = resolve(__dirname, '..', '..', '..');
const MODEL = join(root, 'assets', 'models', 'stories260K-hf');
// The first 24 KB of the shipped TinyStories text (tokenizing all 794 KB would dominate the test).
const TEXT = join(mkdtempSync(join(tmpdir(), 'topiary-prune-text-')), 'stories.txt');
writeFileSync(TEXT, readFileSync(join(root, 'assets', 'data', 'tinystories_val_head.txt'), 'utf8').slice(0, 24_000));

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true));
  return { out, err };
}

describe('topiary prune', () => {
  afterEach(() => vi.restoreAllMocks());

  it('wanda 2:4 with eval: one JSON object, exact 2:4, saved model + tokenizer + table, progress per block', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-prune-'));
    const io = capture();
    const code = await main([
      '--json', '--out', dir, 'prune', '--model', MODEL, '--method', 'wanda', '--pattern', '2:4',
      '--calibration', TEXT, '--samples', '8', '--seqlen', '64', '--eval', TEXT, '--eval-limit', '4',
    ]);
    vi.restoreAllMocks();
    expect(code, io.err.join('')).toBe(0);
    const result = JSON.parse(io.out.join(''));
    expect(result.sparsity).toBeCloseTo(0.5, 9);
    expect(result.nmExact).toBe(true);
    expect(result.perplexity.after).toBeGreaterThan(result.perplexity.before);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'sparsity.txt', 'prune-report.json']) expect(existsSync(join(dir, f)), f).toBe(true);
    expect(readFileSync(join(dir, 'sparsity.txt'), 'utf8')).toContain('model.layers.4.mlp.down_proj.weight');
  });

  it.each([
    [['--sparsity', '1'], '--sparsity'],
    [['--sparsity', '0.5', '--pattern', '4:4'], '--pattern'],
    [['--sparsity', '0.5', '--layers', '9'], '--layers'],
    [['--sparsity', '0.5', '--samples', '1000', '--seqlen', '256'], '--samples'],
    [['--sparsity', '0.5', '--calibration', '/nonexistent/calib.txt'], '--calibration'],
    [['--sparsity', '0.5', '--method', 'nosuch'], '--method'],
  ])('bad input %j names %s', async (extra, flag) => {
    const dir = mkdtempSync(join(tmpdir(), 'topiary-prune-'));
    const io = capture();
    const args = ['--json', '--out', dir, 'prune', '--model', MODEL, '--method', 'wanda', '--calibration', TEXT, '--samples', '8', '--seqlen', '64', ...extra];
    if (extra.includes('--calibration')) args.splice(args.indexOf('--calibration'), 2);
    const code = await main(args);
    vi.restoreAllMocks();
    expect(code).toBeGreaterThan(0);
    expect(io.err.join('') + io.out.join('')).toContain(flag);
  });
});
