/** No tensor leaks: 50 training steps and 50 evaluations keep the tensor count and tfjs bytes exactly flat; so does
 * kv-cache decoding.
 * (The 1000-step version with RSS lives in test/stress/perf-leaks.test.ts, outside the normal suite.) */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { AdamW, createLlama, trainStep } from '../src/index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('no tensor leaks', () => {
  test('50 AdamW steps (with masks) and 50 loss evaluations leave the tensor count flat', () => {
    const model = createLlama({ vocabSize: 32, dim: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, hiddenDim: 24, maxSeqLen: 16 }, { seed: 5 });
    model.maskGroups([model.groups(['ffn-channel'])[0]!.id]);
    const opt = new AdamW({ lr: 1e-3 });
    const ids = tf.tensor2d(Int32Array.from({ length: 2 * 9 }, (_, i) => (i * 5) % 32), [2, 9], 'int32');
    trainStep(model, opt, ids); // creates the optimiser state
    const start = tf.memory();
    const counts: number[] = [];
    for (let i = 0; i < 50; i++) {
      trainStep(model, opt, ids);
      const l = model.loss(ids);
      l.dispose();
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts)).toEqual(new Set([start.numTensors]));
    expect(tf.memory().numBytes).toBe(start.numBytes);
    ids.dispose();
    opt.dispose();
    model.dispose();
  });

  test('kv-cache decoding (one prompt, then 20 single tokens) and disposeCache leave the tensor count flat', () => {
    const model = createLlama({ vocabSize: 32, dim: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, hiddenDim: 24, maxSeqLen: 32 }, { seed: 6 });
    const start = tf.memory();
    const cache = model.newCache();
    const counts: number[] = [];
    const prompt = tf.tensor2d([[1, 5, 9, 3]], undefined, 'int32');
    model.decode(prompt, cache).dispose();
    prompt.dispose();
    for (let i = 0; i < 20; i++) {
      const x = tf.tensor2d([[(i * 7) % 32]], undefined, 'int32');
      model.decode(x, cache).dispose();
      x.dispose();
      counts.push(tf.memory().numTensors);
    }
    // while decoding: exactly the cache (keys and values per block), replaced, never accumulated
    expect(new Set(counts)).toEqual(new Set([start.numTensors + 2 * 2]));
    model.disposeCache(cache);
    expect(tf.memory().numTensors).toBe(start.numTensors);
    expect(tf.memory().numBytes).toBe(start.numBytes);
    model.dispose();
  });
});
