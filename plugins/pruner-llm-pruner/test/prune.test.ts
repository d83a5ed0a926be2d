/**
 * End to end on the shipped stories260K model: prune 20 % of the parameters, slim, save, load back; the saved
 * model is smaller (parameters and bytes), records per-layer sizes, and computes what the masked model computes.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseOptions, TopiaryError, type CausalLM } from '@topiary/kernel';
import { createLlama, loadModel, saveModel } from '@topiary/model-llama';
import { llmPruner } from '../src/index.js';
import { calibration, pruneContext, shippedModel, useFastBackend } from './helpers.js';

function logits(model: CausalLM, ids: Int32Array[]): Float32Array {
  return tf.tidy(() => {
    const t = tf.tensor2d(
      ids.flatMap((w) => [...w]),
      [ids.length, ids[0]!.length],
      'int32',
    );
    return model.forward(t).dataSync() as Float32Array;
  });
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function expectError(p: Promise<unknown> | (() => unknown), where: string, message: RegExp): Promise<TopiaryError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(TopiaryError);
  expect((err as TopiaryError).where).toBe(where);
  expect((err as TopiaryError).message).toMatch(message);
  return err as TopiaryError;
}

describe('llm-pruner on stories260K: slim, save, load back', () => {
  const { windows, batchSize } = calibration();
  const ctx = pruneContext(windows);
  const dir = mkdtempSync(join(tmpdir(), 'topiary-llm-pruner-'));
  beforeAll(async () => {
    await useFastBackend();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('removes ~20 % of the parameters physically and the saved model matches the masked one', async () => {
    const model = await loadModel(shippedModel);
    const opts = parseOptions(llmPruner.options, { ratio: 0.2, saliency: 'taylor-vector', batchSize }, '');
    const { model: slim, report } = await llmPruner.prune(model, opts, ctx);
    expect(report.parametersBefore).toBe(260032);
    expect(slim.parameterCount()).toBe(report.parametersAfter);
    const achieved = 1 - report.parametersAfter / report.parametersBefore;
    expect(Math.abs(achieved - 0.2)).toBeLessThan(0.01);
    // first and last block untouched (default range 1:4), the middle ones narrower
    const layers = slim.config.layers!;
    expect(layers[0]).toMatchObject({ nHeads: 8, nKvHeads: 4, hiddenDim: 172 });
    expect(layers[4]).toMatchObject({ nHeads: 8, nKvHeads: 4, hiddenDim: 172 });
    // r = 0.2·260032 / (3·45312) = 0.383: round(0.383·4) = 2 KV groups (3072 params each), then 58 FFN channels (192 each)
    for (const i of [1, 2, 3]) expect(layers[i]).toMatchObject({ nHeads: 4, nKvHeads: 2, hiddenDim: 172 - 58 });

    const ids = windows.slice(0, 2);
    const masked = logits(model, ids);
    const small = logits(slim, ids);
    expect(maxDiff(masked, small)).toBeLessThan(1e-4);

    await saveModel(slim, dir);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { topiary_layers: { hiddenDim?: number; intermediate_size?: number }[] };
    expect(config.topiary_layers).toHaveLength(5);
    const bytes = statSync(join(dir, 'model.safetensors')).size;
    const denseBytes = statSync(join(shippedModel, 'model.safetensors')).size;
    expect(bytes).toBeLessThan(denseBytes * 0.82);
    const loaded = await loadModel(dir);
    expect(loaded.parameterCount()).toBe(slim.parameterCount());
    expect(maxDiff(logits(loaded, ids), small)).toBe(0);
    for (const m of [model, slim, loaded]) m.dispose();
  });

  it('prunes single heads when the model does not share KV heads (MHA), and global ranking works', async () => {
    const model = createLlama({ vocabSize: 64, dim: 32, nLayers: 4, nHeads: 4, hiddenDim: 48, maxSeqLen: 64 }, { seed: 1 });
    const rnd = Array.from({ length: 4 }, (_, s) => Int32Array.from({ length: 16 }, (_, i) => (i * 7 + s * 13) % 64));
    const opts = parseOptions(llmPruner.options, { ratio: 0.1, global: true }, '');
    const { model: slim, report } = await llmPruner.prune(model, opts, pruneContext(rnd));
    expect(report.details!.attentionUnit).toBe('head');
    expect(report.details!.ranking).toBe('global');
    expect(report.parametersAfter).toBeLessThanOrEqual(report.parametersBefore * 0.9 + 1);
    const masked = logits(model, rnd);
    expect(maxDiff(masked, logits(slim, rnd))).toBeLessThan(1e-4);
    model.dispose();
    slim.dispose();
  });

  it('bad input: a ratio that empties every head of a block, unknown saliency, bad flags', async () => {
    const model = await loadModel(shippedModel);
    await expectError(llmPruner.prune(model, parseOptions(llmPruner.options, { ratio: 0.5 }, ''), ctx), '--ratio', /every attention head of block 1/);
    await expectError(llmPruner.prune(model, parseOptions(llmPruner.options, { ratio: 0.6 }, ''), ctx), '--ratio', /hold only/);
    const unknown = await expectError(llmPruner.prune(model, parseOptions(llmPruner.options, { ratio: 0.2, saliency: 'taylor' }, ''), ctx), '--saliency', /unknown saliency "taylor"/);
    expect(unknown.hint).toContain('taylor-element, taylor-element-2nd, taylor-vector');
    await expectError(() => parseOptions(llmPruner.options, { ratio: 1.5 }, ''), 'ratio', /must be in \(0,1\)/);
    await expectError(() => parseOptions(llmPruner.options, {}, ''), 'ratio', /is required/);
    const median = await expectError(() => parseOptions(llmPruner.options, { ratio: 0.2, aggregation: 'median' }, ''), 'aggregation', /unknown group aggregation/);
    expect(median.hint).toContain('sum, mean, max, prod, last');
    await expectError(() => parseOptions(llmPruner.options, { ratio: 0.2, layers: 'first-three' }, ''), 'layers', /START:END/);
    expect(parseOptions(llmPruner.options, { ratio: 0.2, layers: '1-3' }, '').layers).toMatchObject({ start: 1, end: 4 }); // inclusive A-B = 1:4
    await expectError(llmPruner.prune(model, parseOptions(llmPruner.options, { ratio: 0.2, layers: '2:9' }, ''), ctx), '--layers', /5 blocks/);
    await expectError(() => parseOptions(llmPruner.options, { ratio: 2 }, 'stages[0].prune'), 'stages[0].prune.ratio', /must be in/);
    model.dispose();
  });
});
