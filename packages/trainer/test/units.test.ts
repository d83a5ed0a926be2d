import { join } from 'node:path';
import { writeFileSync, readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { createLlama, loadModel, readSafetensorsIndex, readTensors } from '@topiary/model-llama';
import {
  AdamW,
  EmaAccumulator,
  gradientNorm,
  loadLatestCheckpoint,
  scoreLiveGroups,
  slimWithState,
  SumAccumulator,
  writeCheckpoint,
} from '../src/index.js';
import { groupImportance, PruneTracker, selectGroups as selectForRatio, taylorFisher } from '@topiary/structured-core';
import { taylorVector } from '@topiary/saliency-taylor';
import { repoRoot, tempDir, useCpu } from './helpers.js';

beforeAll(useCpu);

function lossAndGrads(model: ReturnType<typeof createLlama>, ids: tf.Tensor2D): { loss: number; grads: Map<string, tf.Tensor> } {
  const names = [...model.parameters().keys()];
  const vars = names.map((n) => model.parameters().get(n)!);
  const { value, grads } = tf.variableGrads(() => model.loss(ids), vars);
  const out = new Map<string, tf.Tensor>();
  names.forEach((n, i) => out.set(n, grads[vars[i]!.name]!));
  const loss = value.dataSync()[0]!;
  value.dispose();
  return { loss, grads: out };
}

describe('AdamW', () => {
  it('matches PyTorch: 3 steps with clipping and decoupled decay (reference from bench/reference/model_reference.py)', async () => {
    const dir = join(repoRoot, 'packages', 'model-llama', 'test', 'fixtures', 'tiny-untied');
    const ref = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as {
      ids: number[];
      adamw: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; clipNorm: number; steps: { loss: number; gradNorm: number }[] };
    };
    const model = await loadModel(dir);
    const a = ref.adamw;
    const opt = new AdamW({ beta1: a.beta1, beta2: a.beta2, eps: a.eps, weightDecay: a.weightDecay, clipNorm: a.clipNorm });
    const ids = tf.tensor2d([ref.ids], [1, ref.ids.length], 'int32');
    for (const expected of a.steps) {
      const { loss, grads } = lossAndGrads(model, ids);
      const { norm } = gradientNorm(grads);
      expect(loss).toBeCloseTo(expected.loss, 4);
      expect(Math.abs(norm - expected.gradNorm) / expected.gradNorm).toBeLessThan(1e-4);
      opt.step(model.parameters(), grads, a.lr, norm);
      for (const g of grads.values()) g.dispose();
    }
    const after = readTensors(readSafetensorsIndex(join(dir, 'after-adamw.safetensors')), model.parameters().keys());
    let worst = 0;
    let sum = 0;
    let n = 0;
    for (const [name, want] of after) {
      const got = model.readWeight(name);
      for (let i = 0; i < want.length; i++) {
        const d = Math.abs(got[i]! - want[i]!);
        worst = Math.max(worst, d);
        sum += d;
        n++;
      }
    }
    console.log(`AdamW vs torch after 3 steps (lr 1e-2): max |Δw| ${worst.toExponential(2)}, mean ${(sum / n).toExponential(2)}`);
    // Adam divides by √v: where a gradient is ~0 a float32 rounding difference moves a weight by a visible
    // fraction of lr, so the bound is loose for the worst element and tight on average.
    expect(worst).toBeLessThan(1e-4);
    expect(sum / n).toBeLessThan(2e-7);
    opt.dispose();
    model.dispose();
  });
});

describe('accumulators', () => {
  it('ema: closed form, first observation taken as is; remap follows slimmed ids', () => {
    const acc = new EmaAccumulator(0.8);
    acc.fold(new Map([['a', 10]]));
    acc.fold(new Map([['a', 0], ['b', 5]]));
    acc.fold(new Map([['a', 5]]));
    expect(acc.value('a')).toBeCloseTo(0.8 * (0.8 * 10) + 0.2 * 5, 12);
    expect(acc.value('b')).toBe(5);
    acc.remap(new Map([['b', 'a']]));
    expect(acc.value('a')).toBe(5);
    expect(acc.value('b')).toBeUndefined();
    const copy = new EmaAccumulator(0.8);
    copy.load(JSON.parse(JSON.stringify(acc.toJSON())));
    expect(copy.value('a')).toBe(5);
    expect(() => new SumAccumulator().load(acc.toJSON())).toThrow(/not a "sum" state/);
  });

  it('sum adds', () => {
    const acc = new SumAccumulator();
    for (const x of [1, 2, 3.5]) acc.fold(new Map([['g', x]]));
    expect(acc.value('g')).toBe(6.5);
  });
});

describe('group saliency and global selection', () => {
  it('taylor-fisher equals |−Σwg + ½Σ(wg)²| summed element by element over each group', () => {
    const model = createLlama({ vocabSize: 40, dim: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, hiddenDim: 24, maxSeqLen: 16 }, { seed: 3 });
    const ids = tf.tensor2d([[1, 5, 9, 33, 2, 17, 20, 11]], [1, 8], 'int32');
    const { grads } = lossAndGrads(model, ids);
    const kinds = ['head', 'kv-group', 'ffn-channel', 'hidden-channel'] as const;
    const groups = model.groups([...kinds]);
    const scores = scoreLiveGroups(new PruneTracker(model), [...kinds], taylorFisher, 'sum', grads);
    const host = new Map([...model.parameters()].map(([n, v]) => [n, { w: v.dataSync(), g: grads.get(n)!.dataSync(), shape: v.shape }]));
    for (const g of [groups[0]!, groups.find((x) => x.kind === 'kv-group')!, groups.find((x) => x.kind === 'ffn-channel')!, groups.find((x) => x.kind === 'hidden-channel')!]) {
      let s1 = 0;
      let s2 = 0;
      for (const m of g.members) {
        const { w, g: gr, shape } = host.get(m.param)!;
        const cols = shape.length > 1 ? shape[1]! : 1;
        const rows = shape[0]!;
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < cols; c++) {
            const inGroup = shape.length === 1 ? m.indices.includes(r) : m.axis === 0 ? m.indices.includes(r) : m.indices.includes(c);
            if (!inGroup) continue;
            const wg = w[r * cols + c]! * gr[r * cols + c]!;
            s1 += wg;
            s2 += wg * wg;
          }
        }
      }
      const expected = Math.abs(-s1 + 0.5 * s2);
      expect(Math.abs(scores.get(g.id)! - expected)).toBeLessThan(1e-6 * Math.max(1, expected));
    }
    for (const t of grads.values()) t.dispose();
    // a kv head whose last query head goes is counted as removed too, as slim() drops it
    model.maskGroups(['layers.1.head.2', 'layers.1.head.3']);
    const tracker = new PruneTracker(model);
    const slim = model.slim();
    expect(tracker.effectiveCount()).toBe(slim.parameterCount());
    slim.dispose();
    model.dispose();
  });

  it('per-param ranking takes the cheapest loss per parameter across kinds and counts overlaps once', () => {
    const model = createLlama({ vocabSize: 40, dim: 16, nLayers: 2, nHeads: 4, hiddenDim: 24, maxSeqLen: 16 }, { seed: 1 });
    const tracker = new PruneTracker(model);
    const total = tracker.effectiveCount();
    expect(total).toBe(model.parameterCount());
    // a hidden channel scores 5× an FFN channel in raw |ΔL| but is >5× bigger: per parameter it is cheaper
    const hidden = tracker.allGroups(['hidden-channel'])[0]!;
    const ffn = tracker.allGroups(['ffn-channel'])[0]!;
    const score = (id: string) => (id === hidden.id ? 5 : id.includes('.ffn.') ? 1 : 100);
    expect(hidden.size / ffn.size).toBeGreaterThan(5);
    const { ids, removed } = tracker.select({ kinds: ['head', 'ffn-channel', 'hidden-channel'], normalise: 'per-param', minKeep: { heads: 1, ffn: 1, hidden: 4 }, need: 1, importance: score });
    expect(ids).toEqual([hidden.id]);
    expect(removed).toBe(hidden.size);
    // the next FFN channel overlaps the removed hidden channel: only its other elements count
    const next = tracker.select({ kinds: ['ffn-channel'], normalise: 'none', minKeep: { heads: 1, ffn: 1, hidden: 4 }, need: 1, importance: score });
    expect(next.removed).toBe(ffn.size - 3);
    expect(tracker.effectiveCount()).toBe(total - hidden.size - (ffn.size - 3));
    model.maskGroups([...ids, ...next.ids]);
    const slim = model.slim();
    expect(slim.parameterCount()).toBe(tracker.effectiveCount());
    slim.dispose();
    model.dispose();
  });

  it('the trainer and LLM-Pruner score and choose the same groups from the same gradients (taylor-vector: Σ|Σ_slice w·g|)', () => {
    const model = createLlama({ vocabSize: 40, dim: 16, nLayers: 3, nHeads: 4, nKvHeads: 2, hiddenDim: 24, maxSeqLen: 16 }, { seed: 11 });
    const ids = tf.tensor2d([[1, 5, 9, 33, 2, 17, 20, 11, 3, 8]], [1, 10], 'int32');
    const { grads } = lossAndGrads(model, ids);
    const kinds = ['kv-group', 'ffn-channel'] as const;
    // the trainer's path: one step's gradients → group importances
    const trainer = scoreLiveGroups(new PruneTracker(model), [...kinds], taylorVector, 'sum', grads);
    // LLM-Pruner's path: element scores from the same gradients → structured-core's groupImportance
    const groups = model.groups([...kinds]);
    const scores = new Map<string, Float32Array>();
    const shapes = new Map<string, readonly number[]>();
    for (const [name, g] of grads) {
      const w = model.readWeight(name);
      const gr = g.dataSync() as Float32Array;
      scores.set(name, taylorVector.score({ param: name, rows: g.shape[0]!, cols: g.shape[1] ?? 1, weight: w, grad: gr }));
      shapes.set(name, g.shape);
    }
    const pruner = groupImportance(groups, { scores, shapes }, 'vector', 'sum');
    groups.forEach((g, i) => expect(trainer.get(g.id)).toBe(pruner[i]));
    // and the level is honoured: a member's |Σ| — not the signed Σ over the group the old trainer ranked by
    const signedSum = (id: string): number => {
      const g = groups.find((x) => x.id === id)!;
      let s = 0;
      for (const m of g.members) {
        const w = model.readWeight(m.param);
        const gr = grads.get(m.param)!.dataSync();
        const cols = grads.get(m.param)!.shape[1] ?? 1;
        for (let e = 0; e < w.length; e++) if (m.axis === 0 ? m.indices.includes(Math.floor(e / cols)) : m.indices.includes(e % cols)) s += w[e]! * gr[e]!;
      }
      return s;
    };
    expect(groups.some((g) => Math.abs(trainer.get(g.id)! - signedSum(g.id)) > 1e-6)).toBe(true);
    for (const v of trainer.values()) expect(v).toBeGreaterThanOrEqual(0);
    // global selection: the same candidates, importances and target give the same removals
    const total = model.parameterCount();
    const range = { start: 0, end: 3 };
    const llm = selectForRatio({ candidates: groups.map((group, i) => ({ group, importance: pruner[i]! })), totalParameters: total, ratio: 0.2, ranking: 'global', range });
    const tracker = new PruneTracker(model);
    const mine = tracker.select({ kinds: [...kinds], normalise: 'per-param', minKeep: { heads: 1, ffn: 1, hidden: 1 }, need: llm.targetParameters, importance: (id) => trainer.get(id) });
    expect(mine.ids).toEqual(llm.remove);
    for (const t of grads.values()) t.dispose();
    model.dispose();
  });

  it('slimWithState: one AdamW step on the slim model equals the step on the masked model', () => {
    const cfg = { vocabSize: 40, dim: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, hiddenDim: 24, maxSeqLen: 16 };
    const ids = tf.tensor2d([[1, 5, 9, 33, 2, 17, 20, 11]], [1, 8], 'int32');
    const options = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clipNorm: 0 };
    const model = createLlama(cfg, { seed: 7 });
    const opt = new AdamW(options);
    const step = (m: typeof model, o: AdamW, keep?: Map<string, tf.Tensor>): number => {
      const { loss, grads } = lossAndGrads(m, ids);
      if (keep) for (const [n, k] of keep) grads.set(n, tf.mul(grads.get(n)!, k));
      o.step(m.parameters(), grads, 1e-2, gradientNorm(grads).norm);
      m.applyMasks();
      for (const g of grads.values()) g.dispose();
      return loss;
    };
    step(model, opt);
    // (a layer left with one kv head read by several query heads currently fails in model-llama's attention
    // gradient — tf.split into one piece — so this keeps two kv heads per layer)
    const masked = ['layers.0.head.1', 'layers.1.head.2', 'layers.0.ffn.3', 'layers.1.ffn.20', 'hidden.5'];
    model.maskGroups(masked);
    const tracker = new PruneTracker(model);
    const keep = tracker.keepTensors();
    opt.maskState(keep);
    const twin = model.clone();
    const twinOpt = new AdamW(options, opt.exportState());
    const { model: slim, opt: slimOpt, mapping } = slimWithState(twin, twinOpt, options);
    expect(mapping.get('layers.0.head.2')).toBe('layers.0.head.1');
    expect(mapping.get('hidden.6')).toBe('hidden.5');
    expect(slim.parameterCount()).toBe(tracker.effectiveCount());
    const lossMasked = step(model, opt, keep);
    const lossSlim = step(slim as typeof model, slimOpt);
    expect(Math.abs(lossMasked - lossSlim)).toBeLessThan(1e-5);
    // after one more step both models still compute the same function
    const after = (m: typeof model) => tf.tidy(() => m.loss(ids).dataSync()[0]!);
    expect(Math.abs(after(model) - after(slim as typeof model))).toBeLessThan(1e-5);
  });
});

describe('checkpoints', () => {
  it('a corrupt newest checkpoint is skipped for the previous complete one', () => {
    const root = join(tempDir(), 'checkpoints');
    const data = (step: number) => ({
      step,
      params: [{ name: 'w', shape: [2, 2] }],
      weights: new Map([['w', Float32Array.from([1, 2, 3, step])]]),
      m: new Map([['w', new Float32Array(4)]]),
      v: new Map([['w', new Float32Array(4).fill(0.5)]]),
      state: { note: 'x' },
    });
    writeCheckpoint(root, data(4));
    const p8 = writeCheckpoint(root, data(8));
    expect(loadLatestCheckpoint(root)!.step).toBe(8);
    const bytes = readFileSync(join(p8, 'weights.bin'));
    bytes[3] ^= 0xff;
    writeFileSync(join(p8, 'weights.bin'), bytes);
    const skipped: string[] = [];
    const ck = loadLatestCheckpoint(root, (_p, reason) => skipped.push(reason))!;
    expect(ck.step).toBe(4);
    expect([...ck.weights.get('w')!]).toEqual([1, 2, 3, 4]);
    expect([...ck.v.get('w')!]).toEqual([0.5, 0.5, 0.5, 0.5]);
    expect(skipped[0]).toMatch(/sha256/);
  });
});
