// Runs in a module registry of its own (vitest isolates test files): tfjs-core is loaded with no backend package,
// as a library user who imports @topiary/model-llama and forgets to choose a backend would have it.
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { TopiaryError } from '@topiary/kernel';
import { createLlama } from '../src/index.js';

describe('no tensor backend registered', () => {
  it('making a model says so (E_BACKEND naming the first weight, with the fix), not tfjs\'s internal error', () => {
    expect(Object.keys(tf.engine().registryFactory)).toEqual([]);
    let error: unknown;
    try {
      createLlama({ dim: 16, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: 32, maxSeqLen: 16, hiddenDim: 32 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TopiaryError);
    const t = error as TopiaryError;
    expect(t.code).toBe('E_BACKEND');
    expect(t.message).toMatch(/no tensor backend is ready/);
    expect(t.where).toBe('model.embed_tokens.weight');
    expect(t.hint).toMatch(/activateBackend/);
  });
});
