/**
 * The per-block backward (forEachBlockGradient: stored block inputs, head gradient by position chunks, the model's
 * training block recomputed under a tape per block) against tfjs autodiff of the whole model's loss
 * (`tf.variableGrads(model.loss)`). Not bit-identical by construction — the whole-model loss runs the fused
 * linear cross-entropy at the head, the per-block pass a log-softmax over `model.head`'s logits, so the head
 * gradient rounds differently — but equal to float32 rounding.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { createLlama } from '@topiary/model-llama';
import { collectGradients, forEachBlockGradient } from '../src/index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function windows(n: number, len: number, vocab: number): Int32Array[] {
  return Array.from({ length: n }, (_, i) => Int32Array.from({ length: len }, (_, t) => (i * 31 + t * 7 + ((i * t) % 5)) % vocab));
}

describe('gradients block by block', () => {
  it('equal the whole-model tape gradients of the mean loss (GQA, 3 blocks, one batch)', async () => {
    const model = createLlama({ vocabSize: 64, dim: 16, nLayers: 3, nHeads: 4, nKvHeads: 2, hiddenDim: 24, maxSeqLen: 32 }, { seed: 7 });
    const ws = windows(4, 20, 64);
    const ids = tf.tensor2d(Int32Array.from(ws.flatMap((w) => [...w])), [4, 20], 'int32');
    const named = [...model.parameters()].filter(([n]) => n.startsWith('model.layers.'));
    const { value, grads } = tf.variableGrads(() => model.loss(ids), named.map(([, v]) => v));
    const blockwise = await collectGradients(model, ws, { batchSize: 4 });
    expect(blockwise.size).toBe(named.length);
    for (const [name, v] of named) {
      const want = grads[v.name]!.dataSync() as Float32Array;
      const got = blockwise.get(name)!.grad;
      const scale = want.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
      expect(worst, name).toBeLessThanOrEqual(1e-5 * scale + 1e-9);
    }
    tf.dispose([value, ids, ...Object.values(grads)]);
    model.dispose();
  });

  it('visits blocks L−1 down to `lowest`, each once, and returns the mean loss', async () => {
    const model = createLlama({ vocabSize: 64, dim: 16, nLayers: 3, nHeads: 2, hiddenDim: 24, maxSeqLen: 32 }, { seed: 2 });
    const ws = windows(5, 12, 64);
    const seen: number[] = [];
    const loss = await forEachBlockGradient(model, ws, { batchSize: 2, lowest: 1 }, (layer) => {
      seen.push(layer);
    });
    expect(seen).toEqual([2, 1]);
    const ids = tf.tensor2d(Int32Array.from(ws.flatMap((w) => [...w])), [5, 12], 'int32');
    const whole = tf.tidy(() => model.loss(ids).dataSync()[0]!);
    expect(Math.abs(loss - whole)).toBeLessThan(1e-5 * whole);
    ids.dispose();
    model.dispose();
  });

  it('bad input is a typed error naming the data', async () => {
    const model = createLlama({ vocabSize: 64, dim: 16, nLayers: 1, nHeads: 2, hiddenDim: 24, maxSeqLen: 32 }, { seed: 2 });
    await expect(collectGradients(model, [])).rejects.toMatchObject({ code: 'E_DATA', where: 'calibration' });
    await expect(collectGradients(model, [Int32Array.from([1])])).rejects.toMatchObject({ code: 'E_USAGE' });
    model.dispose();
  });
});
