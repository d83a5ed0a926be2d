/**
 * createLlama's seeded weights: drawn as each tensor is made (no host copy of the whole model first), they are the
 * numbers of one mulberry32 stream drawn in parameter order — Box–Muller pairs, the o/down matrices at std/√(2·layers),
 * norm weights 1, biases 0 — checked here against that procedure written out, tensor by tensor, bit for bit.
 */
import * as tf from '@tensorflow/tfjs';
import { SeededRandom } from '@topiary/linalg';
import { beforeAll, describe, expect, it } from 'vitest';
import { createLlama, parameterShapes, type CreateConfig } from '../src/index.js';

/** The weights drawn in order from one stream, as createLlama documents them. */
function drawnInOrder(names: [string, number[]][], seed: number, std: number, layers: number): Map<string, Float32Array> {
  const rng = new SeededRandom(seed);
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of names) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (name.endsWith('.bias')) out.set(name, new Float32Array(n));
    else if (shape.length === 1) out.set(name, new Float32Array(n).fill(1));
    else {
      const s = name.endsWith('o_proj.weight') || name.endsWith('down_proj.weight') ? std / Math.sqrt(2 * layers) : std;
      const w = new Float32Array(n);
      for (let i = 0; i < n; i += 2) {
        const u1 = Math.max(rng.next(), 1e-12);
        const u2 = rng.next();
        const r = Math.sqrt(-2 * Math.log(u1)) * s;
        w[i] = r * Math.cos(2 * Math.PI * u2);
        if (i + 1 < n) w[i + 1] = r * Math.sin(2 * Math.PI * u2);
      }
      out.set(name, w);
    }
  }
  return out;
}

describe('createLlama', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('draws each tensor where one in-order stream would have it (biases, untied head, GQA), bit for bit', () => {
    const config: CreateConfig = { vocabSize: 37, dim: 24, nLayers: 3, nHeads: 4, nKvHeads: 2, hiddenDim: 41, maxSeqLen: 16, attentionBias: true, tiedEmbeddings: false };
    const m = createLlama(config, { seed: 11, initStd: 0.05 });
    const shapes = [...parameterShapes(m.config)].map(([n, s]) => [n, [...s]] as [string, number[]]);
    const want = drawnInOrder(shapes, 11, 0.05, m.config.nLayers);
    expect(shapes.length).toBeGreaterThan(20);
    for (const [name] of shapes) expect(Array.from(m.readWeight(name)), name).toEqual(Array.from(want.get(name)!));
    m.dispose();
  });

  it('the default seed and std are those of createLlama(config, { seed: 0, initStd: 0.02 })', () => {
    const config: CreateConfig = { vocabSize: 20, dim: 16, nLayers: 1, nHeads: 2, hiddenDim: 24, maxSeqLen: 8 };
    const a = createLlama(config);
    const b = createLlama(config, { seed: 0, initStd: 0.02 });
    for (const [name] of parameterShapes(a.config)) expect(a.readWeight(name)).toEqual(b.readWeight(name));
    a.dispose();
    b.dispose();
  });
});
