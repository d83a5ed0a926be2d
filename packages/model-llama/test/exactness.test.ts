/**
 * Exactness against independent references: PyTorch logits/loss/greedy continuations saved once by
 * bench/reference/model_reference.py, and llama2.c's own greedy ids from BOS (assets/.../stories260K.golden.json).
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { generate, loadModel, type LlamaModel } from '../src/index.js';
import { fixtures, goldenFile, maxAbsDiff, readJson, stories260KBin, stories260KHf } from './paths.js';

interface StoriesRef {
  prompt_ids: number[];
  vocab: number;
  logits: number[];
  loss: number;
  greedy_from_prompt: number[];
  greedy_from_bos: number[];
}
interface TinyRef {
  ids: number[];
  logits: number[];
  loss?: number;
}

const ref = readJson<StoriesRef>(`${fixtures}/stories260K.reference.json`);

function logitsOf(model: LlamaModel, ids: number[]): Float32Array {
  return tf.tidy(() => model.forward(tf.tensor2d([ids], [1, ids.length], 'int32')).dataSync() as Float32Array);
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Long greedy runs use wasm when it can be imported (~4x faster than cpu here); logits are checked on both. */
async function useFastBackend(): Promise<string> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    if (await tf.setBackend('wasm')) return 'wasm';
  } catch {
    console.log('wasm backend not importable: greedy runs on cpu');
  }
  await tf.setBackend('cpu');
  return 'cpu';
}

describe('stories260K (llama2.c legacy .bin) against the PyTorch reference', () => {
  let model: LlamaModel;
  beforeAll(async () => {
    model = await loadModel(stories260KBin);
  });

  test('config comes from the header', () => {
    expect(model.config).toMatchObject({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, maxSeqLen: 512, tiedEmbeddings: true });
    expect(model.parameterCount()).toBe(512 * 64 + 5 * (2 * 64 + 64 * 64 * 2 + 2 * 32 * 64 + 3 * 172 * 64) + 64);
  });

  test('logits of every prompt position within 1e-4', () => {
    const diff = maxAbsDiff(logitsOf(model, ref.prompt_ids), ref.logits);
    console.log(`stories260K max |logit - torch| = ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-4);
  });

  test('loss equals the reference cross-entropy', () => {
    const loss = tf.tidy(() => model.loss(tf.tensor2d([ref.prompt_ids], undefined, 'int32')).dataSync()[0]!);
    expect(Math.abs(loss - ref.loss)).toBeLessThan(1e-5);
  });

  test('200-step greedy continuation (KV cache) is token-identical', async () => {
    await useFastBackend();
    const m = await loadModel(stories260KBin);
    try {
      expect(generate(m, ref.prompt_ids, { maxTokens: 200, stopAtEos: false })).toEqual(ref.greedy_from_prompt);
    } finally {
      m.dispose();
      await tf.setBackend('cpu');
    }
  });

  test('HF folder (safetensors, rotate-half q/k) gives the same logits as the llama2.c file', async () => {
    const hf = await loadModel(stories260KHf);
    const ids = ref.prompt_ids;
    expect(maxAbsDiff(logitsOf(hf, ids), logitsOf(model, ids))).toBe(0);
    hf.dispose();
  });
});

describe('stories260K greedy from BOS reproduces llama2.c (golden.json)', () => {
  test('256 greedy ids', async () => {
    const backend = await useFastBackend();
    const golden = readJson<{ greedy_ids: number[] }>(goldenFile);
    const model = await loadModel(stories260KBin);
    try {
      const out = generate(model, [1], { maxTokens: golden.greedy_ids.length, stopAtEos: false });
      expect(out).toEqual(golden.greedy_ids);
      // llama2.c's text begins "Once upon a time, there was a little girl named Lily."
      expect(out.slice(0, 15)).toEqual([403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426]);
      // and the wasm forward matches the torch reference too
      const diff = maxAbsDiff(logitsOf(model, ref.prompt_ids), ref.logits);
      console.log(`golden greedy on ${backend}; max |logit - torch| = ${diff.toExponential(2)}`);
      expect(diff).toBeLessThan(1e-4);
    } finally {
      model.dispose();
      await tf.setBackend('cpu');
    }
  });
});

describe('tiny random untied GQA model (reference weights written by the Python script)', () => {
  test('F32 safetensors: logits and loss', async () => {
    const r = readJson<TinyRef>(`${fixtures}/tiny-untied/reference.json`);
    const m = await loadModel(`${fixtures}/tiny-untied`);
    expect(m.config.tiedEmbeddings).toBe(false);
    expect(m.parameters().has('lm_head.weight')).toBe(true);
    expect(maxAbsDiff(logitsOf(m, r.ids), r.logits)).toBeLessThan(1e-4);
    const loss = tf.tidy(() => m.loss(tf.tensor2d([r.ids], undefined, 'int32')).dataSync()[0]!);
    expect(Math.abs(loss - r.loss!)).toBeLessThan(1e-5);
    m.dispose();
  });

  test('BF16 safetensors: logits of the bf16-rounded weights', async () => {
    const r = readJson<TinyRef>(`${fixtures}/tiny-untied-bf16/reference.json`);
    const m = await loadModel(`${fixtures}/tiny-untied-bf16/model.safetensors`);
    expect(maxAbsDiff(logitsOf(m, r.ids), r.logits)).toBeLessThan(1e-4);
    m.dispose();
  });

  test('llama2.c v0 (separate classifier), v1 and v2 (Q8_0) headers', async () => {
    const r = readJson<TinyRef>(`${fixtures}/tiny-untied/reference.json`);
    const q = readJson<{ logits_v2: number[] }>(`${fixtures}/tiny-llama2c/reference.json`);
    for (const v of ['v0', 'v1']) {
      const m = await loadModel(`${fixtures}/tiny-llama2c/tiny.${v}.bin`);
      expect(m.config.tiedEmbeddings).toBe(false);
      expect(maxAbsDiff(logitsOf(m, r.ids), r.logits), v).toBeLessThan(1e-4);
      m.dispose();
    }
    const m2 = await loadModel(`${fixtures}/tiny-llama2c/tiny.v2.bin`);
    expect(maxAbsDiff(logitsOf(m2, r.ids), q.logits_v2)).toBeLessThan(1e-4);
    m2.dispose();
  });
});
