/** The block executor: hidden states in memory or spilled to a file give the same numbers, and passes group batches. */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, test } from 'vitest';
import { TopiaryError } from '@topiary/kernel';
import { createLlama } from '@topiary/model-llama';
import { Activations, passes, type Batch } from '../src/index.js';

const model = createLlama({ vocabSize: 64, dim: 16, nLayers: 3, nHeads: 2, hiddenDim: 24, maxSeqLen: 16 }, { seed: 1 });
const dir = mkdtempSync(join(tmpdir(), 'topiary-acts-'));
afterAll(() => {
  model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const batches: Batch[] = [0, 1, 2, 3].map((k) => ({ ids: Int32Array.from({ length: 2 * 8 }, (_, i) => (i * 7 + k * 5) % 64), b: 2, t: 8 }));

function outputs(acts: Activations): Float32Array[] {
  for (let i = 0; i < model.numBlocks; i++) acts.advance(model, i);
  return batches.map((_, k) => acts.withBatch(k, (h) => h.dataSync() as Float32Array).slice());
}

describe('Activations', () => {
  test('equal the whole forward pass; batches past the budget spill to a file with the same numbers; the file goes on dispose', () => {
    const inMemory = Activations.embed(model, batches);
    const memoryOut = outputs(inMemory);
    expect(inMemory.spilled).toBe(0);
    inMemory.dispose();
    const direct = batches.map(({ ids, b, t }) => tf.tidy(() => {
      let h = model.embed(tf.tensor2d(ids, [b, t], 'int32'));
      for (let i = 0; i < model.numBlocks; i++) h = model.block(i, h);
      return h.dataSync() as Float32Array;
    }));
    memoryOut.forEach((o, k) => expect(o).toEqual(direct[k]));

    const spillDir = join(dir, 'spill');
    const oneBatch = 2 * 8 * 16 * 4;
    const spilled = Activations.embed(model, batches, { budget: oneBatch, spillDir });
    expect(spilled.spilled).toBe(3);
    expect(spilled.bytes).toBe(oneBatch);
    expect(readdirSync(spillDir)).toHaveLength(1);
    const spilledOut = outputs(spilled);
    spilledOut.forEach((o, k) => expect(o).toEqual(memoryOut[k]));
    spilled.dispose();
    expect(readdirSync(spillDir)).toHaveLength(0);
  });

  test('visit sees each block input and output; a spill folder that cannot be made is E_IO naming it', () => {
    const acts = Activations.embed(model, batches.slice(0, 2));
    const seen: number[] = [];
    acts.advance(model, 0, (k, input, output) => {
      expect(input.shape).toEqual(output.shape);
      seen.push(k);
    });
    expect(seen).toEqual([0, 1]);
    acts.dispose();
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    let error: unknown;
    try {
      Activations.embed(model, batches, { budget: 0, spillDir: join(file, 'sub') });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TopiaryError);
    expect((error as TopiaryError).code).toBe('E_IO');
    expect((error as TopiaryError).message + String((error as TopiaryError).file ?? (error as TopiaryError).where)).toContain('a-file');
    expect(existsSync(join(file, 'sub'))).toBe(false);
  });
});

describe('passes', () => {
  test('streamed: as many batches as fit the budget (at least one); in memory: one per pass', () => {
    expect(passes(10, () => 4e6, { streamed: true, budget: 16e6 })).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    expect(passes(3, () => 40e6, { streamed: true, budget: 16e6 })).toEqual([[0], [1], [2]]);
    expect(passes(3, () => 1, { streamed: false })).toEqual([[0], [1], [2]]);
  });
});
