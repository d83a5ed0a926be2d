/** Autodiff and the optimiser against PyTorch: gradients, then three AdamW steps with clipping (fixtures from bench/reference). */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { SeededRandom } from '@topiary/linalg';
import { AdamW, createLlama, crossEntropy, linear2d, linearCrossEntropy, loadModel, lossAndGrads, readSafetensorsIndex, readTensors, trainStep } from '../src/index.js';
import { fixtures, maxAbsDiff, readJson } from './paths.js';

interface Ref {
  ids: number[];
  loss: number;
  adamw: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; clipNorm: number; steps: { loss: number; gradNorm: number }[] };
}
const dir = `${fixtures}/tiny-untied`;
const ref = readJson<Ref>(`${dir}/reference.json`);

function readAll(file: string): Map<string, Float32Array> {
  const idx = readSafetensorsIndex(file);
  return readTensors(idx, idx.entries.keys());
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('training on the tiny untied model', () => {
  test('gradients of the loss equal torch autograd for every parameter', async () => {
    const model = await loadModel(dir);
    const expected = readAll(`${dir}/grads.safetensors`);
    const ids = tf.tensor2d([ref.ids], undefined, 'int32');
    const { loss, grads } = lossAndGrads(model, ids);
    expect(Math.abs(loss - ref.loss)).toBeLessThan(1e-5);
    expect([...grads.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [name, g] of grads) {
      const e = expected.get(name)!;
      const scale = Math.max(...e.map(Math.abs));
      expect(maxAbsDiff(g.dataSync(), e) / scale, name).toBeLessThan(1e-4);
    }
    for (const g of grads.values()) g.dispose();
    model.dispose();
  });

  test('three AdamW steps (clip 1, decay skips norms) match torch: loss, grad norm, parameters', async () => {
    const model = await loadModel(dir);
    const { lr, beta1, beta2, eps, weightDecay, clipNorm, steps } = ref.adamw;
    const opt = new AdamW({ lr, beta1, beta2, eps, weightDecay, clipNorm });
    const ids = tf.tensor2d([ref.ids], undefined, 'int32');
    for (const s of steps) {
      const r = trainStep(model, opt, ids);
      expect(Math.abs(r.loss - s.loss)).toBeLessThan(1e-4);
      expect(Math.abs(r.gradNorm - s.gradNorm) / s.gradNorm).toBeLessThan(1e-4);
    }
    const after = readAll(`${dir}/after-adamw.safetensors`);
    for (const [name, w] of after) expect(maxAbsDiff(model.readWeight(name), w), name).toBeLessThan(1e-4); // lr 1e-2: float-level gradient differences move Adam updates by ~1e-5
    expect(opt.decays('model.layers.0.input_layernorm.weight')).toBe(false);
    expect(opt.decays('model.norm.weight')).toBe(false);
    expect(new AdamW({ lr: 1, decayEmbeddings: false }).decays('model.embed_tokens.weight')).toBe(false);
    opt.dispose();
    model.dispose();
  });

  test('masked elements and groups stay exactly zero through training steps', () => {
    const model = createLlama({ vocabSize: 40, dim: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, hiddenDim: 24 }, { seed: 3 });
    const q = 'model.layers.0.self_attn.q_proj.weight';
    const keep = new Uint8Array(16 * 16).map((_, i) => (i % 3 === 0 ? 0 : 1));
    model.setElementMask(q, keep);
    model.maskGroups(['layers.1.ffn.5', 'hidden.7', 'layers.0.head.2']);
    const opt = new AdamW({ lr: 0.05, weightDecay: 0 });
    const ids = tf.tensor2d([[1, 5, 9, 3, 22, 7, 7, 30]], undefined, 'int32');
    const losses: number[] = [];
    for (let i = 0; i < 5; i++) losses.push(trainStep(model, opt, ids).loss);
    expect(losses[4]).toBeLessThan(losses[0]!); // it does learn
    const wq = model.readWeight(q);
    for (let i = 0; i < keep.length; i++) if (!keep[i]) expect(Math.abs(wq[i])).toBe(0);
    const up = model.readWeight('model.layers.1.mlp.up_proj.weight');
    for (let c = 0; c < 16; c++) expect(Math.abs(up[5 * 16 + c])).toBe(0);
    const emb = model.readWeight('model.embed_tokens.weight');
    for (let v = 0; v < 40; v++) expect(Math.abs(emb[v * 16 + 7])).toBe(0);
    const o = model.readWeight('model.layers.0.self_attn.o_proj.weight');
    for (let r = 0; r < 16; r++) for (let c = 8; c < 12; c++) expect(Math.abs(o[r * 16 + c])).toBe(0);
    opt.dispose();
    model.dispose();
  });
});

describe('chunked linear cross-entropy', () => {
  test('several row chunks give the loss and gradients of the whole-logits cross-entropy', () => {
    const rng = new SeededRandom(5);
    const rand = (n: number) => Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
    const h = tf.tensor2d(rand(37 * 16), [37, 16]);
    const w = tf.variable(tf.tensor2d(rand(50 * 16), [50, 16]));
    const t = tf.tensor1d(Array.from({ length: 37 }, (_, i) => (i * 13) % 50), 'int32');
    const whole = tf.variableGrads(() => crossEntropy(linear2d(h, w), t), [w]);
    // 120 elements per chunk = 2 rows of a 50-word vocabulary: 19 chunks
    const chunked = tf.variableGrads(() => linearCrossEntropy(h, w, t, 120), [w]);
    expect(chunked.value.dataSync()[0]).toBeCloseTo(whole.value.dataSync()[0]!, 5);
    const gw = chunked.grads[w.name]!.dataSync();
    const gw0 = whole.grads[w.name]!.dataSync();
    expect(maxAbsDiff(gw, gw0)).toBeLessThan(1e-6);
    const dh = tf.grad((x: tf.Tensor) => linearCrossEntropy(x as tf.Tensor2D, w, t, 120))(h).dataSync();
    const dh0 = tf.grad((x: tf.Tensor) => crossEntropy(linear2d(x as tf.Tensor2D, w), t))(h).dataSync();
    expect(maxAbsDiff(dh, dh0)).toBeLessThan(1e-6);
    tf.dispose([h, w, t, whole.value, chunked.value, ...Object.values(whole.grads), ...Object.values(chunked.grads)]);
  });
});
