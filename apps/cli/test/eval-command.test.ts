/** `topiary eval` on the shipped stories260K model: the --json shape, quick limits, comparisons, bad input. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { gemmInfo } from '@topiary/backend-wasm';
import { runCli } from './helpers.js';

const assets = resolve(__dirname, '..', '..', '..', 'assets');
const hf = join(assets, 'models', 'stories260K-hf');
const bin = join(assets, 'models', 'stories260K', 'stories260K.bin');
const dir = mkdtempSync(join(tmpdir(), 'topiary-eval-cli-'));
const text = join(dir, 'stories.txt');
const full = readFileSync(join(assets, 'data', 'tinystories_val_head.txt'));
writeFileSync(text, full.subarray(0, full.indexOf('\n\n', 8000)));

const run = runCli;

describe('topiary eval', () => {
  it('--json prints one object {perplexity: {file: {ppl, tokens}}, tasks: {name: {acc, acc_norm, n}}}', async () => {
    const r = await run(['--json', 'eval', '--model', hf, '--perplexity', text, '--tasks', 'hellaswag-mini', 'arc-easy-dev-mini', '--limit', '3', '--seqlen', '128', '--stride', '64']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { perplexity: Record<string, { ppl: number; tokens: number; mode: string }>; tasks: Record<string, { acc: number; acc_norm: number; n: number }> };
    expect(Object.keys(j.perplexity)).toEqual([text]);
    expect(j.perplexity[text]!.mode).toBe('strided');
    expect(j.perplexity[text]!.tokens).toBe(127 + 64 + 64);
    expect(j.perplexity[text]!.ppl).toBeGreaterThan(1.5);
    expect(j.perplexity[text]!.ppl).toBeLessThan(20);
    expect(Object.keys(j.tasks).sort()).toEqual(['arc-easy-dev-mini', 'hellaswag-mini']);
    expect(j.tasks['hellaswag-mini']).toMatchObject({ n: 3 });
    expect(typeof j.tasks['hellaswag-mini']!.acc_norm).toBe('number');
  });

  it('text output is a Markdown table; --compare puts models side by side', async () => {
    const r = await run(['eval', '--model', hf, '--compare', bin, '--perplexity', text, '--limit', '2', '--seqlen', '64']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('| text | ppl |');
    expect(r.stdout).toContain(`| metric | ${hf} | ${bin} | Δ (last − first) |`);
    expect(r.stdout).toMatch(/\| ppl .* \| [+-]0\.000 \|/); // same model in two formats
  });

  it('--list-tasks names the built-in tasks', async () => {
    const r = await run(['eval', '--list-tasks']);
    expect(r.code).toBe(0);
    for (const n of ['piqa', 'hellaswag', 'arc-easy', 'arc-challenge', 'winogrande', 'boolq', 'openbookqa', 'siqa']) expect(r.stdout).toContain(n);
  });

  it('bad input: unknown task (lists known ones), empty file, non-UTF-8, nothing to do, bad numbers', async () => {
    const unknown = await run(['eval', '--model', hf, '--tasks', 'mmlu']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown task "mmlu"');
    expect(unknown.stderr).toContain('known tasks: arc-challenge');
    writeFileSync(join(dir, 'empty.txt'), '');
    const empty = await run(['eval', '--model', hf, '--perplexity', join(dir, 'empty.txt')]);
    expect(empty.code).toBe(1);
    expect(empty.stderr).toContain('empty');
    writeFileSync(join(dir, 'latin1.txt'), Buffer.from('na\xefve '.repeat(100), 'latin1'));
    const latin = await run(['eval', '--model', hf, '--perplexity', join(dir, 'latin1.txt'), '--seqlen', '16']);
    expect(latin.code).toBe(1);
    expect(latin.stderr).toContain('at byte offset 2');
    writeFileSync(join(dir, 'short.txt'), 'Once upon a time.');
    const short = await run(['eval', '--model', hf, '--perplexity', join(dir, 'short.txt')]);
    expect(short.code).toBe(1);
    expect(short.stderr).toContain('shorter than one window of --seqlen 512');
    expect((await run(['eval', '--model', hf])).code).toBe(2);
    expect((await run(['eval', '--model', hf, '--tasks', 'piqa', '--limit', '0'])).code).toBe(2);
  });

  it('a bad TOPIARY_WASM_THREADS is a usage error naming the variable; a good one sets the GEMM threads', async () => {
    vi.stubEnv('TOPIARY_WASM_THREADS', 'abc');
    try {
      const bad = await run(['--backend', 'wasm', 'eval', '--model', hf, '--perplexity', text, '--seqlen', '128']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/TOPIARY_WASM_THREADS must be a whole number ≥ 1, got "abc"/);
      vi.stubEnv('TOPIARY_WASM_THREADS', '1');
      const good = await run(['--json', '--backend', 'wasm', 'eval', '--model', hf, '--perplexity', text, '--seqlen', '128']);
      expect(good.code).toBe(0);
      expect(gemmInfo()?.threads).toBe(1);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
