/** `topiary eval` on the shipped stories260K model: the --json shape, quick limits, comparisons, bad input. */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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

  it('lm-eval names, aliases and comma lists; --output-path writes lm-eval results JSON; --log-samples per-item log-likelihoods; --predictions logliks', async () => {
    const out = join(dir, 'lm');
    const r = await run(['--json', 'eval', '--model', hf, '--tasks', 'hellaswag-mini,arc-easy-dev-mini', '--limit', '3', '--num-fewshot', '1', '--output-path', out, '--log-samples', '--predictions']);
    expect(r.code, r.stderr).toBe(0);
    // stdout keeps the --json shape; --predictions now carries each item's log-likelihoods
    const j = JSON.parse(r.stdout) as { tasks: Record<string, { n: number; predictions: number[]; logliks: number[][]; labels: number[] }> };
    expect(Object.keys(j.tasks).sort()).toEqual(['arc-easy-dev-mini', 'hellaswag-mini']);
    expect(j.tasks['hellaswag-mini']!.logliks).toHaveLength(3);
    expect(j.tasks['hellaswag-mini']!.logliks[0]!.every((x) => x < 0)).toBe(true);
    const folder = join(out, hf.replace(/["<>:/|\\?*[\]]+/g, '__'));
    const lm = JSON.parse(readFileSync(join(folder, 'results.json'), 'utf8')) as Record<string, any>;
    expect(typeof lm.results['hellaswag-mini']['acc,none']).toBe('number');
    expect(lm.results['hellaswag-mini']).toHaveProperty(['acc_norm,none']);
    expect(lm.results['hellaswag-mini']).toHaveProperty(['acc_stderr,none']);
    expect(lm['n-samples']['hellaswag-mini']).toEqual({ original: 100, effective: 3 });
    expect(lm['n-shot']['arc-easy-dev-mini']).toBe(1);
    expect(lm.versions['hellaswag-mini']).toBe(1);
    expect(lm.configs['arc-easy-dev-mini']).toMatchObject({ doc_to_text: 'Question: {{question}}\nAnswer:', num_fewshot: 1 });
    expect(lm.config.model_args).toContain(`pretrained=${hf}`);
    expect(lm.config).toMatchObject({ limit: 3, fewshot_seed: 1234, batch_size: 8 });
    const samples = readFileSync(join(folder, 'samples_hellaswag-mini.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { doc_id: number; filtered_resps: [number, boolean][]; arguments: string[][]; acc: number });
    expect(samples.map((s) => s.doc_id)).toEqual([0, 1, 2]);
    expect(samples[0]!.filtered_resps.map((x) => x[0])).toEqual(j.tasks['hellaswag-mini']!.logliks[0]);
    expect(samples[0]!.arguments[0]![0]).toContain('\n\n'); // one few-shot example in front
  });

  it('task files by path in a public schema; a file matching no schema names the fields it lacks; boolq refused with a hint', async () => {
    const piqa = join(dir, 'my_piqa.jsonl');
    writeFileSync(piqa, '{"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Kick the jar.", "label": 0}\n{"goal": "Dry a towel", "sol1": "Hang it in the sun.", "sol2": "Put it in a bucket.", "label": 0}\n');
    const ok = await run(['--json', 'eval', '--model', hf, '--tasks', piqa]);
    expect(ok.code, ok.stderr).toBe(0);
    expect((JSON.parse(ok.stdout) as { tasks: Record<string, { n: number }> }).tasks.my_piqa).toMatchObject({ n: 2 });
    const odd = join(dir, 'odd.jsonl');
    writeFileSync(odd, '{"prompt": "x", "answer": "y"}\n');
    const bad = await run(['eval', '--model', hf, '--tasks', odd]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('matches no known schema');
    expect(bad.stderr).toContain('(lacks goal, sol1, sol2, label)');
    const boolq = await run(['eval', '--model', hf, '--tasks', 'piqa,boolq']);
    expect(boolq.code).toBe(2);
    expect(boolq.stderr).toContain('boolq_nopassage');
    const noOut = await run(['eval', '--model', hf, '--tasks', 'hellaswag-mini', '--log-samples']);
    expect(noOut.code).toBe(2);
    expect(noOut.stderr).toContain('--output-path');
  });

  const lambada = resolve(__dirname, '..', '..', '..', '..', 'shared', 'data', 'eval', 'lambada_openai_test.jsonl');
  if (!existsSync(lambada)) console.log(`skipped: lambada_openai needs ${lambada} (shared data beside the checkout), which is absent`);
  it.skipIf(!existsSync(lambada))('lambada_openai from the shared data: acc and perplexity of the last word', async () => {
    const out = join(dir, 'lam.json');
    const r = await run(['--json', 'eval', '--model', hf, '--tasks', 'lambada_openai', '--limit', '4', '--bootstrap-iters', '100', '--output-path', out]);
    expect(r.code, r.stderr).toBe(0);
    const t = (JSON.parse(r.stdout) as { tasks: Record<string, { n: number; acc: number; perplexity: number }> }).tasks.lambada_openai!;
    expect(t.n).toBe(4);
    expect(t.perplexity).toBeGreaterThan(1);
    const lm = JSON.parse(readFileSync(out, 'utf8')) as Record<string, any>;
    expect(Object.keys(lm.results.lambada_openai)).toEqual(['alias', 'perplexity,none', 'perplexity_stderr,none', 'acc,none', 'acc_stderr,none']);
    expect(lm['n-samples'].lambada_openai).toEqual({ original: 5153, effective: 4 });
  });
});
