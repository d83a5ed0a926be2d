/** Sampling: seeded reproducibility, temperature/top-k/top-p semantics; one forward on the wasm backend. */
import * as tf from '@tensorflow/tfjs';
import { SeededRandom } from '@topiary/linalg';
import { beforeAll, describe, expect, test } from 'vitest';
import { createLlama, generate, loadModel, sampleToken } from '../src/index.js';
import { maxAbsDiff, stories260KBin } from './paths.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('sampleToken', () => {
  const logits = Float32Array.from([0, 3, 1, 2.5, -1]);
  test('temperature 0 is argmax', () => {
    expect(sampleToken(logits, { temperature: 0 }, new SeededRandom(1))).toBe(1);
  });
  test('top-k 1 is argmax at any temperature; top-k 2 only picks the two best', () => {
    const rng = new SeededRandom(3);
    for (let i = 0; i < 50; i++) expect(sampleToken(logits, { temperature: 5, topK: 1 }, rng)).toBe(1);
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) seen.add(sampleToken(logits, { temperature: 5, topK: 2 }, rng));
    expect([...seen].sort()).toEqual([1, 3]);
  });
  test('top-p keeps the smallest set reaching p', () => {
    // probabilities at T=1: ~[0.03, 0.52, 0.07, 0.32, 0.01]; p = 0.8 keeps {1, 3}
    const rng = new SeededRandom(4);
    const seen = new Set<number>();
    for (let i = 0; i < 300; i++) seen.add(sampleToken(logits, { temperature: 1, topP: 0.8 }, rng));
    expect([...seen].sort()).toEqual([1, 3]);
  });
  test('frequencies follow softmax(logits / T)', () => {
    const rng = new SeededRandom(5);
    const counts = new Array(5).fill(0);
    const n = 20000;
    for (let i = 0; i < n; i++) counts[sampleToken(logits, { temperature: 1 }, rng)]++;
    const z = [...logits].map(Math.exp);
    const total = z.reduce((a, b) => a + b, 0);
    z.forEach((p, i) => expect(Math.abs(counts[i] / n - p / total)).toBeLessThan(0.015));
  });
});

describe('generate', () => {
  test('same seed, same tokens; other seed, other tokens; stops at EOS', async () => {
    const m = await loadModel(stories260KBin);
    const a = generate(m, [1], { maxTokens: 30, temperature: 1, topP: 0.9, seed: 42 });
    const b = generate(m, [1], { maxTokens: 30, temperature: 1, topP: 0.9, seed: 42 });
    const c = generate(m, [1], { maxTokens: 30, temperature: 1, topP: 0.9, seed: 43 });
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const tiny = createLlama({ vocabSize: 8, dim: 8, nLayers: 1, nHeads: 2, hiddenDim: 8, maxSeqLen: 16 }, { seed: 1 });
    const all = generate(tiny, [1], { maxTokens: 100, temperature: 2, seed: 9, stopAtEos: false });
    expect(all.length).toBe(15); // limited by maxSeqLen
    const stopped = generate(tiny, [1], { maxTokens: 100, temperature: 2, seed: 9 });
    const eos = all.indexOf(2);
    if (eos >= 0) expect(stopped).toEqual(all.slice(0, eos + 1));
    m.dispose();
    tiny.dispose();
  });

  test('cached decoding gives the logits of a full forward pass', async () => {
    const m = await loadModel(stories260KBin);
    const ids = [1, 403, 407, 261, 378, 432];
    const full = tf.tidy(() => m.forward(tf.tensor2d([ids], undefined, 'int32')).dataSync() as Float32Array);
    const cache = m.newCache();
    const rows: number[] = [];
    for (const [i, id] of ids.entries()) {
      const l = m.decode(tf.tensor2d([[id]], undefined, 'int32'), cache);
      if (i === 2 || i === 5) rows.push(...l.dataSync());
      l.dispose();
    }
    m.disposeCache(cache);
    const expected = [...full.slice(2 * 512, 3 * 512), ...full.slice(5 * 512, 6 * 512)];
    expect(maxAbsDiff(rows, expected)).toBeLessThan(1e-5);
    m.dispose();
  });
});

describe('batched generation', () => {
  test('sequences decoded together give what each gives alone (greedy and seeded sampling), each stopping at its EOS', async () => {
    const m = await loadModel(stories260KBin);
    const prompts = [
      [1, 403, 407],
      [1, 261, 378],
      [1, 403, 407],
    ];
    const greedy = generate(m, prompts, { maxTokens: 40 });
    expect(greedy).toEqual(prompts.map((p) => generate(m, p, { maxTokens: 40 })));
    expect(greedy[0]).toEqual(greedy[2]);
    const sampled = generate(m, prompts, { maxTokens: 40, temperature: 1, topP: 0.9, seed: 7 });
    expect(sampled).toEqual(prompts.map((p, i) => generate(m, p, { maxTokens: 40, temperature: 1, topP: 0.9, seed: 7 + i })));
    const seen: [number, number][] = [];
    const tiny = createLlama({ vocabSize: 8, dim: 8, nLayers: 1, nHeads: 2, hiddenDim: 8, maxSeqLen: 64 }, { seed: 1 });
    const rows = generate(tiny, [[1], [1], [1], [1]], { maxTokens: 60, temperature: 2, seed: 3, onToken: (id, i) => seen.push([id, i]) });
    rows.forEach((r, i) => expect(r).toEqual(generate(tiny, [1], { maxTokens: 60, temperature: 2, seed: 3 + i })));
    expect(seen.length).toBe(rows.reduce((s, r) => s + r.length, 0));
    expect(() => generate(tiny, [[1], [1, 2]])).toThrow(/one length/);
    m.dispose();
    tiny.dispose();
  });
});

describe('wasm backend', () => {
  test('forward and one training gradient agree with the cpu backend', async (ctx) => {
    try {
      await import('@tensorflow/tfjs-backend-wasm');
    } catch {
      console.log('skipped: @tensorflow/tfjs-backend-wasm is not importable');
      ctx.skip();
    }
    const ids = [[1, 403, 407, 261, 378, 432, 383, 286]];
    const run = async (backend: string): Promise<{ logits: Float32Array; grad: Float32Array }> => {
      await tf.setBackend(backend);
      const m = await loadModel(stories260KBin);
      const x = tf.tensor2d(ids, undefined, 'int32');
      const logits = tf.tidy(() => m.forward(x).dataSync() as Float32Array);
      // the embedding gradient goes through the custom scatter gradient (wasm has no UnsortedSegmentSum)
      const emb = m.parameters().get('model.embed_tokens.weight')!;
      const { grads } = tf.variableGrads(() => m.loss(x), [emb]);
      const grad = grads[emb.name]!.dataSync() as Float32Array;
      tf.dispose(grads);
      x.dispose();
      m.dispose();
      return { logits, grad };
    };
    const wasm = await run('wasm');
    const cpu = await run('cpu');
    expect(maxAbsDiff(wasm.logits, cpu.logits)).toBeLessThan(1e-4);
    expect(maxAbsDiff(wasm.grad, cpu.grad)).toBeLessThan(1e-5);
  });
});
