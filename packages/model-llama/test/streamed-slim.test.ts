/**
 * SlimmableStream: a streamed model masked by group and slimmed by plan (tensors cut from the checkpoint when read)
 * holds exactly the in-memory slim model's config and weights — heads, kv groups, FFN channels, hidden channels and
 * whole blocks, biases (Qwen2) included, and a slim model slimmed again (plans composed).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLlama, loadModel, parameterShapes, SlimmableStream, writeHf, type LlamaConfig, type LlamaModel } from '../src/index.js';

const work = mkdtempSync(join(tmpdir(), 'topiary-slim-stream-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
beforeAll(async () => {
  await tf.setBackend('cpu');
});

function weights(model: LlamaModel): Map<string, Float32Array> {
  return new Map([...parameterShapes(model.config as LlamaConfig).keys()].map((n) => [n, model.readWeight(n).slice()]));
}

function expectSame(a: LlamaModel, b: LlamaModel): void {
  expect(b.config).toEqual(a.config);
  const wa = weights(a);
  const wb = weights(b);
  expect([...wb.keys()]).toEqual([...wa.keys()]);
  for (const [n, v] of wa) expect(Buffer.from(wb.get(n)!.buffer).equals(Buffer.from(v.buffer)), n).toBe(true);
}

describe('SlimmableStream', () => {
  for (const [name, bias] of [['GQA', false], ['GQA with q/k/v biases (Qwen2)', true]] as const) {
    it(`${name}: masked and slimmed twice = the in-memory slim model, value for value`, async () => {
      const dir = join(work, name.replace(/\W/g, '-'));
      const m = createLlama({ vocabSize: 48, dim: 16, nLayers: 4, nHeads: 4, nKvHeads: 2, hiddenDim: 24, maxSeqLen: 16, ...(bias ? { family: 'qwen2' as const, attentionBias: true } : {}) }, { seed: 9 });
      writeHf(dir, m.config, weights(m), { dtype: 'float32', maxShardBytes: 20_000 });
      m.dispose();
      const memory = await loadModel(dir);
      const streamed = SlimmableStream.open(dir);
      const first = ['layers.1.head.2', 'layers.0.kv.1', 'layers.2.ffn.5', 'layers.2.ffn.7', 'hidden.3', 'layers.3'].filter((id) => memory.groups().some((g) => g.id === id));
      expect(first.length).toBeGreaterThan(4);
      memory.maskGroups(first);
      streamed.maskGroups(first);
      expect(streamed.maskedGroups()).toEqual(first);
      expect([...streamed.slimMapping()]).toEqual([...memory.slimMapping()]);
      const a = memory.slim();
      const b = streamed.slim();
      expect(b.streamed).toBe(true);
      expectSame(a, b);
      const second = ['layers.0.ffn.3', 'hidden.0', 'layers.1'].filter((id) => a.groups().some((g) => g.id === id));
      a.maskGroups(second);
      b.maskGroups(second);
      const a2 = a.slim();
      const b2 = b.slim();
      expectSame(a2, b2);
      // the slim view computes what the in-memory slim model computes
      const ids = tf.tensor2d([[1, 4, 9, 33, 2, 17, 20, 11]], [1, 8], 'int32');
      const la = tf.tidy(() => a2.forward(ids).dataSync() as Float32Array);
      const lb = tf.tidy(() => b2.forward(ids).dataSync() as Float32Array);
      expect(Array.from(lb)).toEqual(Array.from(la));
      ids.dispose();
      for (const x of [memory, streamed, a, b, a2, b2]) x.dispose();
    });
  }

  it('an unknown group id is a typed error', () => {
    const dir = join(work, 'GQA');
    const streamed = SlimmableStream.open(dir);
    expect(() => streamed.maskGroups(['layers.9.head.0'])).toThrow(expect.objectContaining({ code: 'E_USAGE', where: 'groupIds' }));
    streamed.dispose();
  });
});
