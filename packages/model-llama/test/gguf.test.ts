/** GGUF export: header, metadata, tensor infos and offsets, data round trip (our own reader), refusals. */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { TopiaryError } from '@topiary/kernel';
import { parseLlama2cTokenizer } from '@topiary/corpus';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  GGUF_ALIGNMENT,
  GgmlType,
  LlamaModel,
  TokenType,
  ggufToHfWeights,
  ggufVocabFromPieces,
  loadModel,
  permuteForGguf,
  readGguf,
  unpermuteFromGguf,
  writeGguf,
  type GgufVocab,
} from '../src/index.js';
import { maxAbsDiff, repoRoot, stories260KBin } from './paths.js';
import { logitsOf, weightsOf } from './model-helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'model-llama-gguf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await tf.setBackend('cpu');
});

function vocab(): GgufVocab {
  const v = parseLlama2cTokenizer(readFileSync(join(repoRoot, 'assets', 'models', 'stories260K', 'tok512.bin')));
  return ggufVocabFromPieces(v.pieces, v.scores, 1, 2);
}

describe('GGUF', () => {
  test('permutation is the inverse of llama2.c → HF and of itself', () => {
    const w = Float32Array.from({ length: 2 * 8 * 3 }, (_, i) => i);
    expect([...unpermuteFromGguf(permuteForGguf(w, 2, 8, 3), 2, 8, 3)]).toEqual([...w]);
  });

  test('f32 export of stories260K: header, metadata, aligned tensors; weights read back give the same logits', async () => {
    const m = await loadModel(stories260KBin);
    const file = join(tmp, 'stories-f32.gguf');
    const v = vocab();
    const r = writeGguf(file, m.config, weightsOf(m), { vocab: v, name: 'stories260K' });
    expect(r.padded).toBe(false);
    const g = readGguf(file);
    expect(g.version).toBe(3);
    expect(readFileSync(file).subarray(0, 4).toString('latin1')).toBe('GGUF');
    expect(g.metadata.get('general.architecture')).toBe('llama');
    expect(g.metadata.get('llama.block_count')).toBe(5);
    expect(g.metadata.get('llama.embedding_length')).toBe(64);
    expect(g.metadata.get('llama.feed_forward_length')).toBe(172);
    expect(g.metadata.get('llama.attention.head_count')).toBe(8);
    expect(g.metadata.get('llama.attention.head_count_kv')).toBe(4);
    expect(g.metadata.get('llama.rope.dimension_count')).toBe(8);
    expect(g.metadata.get('llama.attention.layer_norm_rms_epsilon')).toBeCloseTo(1e-5, 10);
    expect(g.metadata.get('tokenizer.ggml.model')).toBe('llama');
    const tokens = g.metadata.get('tokenizer.ggml.tokens') as string[];
    expect(tokens).toHaveLength(512);
    expect(tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
    expect(tokens.some((t) => t.startsWith('\u2581'))).toBe(true);
    expect((g.metadata.get('tokenizer.ggml.token_type') as number[]).slice(0, 4)).toEqual([TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL, TokenType.BYTE]);
    // tied embeddings: no output.weight; 2 + 9 per layer tensors
    expect(g.tensors).toHaveLength(2 + 9 * 5);
    expect(g.tensors.find((t) => t.name === 'output.weight')).toBeUndefined();
    expect(g.tensors.find((t) => t.name === 'blk.0.ffn_down.weight')!.dims).toEqual([172, 64]);
    expect(g.tensors.find((t) => t.name === 'token_embd.weight')!.dims).toEqual([64, 512]);
    expect(g.dataStart % GGUF_ALIGNMENT).toBe(0);
    for (const t of g.tensors) expect(t.offset % GGUF_ALIGNMENT).toBe(0);
    const back = new LlamaModel(m.config, ggufToHfWeights(g, m.config));
    expect(maxAbsDiff(logitsOf(back), logitsOf(m))).toBe(0);
    for (const x of [m, back]) x.dispose();
  });

  test('f16, bf16 and q8_0: types, sizes, logits close', async () => {
    const m = await loadModel(stories260KBin);
    const ref = logitsOf(m);
    const sizes: Record<string, number> = {};
    for (const dtype of ['f32', 'f16', 'bf16', 'q8_0'] as const) {
      const file = join(tmp, `stories-${dtype}.gguf`);
      const r = writeGguf(file, m.config, weightsOf(m), { vocab: vocab(), dtype });
      sizes[dtype] = r.bytes;
      const g = readGguf(file);
      const q = g.tensors.find((t) => t.name === 'blk.0.attn_q.weight')!;
      const down = g.tensors.find((t) => t.name === 'blk.0.ffn_down.weight')!;
      const norm = g.tensors.find((t) => t.name === 'blk.0.attn_norm.weight')!;
      expect(norm.type).toBe(GgmlType.F32);
      const expected = { f32: GgmlType.F32, f16: GgmlType.F16, bf16: GgmlType.BF16, q8_0: GgmlType.Q8_0 }[dtype];
      expect(q.type).toBe(expected);
      expect(down.type).toBe(dtype === 'q8_0' ? GgmlType.F16 : expected); // 172-wide rows are not Q8_0 blocks
      const back = new LlamaModel(m.config, ggufToHfWeights(g, m.config));
      const diff = maxAbsDiff(logitsOf(back), ref);
      console.log(`gguf ${dtype}: ${r.bytes} bytes, max |Δlogit| vs f32 model = ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(dtype === 'f32' ? 1e-7 : dtype === 'q8_0' ? 0.5 : 0.1);
      back.dispose();
    }
    expect(sizes.f16!).toBeLessThan(sizes.f32! * 0.6);
    m.dispose();
  });

  test('a width-pruned model (whole kv groups, FFN channels) is written natively: arch deci, per-layer arrays, same logits; pad on request', async () => {
    const m = await loadModel(stories260KBin);
    m.maskGroups(['layers.1.kv.0', 'layers.3.kv.2', ...Array.from({ length: 40 }, (_, c) => `layers.2.ffn.${c * 2}`)]);
    const slim = m.slim();
    const file = join(tmp, 'native.gguf');
    const r = writeGguf(file, slim.config, weightsOf(slim), { vocab: vocab() });
    expect(r).toMatchObject({ padded: false, arch: 'deci' });
    const g = readGguf(file);
    expect(g.metadata.get('general.architecture')).toBe('deci');
    expect(g.metadata.has('llama.feed_forward_length')).toBe(false);
    expect(g.metadata.get('deci.feed_forward_length')).toEqual([172, 172, 132, 172, 172]);
    expect(g.metadata.get('deci.attention.head_count')).toEqual([8, 6, 8, 6, 8]);
    expect(g.metadata.get('deci.attention.head_count_kv')).toEqual([4, 3, 4, 3, 4]);
    expect(g.tensors.find((t) => t.name === 'blk.2.ffn_down.weight')?.dims).toEqual([132, 64]);
    const back = new LlamaModel(r.config, ggufToHfWeights(g, r.config));
    expect(maxAbsDiff(logitsOf(back), logitsOf(slim))).toBeLessThan(1e-5);
    const padFile = join(tmp, 'padded.gguf');
    const p = writeGguf(padFile, slim.config, weightsOf(slim), { vocab: vocab(), nonUniform: 'pad' });
    expect(p).toMatchObject({ padded: true, arch: 'llama' });
    expect(readGguf(padFile).metadata.get('llama.attention.head_count')).toBe(8);
    expect(r.bytes).toBeLessThan(p.bytes);
    for (const x of [m, slim, back]) x.dispose();
  });

  test('a width-pruned model whose layers llama.cpp cannot take as they are (a lone query head under GQA) is padded to uniform sizes and computes the same logits', async () => {
    const m = await loadModel(stories260KBin);
    m.maskGroups(['layers.0.head.1', 'layers.2.kv.3', ...Array.from({ length: 30 }, (_, c) => `layers.4.ffn.${c}`)]);
    const slim = m.slim();
    const file = join(tmp, 'slim.gguf');
    const r = writeGguf(file, slim.config, weightsOf(slim), { vocab: vocab() });
    expect(r.padded).toBe(true);
    const g = readGguf(file);
    expect(g.metadata.get('llama.feed_forward_length')).toBe(172);
    const back = new LlamaModel(r.config, ggufToHfWeights(g, r.config));
    expect(maxAbsDiff(logitsOf(back), logitsOf(slim))).toBeLessThan(1e-5);
    for (const x of [m, slim, back]) x.dispose();
  });

  test('refused before writing: attention biases (Qwen2), llama3 RoPE scaling, a vocabulary of another size', async () => {
    const m = await loadModel(stories260KBin);
    const w = weightsOf(m);
    const cases: Array<[object, RegExp]> = [
      [{ ...m.config, family: 'qwen2', attentionBias: true }, /no attention biases/],
      [{ ...m.config, ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } }, /RoPE scaling "llama3"/],
      [{ ...m.config, vocabSize: 600 }, /tokenizer has 512 tokens/],
    ];
    for (const [cfg, pattern] of cases) {
      const file = join(tmp, 'refused.gguf');
      let err: unknown;
      try {
        writeGguf(file, cfg as LlamaModel['config'], w, { vocab: vocab() });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TopiaryError);
      expect((err as TopiaryError).message).toMatch(pattern);
      expect(existsSync(file)).toBe(false);
    }
    m.dispose();
  });
});
