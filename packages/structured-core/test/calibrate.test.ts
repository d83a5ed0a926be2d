import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { createLlama } from '@topiary/model-llama';
import { kindScales } from '../src/index.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('kindScales: each kind on the measured scale', () => {
  it('measures the cheapest groups of each kind alone on a copy, and scales by Σ measured / Σ estimated', () => {
    const model = createLlama({ vocabSize: 40, dim: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, hiddenDim: 24, maxSeqLen: 16 }, { seed: 5 });
    const ids = tf.tensor2d([[1, 5, 9, 33, 2, 17, 20, 11, 3, 8, 30, 4]], [1, 12], 'int32');
    const loss = (m: { loss(x: tf.Tensor2D): tf.Scalar }): number => tf.tidy(() => m.loss(ids).dataSync()[0]!);
    const groups = model.groups(['head', 'ffn-channel', 'hidden-channel']);
    // estimates: increasing with the group's index, so the cheapest per parameter are the first ones of each kind
    const estimate = new Map(groups.map((g) => [g.id, 1e-3 * (g.index + 1) * g.size] as const));
    const before = model.readWeight('model.layers.0.mlp.down_proj.weight');
    const { scales, samples } = kindScales(model, groups, (id) => estimate.get(id), loss, 2);
    // the model itself is untouched
    expect(model.maskedGroups()).toEqual([]);
    expect(model.readWeight('model.layers.0.mlp.down_proj.weight')).toEqual(before);
    for (const kind of ['head', 'ffn-channel', 'hidden-channel'] as const) {
      const mine = samples.filter((s) => s.kind === kind);
      const cheapest = groups.filter((g) => g.kind === kind).sort((a, b) => a.index - b.index); // stable: model order on ties
      expect(mine.map((s) => s.id)).toEqual(cheapest.slice(0, 2).map((g) => g.id));
      let measured = 0;
      let estimated = 0;
      for (const s of mine) {
        // measured independently: the group removed from a fresh copy
        const copy = model.clone();
        copy.maskGroups([s.id]);
        const truth = loss(copy) - loss(model);
        copy.dispose();
        expect(s.measured).toBeCloseTo(truth, 6);
        measured += truth;
        estimated += estimate.get(s.id)!;
      }
      expect(scales.get(kind)).toBeCloseTo(measured > 0 ? measured / estimated : 1, 6);
    }
    model.dispose();
  });
});
