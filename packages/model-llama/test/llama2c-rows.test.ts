/**
 * A llama2.c checkpoint read by rows (what the block-by-block writer does) gives the rows of the whole-tensor read,
 * for every tensor (q and k included: their rows are permuted within heads on the way in); a streamed llama2.c
 * model saves to the same weights as the in-memory one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, openWeights, parameterShapes, saveModel } from '../src/index.js';
import { stories260KBin as STORIES_BIN } from './paths.js';

let work: string;

describe('llama2.c checkpoints read by rows', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
    work = mkdtempSync(join(tmpdir(), 'topiary-l2c-rows-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('every matrix, any row range, equals the rows of the whole read', () => {
    const source = openWeights(STORIES_BIN);
    try {
      for (const [name, shape] of parameterShapes(source.config)) {
        if (shape.length !== 2) continue;
        const [rows, cols] = shape as [number, number];
        const whole = source.read(name);
        const start = Math.floor(rows / 3);
        const count = Math.max(1, Math.floor(rows / 2) - 1);
        expect([...source.readRows(name, start, count)], name).toEqual([...whole.subarray(start * cols, (start + count) * cols)]);
      }
      expect(() => source.readRows('model.layers.0.mlp.up_proj.weight', 0, 10_000)).toThrow(/readRows: rows \[0, 10000\)/);
    } finally {
      source.close();
    }
  });

  it('a streamed llama2.c model saves the weights of the in-memory one', async () => {
    const streamed = await loadModel(STORIES_BIN, { residency: 'block' });
    await saveModel(streamed, join(work, 'out'));
    streamed.dispose();
    const saved = openWeights(join(work, 'out'));
    const original = openWeights(STORIES_BIN);
    try {
      for (const name of parameterShapes(original.config).keys()) expect([...saved.read(name)], name).toEqual([...original.read(name)]);
    } finally {
      saved.close();
      original.close();
    }
  });
});
