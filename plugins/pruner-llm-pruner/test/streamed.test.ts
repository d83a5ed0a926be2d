/**
 * LLM-Pruner on a streamed model (one block and its gradients on the heap; the gradients by per-block recomputation):
 * the group importances, the groups removed and the slimmed weights must be bit-identical to the in-memory path — on
 * stories260K and on a random 4-block GQA model stored in bf16 across shards — also when the stored block inputs
 * spill to disk.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseOptions, type CausalLM } from '@topiary/kernel';
import { createLlama, loadModel, parameterShapes, SlimmableStream, writeHf, type LlamaConfig } from '@topiary/model-llama';
import { llmPruner, scoreGroups } from '../src/index.js';
import { calibration, pruneContext, shippedModel, useFastBackend } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'topiary-llmp-stream-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const { windows } = calibration();

/** A seeded random model with 4 blocks (GQA: 4 heads, 2 kv heads) in bf16, sharded. */
function randomBf16Model(): string {
  const dir = join(work, 'random-bf16');
  const m = createLlama({ vocabSize: 512, dim: 64, nLayers: 4, nHeads: 4, nKvHeads: 2, hiddenDim: 176, maxSeqLen: 128 }, { seed: 3 });
  writeHf(dir, m.config, new Map([...m.parameters().keys()].map((n) => [n, m.readWeight(n).slice()])), { dtype: 'bfloat16', maxShardBytes: 100_000 });
  m.dispose();
  copyFileSync(join(shippedModel, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  return dir;
}

function weights(model: CausalLM): Map<string, Float32Array> {
  return new Map([...parameterShapes(model.config as LlamaConfig).keys()].map((n) => [n, model.readWeight(n).slice()]));
}

beforeAll(useFastBackend);

describe('streamed LLM-Pruner = in-memory, bit for bit', () => {
  let random = '';
  const cases: [string, () => string, Record<string, unknown>][] = [
    ['stories260K, taylor-element per-layer', () => shippedModel, { saliency: 'taylor-element', batchSize: 3 }],
    ['stories260K, taylor-element-2nd global', () => shippedModel, { saliency: 'taylor-element-2nd', ranking: 'global', batchSize: 3 }],
    ['stories260K, taylor-vector, layers 0:5', () => shippedModel, { saliency: 'taylor-vector', layers: '0:5' }],
    ['random bf16 GQA shards, taylor-vector', () => (random ||= randomBf16Model()), { saliency: 'taylor-vector', batchSize: 4 }],
    ['random bf16 GQA shards, taylor-element-2nd, heads', () => (random ||= randomBf16Model()), { saliency: 'taylor-element-2nd', attention: 'head', layers: '0:4' }],
  ];
  for (const [name, path, raw] of cases) {
    it(`${name}: same importances, same groups removed, same slimmed weights`, async () => {
      const input = path();
      const options = parseOptions(llmPruner.options, { ratio: 0.2, ...raw }, '');
      const memory = await loadModel(input);
      const streamed = SlimmableStream.open(input);
      const a = await scoreGroups(memory, options, pruneContext(windows));
      const b = await scoreGroups(streamed, options, pruneContext(windows));
      expect(b.groups.map((g) => g.id)).toEqual(a.groups.map((g) => g.id));
      expect(Array.from(b.importance)).toEqual(Array.from(a.importance));
      expect(a.importance.some((v) => v !== 0)).toBe(true);

      const x = await llmPruner.prune(memory, options, pruneContext(windows));
      const y = await llmPruner.prune(streamed, options, pruneContext(windows));
      expect(y.report.details!.removedGroups).toEqual(x.report.details!.removedGroups);
      expect(y.report.parametersAfter).toBe(x.report.parametersAfter);
      expect(y.model.streamed).toBe(true);
      expect(y.model.config).toEqual(x.model.config);
      const wx = weights(x.model);
      const wy = weights(y.model);
      expect([...wy.keys()]).toEqual([...wx.keys()]);
      for (const [n, v] of wx) expect(Buffer.from(wy.get(n)!.buffer).equals(Buffer.from(v.buffer)), n).toBe(true);
      for (const m of [x.model, y.model, memory, streamed]) m.dispose();
    });
  }

  it('block inputs spilled to disk (a tiny activation budget) change no importance', async () => {
    const options = parseOptions(llmPruner.options, { ratio: 0.2, saliency: 'taylor-element', batchSize: 3 }, '');
    const memory = await loadModel(shippedModel);
    const streamed = SlimmableStream.open(shippedModel);
    const a = await scoreGroups(memory, options, pruneContext(windows));
    const b = await scoreGroups(streamed, options, { ...pruneContext(windows), activationBytes: 1, spillDir: join(work, 'spill') });
    expect(Array.from(b.importance)).toEqual(Array.from(a.importance));
    memory.dispose();
    streamed.dispose();
  });
});
