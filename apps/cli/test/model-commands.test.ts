/** `topiary inspect` and `topiary generate` on the shipped stories260K model (llama2.c and HF layouts). */
import { join, resolve } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { runCli } from './helpers.js';
import { resolveTokenizerPath } from '@topiary/pipeline';

const assets = resolve(__dirname, '..', '..', '..', 'assets', 'models');
const bin = join(assets, 'stories260K', 'stories260K.bin');
const tok = join(assets, 'stories260K', 'tok512.bin');
const hf = join(assets, 'stories260K-hf');

const run = runCli;

describe('topiary inspect', () => {
  it('--json: config, parameters per kind, groups per layer', async () => {
    const r = await run(['--json', 'inspect', '--model', bin]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as {
      format: string;
      config: { dim: number; nLayers: number };
      parameters: { total: number; embedding: number; attention: number; mlp: number; norm: number; lmHead: number };
      layers: { nHeads: number; groups: { head: number; 'ffn-channel': number } }[];
      groups: Record<string, number>;
      tokenizer: { vocabSize: number };
    };
    expect(j.format).toBe('llama2c');
    expect(j.config).toMatchObject({ dim: 64, nLayers: 5 });
    expect(j.parameters).toEqual({ total: 260032, embedding: 32768, attention: 5 * 12288, mlp: 5 * 33024, norm: 5 * 128 + 64, lmHead: 0 });
    expect(j.layers).toHaveLength(5);
    expect(j.layers[0]!.groups).toEqual({ head: 8, 'kv-group': 4, 'ffn-channel': 172 });
    expect(j.groups).toEqual({ head: 40, 'kv-group': 20, 'ffn-channel': 860, 'hidden-channel': 64, block: 5 });
    expect(j.tokenizer.vocabSize).toBe(512); // tok512.bin found beside the model
  });

  it('text output for an HF folder', async () => {
    const r = await run(['inspect', '--model', hf]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('dim 64, 5 layers, 8 heads (4 kv, head dim 8), ffn 172, vocab 512');
    expect(r.stdout).toContain('tokenizer');
  });

  it('missing --model and a bad path are errors with exit codes', async () => {
    expect((await run(['inspect'])).code).toBe(2);
    const r = await run(['inspect', '--model', '/nonexistent/model.bin']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('/nonexistent/model.bin');
  });
});

describe('topiary generate', () => {
  it('greedy continuation of "Once upon a time" (llama2.c .bin + tok512)', async () => {
    const r = await run(['--backend', 'wasm', 'generate', '--model', bin, '--tokenizer', tok, '--prompt', 'Once upon a time', '--max-tokens', '40']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Once upon a time, there was a little girl named Lily/);
  });

  it('HF folder, sampled and seeded, --json', async () => {
    const args = ['--json', '--backend', 'wasm', 'generate', '--model', hf, '--prompt', 'Lily', '--temperature', '0.9', '--top-p', '0.9', '--seed', '5', '--max-tokens', '20'];
    const a = await run(args);
    const b = await run(args);
    expect(a.code, a.stderr).toBe(0);
    const ja = JSON.parse(a.stdout) as { text: string; ids: number[]; tokens: number };
    expect(ja.tokens).toBeGreaterThan(0);
    expect(ja.ids).toEqual((JSON.parse(b.stdout) as { ids: number[] }).ids);
  });

  it('--samples N decodes N continuations together; sample i is what --seed (seed + i) gives alone', async () => {
    const base = ['--json', '--backend', 'wasm', 'generate', '--model', hf, '--prompt', 'Lily', '--temperature', '0.9', '--top-p', '0.9', '--max-tokens', '12'];
    const many = await run([...base, '--seed', '5', '--samples', '3']);
    expect(many.code, many.stderr).toBe(0);
    const j = JSON.parse(many.stdout) as { samples: { ids: number[]; fullText: string }[]; tokens: number };
    expect(j.samples).toHaveLength(3);
    expect(j.tokens).toBe(j.samples.reduce((s, x) => s + x.ids.length, 0));
    for (const [i, sample] of j.samples.entries()) {
      const one = JSON.parse((await run([...base, '--seed', String(5 + i)])).stdout) as { ids: number[] };
      expect(sample.ids).toEqual(one.ids);
    }
    const text = await run(['--backend', 'wasm', 'generate', '--model', hf, '--prompt', 'Lily', '--max-tokens', '8', '--samples', '2']);
    expect(text.stdout).toMatch(/^--- sample 0\nLily[^]*--- sample 1\nLily/);
    expect((await run(['generate', '--model', hf, '--samples', '0'])).code).toBe(2);
  });

  it('a llama2.c .bin without a tokenizer beside it needs --tokenizer', () => {
    expect(resolveTokenizerPath('/tmp/nowhere/model.bin')).toBeUndefined();
    expect(resolveTokenizerPath(bin)).toBe(tok);
    expect(resolveTokenizerPath(hf)).toBe(join(hf, 'tokenizer.json'));
  });
});

describe('--model org/name', () => {
  it('reads the snapshot from the local Hugging Face cache (HF_HUB_CACHE), never the network', async () => {
    const { cpSync, mkdirSync, mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const cache = mkdtempSync(join(tmpdir(), 'topiary-cli-hf-'));
    const repo = join(cache, 'models--karpathy--stories260K');
    mkdirSync(join(repo, 'refs'), { recursive: true });
    writeFileSync(join(repo, 'refs', 'main'), 'b'.repeat(40));
    cpSync(hf, join(repo, 'snapshots', 'b'.repeat(40)), { recursive: true });
    const saved = process.env.HF_HUB_CACHE;
    process.env.HF_HUB_CACHE = cache;
    try {
      const r = await run(['--json', 'inspect', '--model', 'karpathy/stories260K']);
      expect(r.code, r.stderr).toBe(0);
      expect((JSON.parse(r.stdout) as { config: { nLayers: number } }).config.nLayers).toBe(5);
      const missing = await run(['inspect', '--model', 'karpathy/not-cached']);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain(join(cache, 'models--karpathy--not-cached'));
      expect(missing.stderr).toContain('nothing is downloaded');
    } finally {
      if (saved === undefined) delete process.env.HF_HUB_CACHE;
      else process.env.HF_HUB_CACHE = saved;
    }
  });
});
