/** `topiary export`: safetensors (dtype kept or chosen), padded (uniform, same logits), gguf, and refusals. */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LlamaModel, generate, loadModel, readGguf, readSafetensorsIndex, saveModel } from '@topiary/model-llama';
import { runCli } from './helpers.js';

const assets = resolve(__dirname, '..', '..', '..', 'assets', 'models');
const bin = join(assets, 'stories260K', 'stories260K.bin');
const hf = join(assets, 'stories260K-hf');
const tmp = mkdtempSync(join(tmpdir(), 'cli-export-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const prompt = [1, 403, 407, 261, 378];
const greedy = (m: LlamaModel): number[] => generate(m, prompt, { maxTokens: 40, temperature: 0 });
const json = (dir: string): Record<string, unknown> => JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;

describe('topiary export', () => {
  it('safetensors: --dtype bf16, then the bf16 folder exported again stays bf16', async () => {
    const a = join(tmp, 'bf16');
    const r = await runCli(['--json', '--backend', 'cpu', 'export', '--model', hf, '--format', 'safetensors', '--dtype', 'bf16', '--out', a]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ format: 'safetensors', dtype: 'bfloat16' });
    expect(json(a).torch_dtype).toBe('bfloat16');
    expect(existsSync(join(a, 'tokenizer.json'))).toBe(true);
    const b = join(tmp, 'bf16-again');
    const r2 = await runCli(['--backend', 'cpu', 'export', '--model', a, '--format', 'safetensors', '--out', b]);
    expect(r2.code, r2.stderr).toBe(0);
    expect(new Set([...readSafetensorsIndex(join(b, 'model.safetensors')).entries.values()].map((e) => e.dtype))).toEqual(new Set(['BF16']));
    expect(readFileSync(join(b, 'model.safetensors')).equals(readFileSync(join(a, 'model.safetensors')))).toBe(true);
  });

  it('padded: a width-pruned model becomes a plain LlamaForCausalLM with the same greedy text (logits: model-llama test)', async () => {
    const m = await loadModel(bin);
    m.maskGroups(['layers.0.head.2', 'layers.1.kv.0', 'layers.3.head.6', ...Array.from({ length: 50 }, (_, c) => `layers.2.ffn.${c * 2}`)]);
    const slim = m.slim();
    const slimDir = join(tmp, 'slim');
    await saveModel(slim, slimDir);
    expect(json(slimDir).topiary_layers).toBeDefined();
    const out = join(tmp, 'padded');
    const r = await runCli(['--json', '--backend', 'cpu', 'export', '--model', slimDir, '--tokenizer', join(assets, 'stories260K', 'tok512.bin'), '--format', 'padded', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ uniform: true, heads: 8, kvHeads: 4, ffn: 172 });
    const cfg = json(out);
    expect(cfg.topiary_layers).toBeUndefined();
    expect(cfg).toMatchObject({ architectures: ['LlamaForCausalLM'], num_attention_heads: 8, num_key_value_heads: 4, intermediate_size: 172, num_hidden_layers: 5 });
    const padded = await loadModel(out);
    expect(greedy(padded)).toEqual(greedy(slim));
    for (const x of [m, slim, padded]) x.dispose();
  });

  it('gguf: f16 from the HF folder (tokenizer.json vocabulary) and q8_0 into a folder', async () => {
    const file = join(tmp, 'stories.gguf');
    const r = await runCli(['--json', '--backend', 'cpu', 'export', '--model', hf, '--format', 'gguf', '--dtype', 'f16', '--out', file]);
    expect(r.code, r.stderr).toBe(0);
    const g = readGguf(file);
    expect(g.metadata.get('general.architecture')).toBe('llama');
    expect(g.metadata.get('general.file_type')).toBe(1);
    expect((g.metadata.get('tokenizer.ggml.tokens') as string[]).slice(259, 261)).toEqual(['\u2581t', 'he']);
    expect((g.metadata.get('tokenizer.ggml.scores') as number[]).slice(259, 262)).toEqual([-0, -1, -2]);
    const dir = join(tmp, 'gguf-folder');
    const r2 = await runCli(['--backend', 'cpu', '--out', dir, 'export', '--model', bin, '--format', 'gguf', '--dtype', 'q8_0']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(readGguf(join(dir, 'model.gguf')).metadata.get('general.file_type')).toBe(7);
  });

  it('gguf of a width-pruned model: per-layer sizes (arch deci) by default, uniform llama with --pad', async () => {
    const m = await loadModel(bin);
    m.maskGroups(['layers.1.kv.0', ...Array.from({ length: 40 }, (_, c) => `layers.2.ffn.${c}`)]);
    const slim = m.slim();
    const slimDir = join(tmp, 'slim-gguf');
    await saveModel(slim, slimDir);
    const tok = join(assets, 'stories260K', 'tok512.bin');
    const file = join(tmp, 'native.gguf');
    const r = await runCli(['--json', '--backend', 'cpu', 'export', '--model', slimDir, '--tokenizer', tok, '--format', 'gguf', '--out', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ arch: 'deci', padded: false });
    const g = readGguf(file);
    expect(g.metadata.get('deci.attention.head_count')).toEqual([8, 6, 8, 8, 8]);
    expect(g.metadata.get('deci.feed_forward_length')).toEqual([172, 172, 132, 172, 172]);
    const padFile = join(tmp, 'padded.gguf');
    const r2 = await runCli(['--json', '--backend', 'cpu', 'export', '--model', slimDir, '--tokenizer', tok, '--format', 'gguf', '--pad', '--out', padFile]);
    expect(r2.code, r2.stderr).toBe(0);
    expect(JSON.parse(r2.stdout)).toMatchObject({ arch: 'llama', padded: true, heads: 8, ffn: 172 });
    expect(readGguf(padFile).metadata.get('llama.feed_forward_length')).toBe(172);
    for (const x of [m, slim]) x.dispose();
  });

  it('refusals name the flag: missing/unknown --format, bad --dtype, --out equal to the input, Qwen2 to gguf', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['export', '--model', hf, '--out', join(tmp, 'x')], /--format.*is required/s],
      [['export', '--model', hf, '--format', 'onnx', '--out', join(tmp, 'x')], /--format.*"onnx" is not one of safetensors, padded, gguf/s],
      [['export', '--model', hf, '--format', 'safetensors', '--dtype', 'q8_0', '--out', join(tmp, 'x')], /--dtype.*"q8_0" is not one of f32, f16, bf16 for --format safetensors/s],
      [['export', '--model', hf, '--format', 'safetensors'], /--out.*is required/s],
      [['export', '--model', hf, '--format', 'padded', '--out', hf], /--out.*is the model being exported/s],
      [['export', '--model', join(hf, 'model.safetensors'), '--format', 'safetensors', '--out', hf], /--out.*is the model being exported/s],
    ];
    for (const [args, pattern] of cases) {
      const r = await runCli(['--backend', 'cpu', ...args]);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr).toMatch(pattern);
    }
    expect(existsSync(join(tmp, 'x'))).toBe(false);

    // a Qwen2-style model (q/k/v biases) cannot be a llama GGUF: refused before anything is written
    const q = join(tmp, 'qwen2');
    const m = await loadModel(hf);
    const cfg = { ...m.config, family: 'qwen2' as const, attentionBias: true };
    const weights = new Map([...m.parameters().keys()].map((n) => [n, m.readWeight(n)]));
    for (let i = 0; i < cfg.nLayers; i++) {
      for (const k of ['q', 'k', 'v'] as const) weights.set(`model.layers.${i}.self_attn.${k}_proj.bias`, new Float32Array((k === 'q' ? cfg.nHeads : cfg.nKvHeads) * cfg.headDim));
    }
    const qm = new LlamaModel(cfg, weights);
    await saveModel(qm, q);
    const r = await runCli(['--backend', 'cpu', 'export', '--model', q, '--tokenizer', join(hf, 'tokenizer.json'), '--format', 'gguf', '--out', join(tmp, 'qwen2.gguf')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--format.*Qwen2 model cannot be exported as a llama\.cpp "llama" GGUF: that architecture has no attention biases/s);
    expect(existsSync(join(tmp, 'qwen2.gguf'))).toBe(false);
    m.dispose();
    qm.dispose();
  });
});
