/** Parameter groups, masks, slim() (must compute what the masked model computes), capture hooks. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type LinearLayer } from '@topiary/kernel';
import { SeededRandom } from '@topiary/linalg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { computeGroups, createLlama, groupCounts, loadModel, saveModel, type CreateConfig, type LlamaModel } from '../src/index.js';
import { maxAbsDiff } from './paths.js';
import { logitsOf } from './model-helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'model-llama-groups-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await tf.setBackend('cpu');
});

const ids = [[1, 7, 3, 30, 12, 12, 5, 39, 2, 17], [1, 4, 4, 8, 21, 33, 0, 9, 16, 25]];
const logits = (m: LlamaModel): Float32Array => logitsOf(m, ids);
const base: CreateConfig = { vocabSize: 40, dim: 16, nLayers: 3, nHeads: 4, nKvHeads: 2, hiddenDim: 24, maxSeqLen: 64 };

describe('groups()', () => {
  test('kinds, counts, members and sizes of a GQA model', () => {
    const m = createLlama(base, { seed: 1 });
    const g = m.groups();
    const count = (k: string): number => g.filter((x) => x.kind === k).length;
    expect(count('head')).toBe(3 * 4);
    expect(count('kv-group')).toBe(3 * 2);
    expect(count('ffn-channel')).toBe(3 * 24);
    expect(count('hidden-channel')).toBe(16);
    expect(count('block')).toBe(3);
    const hd = 4;
    const head = g.find((x) => x.id === 'layers.1.head.3')!;
    // GQA: a query head shares its kv head, so only q rows and o columns
    expect(head.members).toEqual([
      { param: 'model.layers.1.self_attn.q_proj.weight', axis: 0, indices: [12, 13, 14, 15] },
      { param: 'model.layers.1.self_attn.o_proj.weight', axis: 1, indices: [12, 13, 14, 15] },
    ]);
    expect(head.size).toBe(2 * hd * 16);
    const kv = g.find((x) => x.id === 'layers.0.kv.1')!;
    expect(kv.size).toBe(2 * hd * 16 + 2 * (2 * hd * 16)); // k, v rows + two query heads
    expect(g.find((x) => x.id === 'layers.2.ffn.0')!.size).toBe(3 * 16);
    // hidden channel: embedding column, 2 norms x 3 layers + final, per layer q/k/v columns (16+8+8), o row (16),
    // gate/up columns (24+24), down row (24); tied, so no lm_head
    expect(g.find((x) => x.id === 'hidden.0')!.size).toBe(40 + 7 + 3 * (32 + 16 + 48 + 24));
    const block = g.find((x) => x.id === 'layers.1')!;
    expect(block.size).toBe((m.parameterCount() - 40 * 16 - 16) / 3); // all but embedding and final norm, per layer
    m.dispose();
  });

  test('multi-head attention: a head group carries its own k/v rows', () => {
    const m = createLlama({ ...base, nKvHeads: 4 }, { seed: 1 });
    const head = m.groups(['head']).find((x) => x.id === 'layers.0.head.1')!;
    expect(head.members.map((x) => x.param.split('.').at(-2))).toEqual(['q_proj', 'o_proj', 'k_proj', 'v_proj']);
    m.dispose();
  });
});

describe('masks and slim()', () => {
  for (const [label, cfg] of [
    ['tied GQA', base],
    ['untied MHA', { ...base, nKvHeads: 4, tiedEmbeddings: false }],
  ] as const) {
    for (const seed of [11, 12, 13]) {
      test(`${label}, random masks (seed ${seed}): slimmed logits equal masked logits`, () => {
        const m = createLlama(cfg, { seed });
        const rng = new SeededRandom(seed);
        const groups = m.groups();
        const chosen = groups.filter((g) => g.kind !== 'block' && rng.next() < 0.3).map((g) => g.id);
        // always remove one block, and never every hidden channel
        chosen.push(`layers.${seed % 3}`);
        const masked = chosen.filter((id) => id !== 'hidden.0');
        const dense = logits(m);
        m.maskGroups(masked);
        expect(new Set(m.maskedGroups())).toEqual(new Set(masked));
        const maskedLogits = logits(m);
        expect(maxAbsDiff(dense, maskedLogits)).toBeGreaterThan(1e-3); // masks changed the function
        const slim = m.slim();
        expect(slim.numBlocks).toBe(2);
        expect(slim.parameterCount()).toBeLessThan(m.parameterCount());
        const diff = maxAbsDiff(logits(slim), maskedLogits);
        console.log(`${label} seed ${seed}: ${masked.length} groups masked, max |slim - masked| = ${diff.toExponential(2)}`);
        expect(diff).toBeLessThan(1e-5);
        // the slimmed model reports its per-layer sizes
        const hidden = masked.filter((id) => id.startsWith('hidden.')).length;
        expect(slim.config.dim).toBe(16 - hidden);
        m.dispose();
        slim.dispose();
      });
    }
  }

  test('uneven query heads per kv group get a headKvMap; save/load keeps the non-uniform shape', async () => {
    const m = createLlama(base, { seed: 5 });
    m.maskGroups(['layers.0.head.0', 'layers.1.ffn.3', 'layers.1.ffn.4', 'layers.2.kv.0', 'hidden.5']);
    const slim = m.slim();
    expect(slim.config.layers).toEqual([
      { nHeads: 3, nKvHeads: 2, hiddenDim: 24, headKvMap: [0, 1, 1] },
      { nHeads: 4, nKvHeads: 2, hiddenDim: 22, headKvMap: [0, 0, 1, 1] },
      { nHeads: 2, nKvHeads: 1, hiddenDim: 24, headKvMap: [0, 0] },
    ]);
    expect(maxAbsDiff(logits(slim), logits(m))).toBeLessThan(1e-5);
    const dir = join(tmp, 'nonuniform');
    await saveModel(slim, dir);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg.topiary_layers).toEqual([
      { num_attention_heads: 3, num_key_value_heads: 2, intermediate_size: 24, head_kv_map: [0, 1, 1] },
      { num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 22, head_kv_map: [0, 0, 1, 1] },
      { num_attention_heads: 2, num_key_value_heads: 1, intermediate_size: 24, head_kv_map: [0, 0] },
    ]);
    const back = await loadModel(dir);
    expect(back.config.layers).toEqual(slim.config.layers);
    expect(maxAbsDiff(logits(back), logits(slim))).toBe(0);
    // slimming again with more masks works on a non-uniform model
    back.maskGroups(['layers.0.head.2', 'layers.2.ffn.0']);
    const again = back.slim();
    expect(again.config.layers![0]).toEqual({ nHeads: 2, nKvHeads: 2, hiddenDim: 24, headKvMap: [0, 1] });
    expect(maxAbsDiff(logits(again), logits(back))).toBeLessThan(1e-5);
    for (const x of [m, slim, back, again]) x.dispose();
  });

  test('uniform slimming stays a plain LlamaForCausalLM config', async () => {
    const m = createLlama(base, { seed: 6 });
    m.maskGroups(['layers.0.kv.1', 'layers.1.kv.1', 'layers.2.kv.1', 'layers.1']);
    const slim = m.slim();
    expect(slim.config.layers).toBeUndefined();
    expect(slim.config).toMatchObject({ nLayers: 2, nHeads: 2, nKvHeads: 1, hiddenDim: 24 });
    const dir = join(tmp, 'uniform');
    await saveModel(slim, dir);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg.topiary_layers).toBeUndefined();
    expect(cfg.num_hidden_layers).toBe(2);
    m.dispose();
    slim.dispose();
  });

  test('element masks carry over to the slimmed model; clone copies masks', () => {
    const m = createLlama(base, { seed: 8 });
    const name = 'model.layers.2.mlp.down_proj.weight';
    const keep = new Uint8Array(16 * 24).map((_, i) => (i % 2 ? 1 : 0));
    m.setElementMask(name, keep);
    m.maskGroups(['layers.0']);
    const c = m.clone();
    expect(maxAbsDiff(logits(c), logits(m))).toBe(0);
    const slim = m.slim();
    const w = slim.readWeight('model.layers.1.mlp.down_proj.weight');
    expect(w.filter((_, i) => i % 2 === 0 && w[i] !== 0).length).toBe(0);
    for (const x of [m, c, slim]) x.dispose();
  });
});

describe('capture hooks', () => {
  test('every linear layer input, [tokens, in]; removed hooks cost nothing', () => {
    const m = createLlama(base, { seed: 2 });
    const seen: { layer: LinearLayer; shape: number[]; sum: number }[] = [];
    const stop = m.capture((layer, input) => seen.push({ layer, shape: input.shape, sum: input.sum().dataSync()[0]! }));
    logits(m);
    expect(seen.length).toBe(3 * 7);
    expect(seen.map((s) => s.layer.kind).slice(0, 7)).toEqual(['q', 'k', 'v', 'o', 'gate', 'up', 'down']);
    for (const s of seen) expect(s.shape).toEqual([20, s.layer.inFeatures]);
    expect(seen.find((s) => s.layer.kind === 'down')!.layer.inFeatures).toBe(24);
    stop();
    logits(m);
    expect(seen.length).toBe(21);
    expect(m.linears(1).map((l) => l.param)[0]).toBe('model.layers.1.self_attn.q_proj.weight');
    m.dispose();
  });

  test('embed / block / head pieces compose to forward', () => {
    const m = createLlama(base, { seed: 4 });
    const out = tf.tidy(() => {
      let h = m.embed(tf.tensor2d(ids, undefined, 'int32'));
      for (let i = 0; i < m.numBlocks; i++) h = m.block(i, h);
      return m.head(h).dataSync() as Float32Array;
    });
    expect(maxAbsDiff(out, logits(m))).toBe(0);
    m.dispose();
  });
});

describe('training after slimming to one kv head', () => {
  test('a layer left with a single kv head read by several query heads still has gradients', () => {
    const m = createLlama(base, { seed: 3 });
    m.maskGroups(['layers.1.kv.0']); // layer 1 keeps kv head 1, read by query heads 2 and 3
    const slim = m.slim() as LlamaModel;
    expect(slim.config.layers?.[1]?.nKvHeads).toBe(1);
    const { value, grads } = tf.variableGrads(() => slim.loss(tf.tensor2d(ids, undefined, 'int32')));
    expect(Number.isFinite(value.dataSync()[0])).toBe(true);
    const kGrad = grads[[...slim.parameters().entries()].find(([n]) => n === 'model.layers.1.self_attn.k_proj.weight')![1].name]!;
    expect(kGrad.shape).toEqual([4, 16]);
    expect(Math.max(...Array.from(kGrad.abs().dataSync()))).toBeGreaterThan(0);
    tf.dispose([value, ...Object.values(grads)]);
    slim.dispose();
    m.dispose();
  });
});

describe('groupCounts', () => {
  test('equals the groups computeGroups builds, per layer and in all (MHA, GQA, a slimmed non-uniform model)', () => {
    const mha = createLlama({ vocabSize: 32, dim: 16, nLayers: 2, nHeads: 4, hiddenDim: 24, maxSeqLen: 8 });
    const gqa = createLlama({ vocabSize: 32, dim: 16, nLayers: 3, nHeads: 4, nKvHeads: 2, hiddenDim: 24, maxSeqLen: 8 });
    gqa.maskGroups(['layers.0.head.1', 'layers.1.kv.0', 'layers.2.ffn.3', 'layers.2.ffn.5', 'hidden.2']);
    const slim = gqa.slim();
    for (const m of [mha, gqa, slim]) {
      const counts = groupCounts(m.config);
      const groups = computeGroups(m.config);
      for (const kind of ['head', 'kv-group', 'ffn-channel', 'hidden-channel', 'block'] as const) {
        expect(counts.total[kind], kind).toBe(groups.filter((g) => g.kind === kind).length);
      }
      counts.layers.forEach((l, i) => {
        for (const kind of ['head', 'kv-group', 'ffn-channel'] as const) expect(l[kind]).toBe(groups.filter((g) => g.kind === kind && g.layer === i).length);
      });
    }
    expect(groupCounts(slim.config).layers[2]!['ffn-channel']).toBe(22);
    for (const m of [mha, gqa, slim]) m.dispose();
  });
});
