/**
 * Depth pruning of a streamed model (one block on the heap): the block scores (Block Influence, dropped-block
 * perplexity, block Taylor) and the slimmed model must be bit-identical to the in-memory path — on stories260K and
 * on a random 4-block model stored in bf16 across shards — also when the hidden states spill to disk.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContainer, EventBus, parseOptions, resolveNamed, Tokens, type CausalLM, type PruneContext, type TensorBackend } from '@topiary/kernel';
import { createLlama, loadModel, parameterShapes, SlimmableStream, writeHf, type LlamaConfig } from '@topiary/model-llama';
import taylor from '@topiary/saliency-taylor';
import { depthPruner, scoreBlocks } from '../src/index.js';

const root = join(import.meta.dirname, '..', '..', '..');
const STORIES = join(root, 'assets/models/stories260K-hf');
const calib = JSON.parse(readFileSync(join(root, 'plugins/pruner-llm-pruner/test/fixtures/calibration.json'), 'utf8')) as { windows: number[][]; batchSize: number };
const windows = calib.windows.map((w) => Int32Array.from(w));
const work = mkdtempSync(join(tmpdir(), 'topiary-depth-stream-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A seeded random model with 4 blocks in bf16, sharded (as apps/cli/test/streaming.test.ts builds one). */
function randomBf16Model(): string {
  const dir = join(work, 'random-bf16');
  const m = createLlama({ vocabSize: 512, dim: 64, nLayers: 4, nHeads: 4, nKvHeads: 2, hiddenDim: 176, maxSeqLen: 128 }, { seed: 3 });
  writeHf(dir, m.config, new Map([...m.parameters().keys()].map((n) => [n, m.readWeight(n).slice()])), { dtype: 'bfloat16', maxShardBytes: 100_000 });
  m.dispose();
  copyFileSync(join(STORIES, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  return dir;
}

function context(extra: Partial<PruneContext> = {}): PruneContext {
  const c = createContainer();
  taylor.register(c, {});
  return { backend: {} as TensorBackend, events: new EventBus(), calibration: windows, saliency: (n) => resolveNamed(c, Tokens.Saliency, n, 'saliency', '--saliency'), ...extra };
}

/** Every weight of a model, by name. */
function weights(model: CausalLM): Map<string, Float32Array> {
  return new Map([...parameterShapes(model.config as LlamaConfig).keys()].map((n) => [n, model.readWeight(n).slice()]));
}

beforeAll(async () => {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    if (await tf.setBackend('wasm')) return;
  } catch {
    // cpu below
  }
  await tf.setBackend('cpu');
});

describe('streamed depth pruning = in-memory, bit for bit', () => {
  const models: [string, () => string][] = [
    ['stories260K (f32)', () => STORIES],
    ['random 4-block model, bf16 shards', randomBf16Model],
  ];
  for (const [name, path] of models) {
    for (const score of ['block-influence', 'ppl', 'taylor'] as const) {
      it(`${name}, ${score}: same scores, same removed blocks, same slimmed weights`, async () => {
        const input = path();
        const options = parseOptions(depthPruner.options, { remove: 2, score, batchSize: 3 }, '');
        const memory = await loadModel(input);
        const streamed = SlimmableStream.open(input);
        expect(streamed.streamed).toBe(true);
        const a = await scoreBlocks(memory, options, context());
        const b = await scoreBlocks(streamed, options, context());
        expect(Array.from(b)).toEqual(Array.from(a));

        const x = await depthPruner.prune(memory, options, context());
        const y = await depthPruner.prune(streamed, options, context());
        expect(y.report.details!.removedBlocks).toEqual(x.report.details!.removedBlocks);
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
  }

  it('iterative ppl on a streamed model (a slim view slimmed again) = in memory', async () => {
    const options = parseOptions(depthPruner.options, { remove: 2, score: 'ppl', iterative: true, batchSize: 3 }, '');
    const memory = await loadModel(STORIES);
    const streamed = SlimmableStream.open(STORIES);
    const x = await depthPruner.prune(memory, options, context());
    const y = await depthPruner.prune(streamed, options, context());
    expect(y.report.details).toEqual(x.report.details);
    const wx = weights(x.model);
    const wy = weights(y.model);
    for (const [n, v] of wx) expect(Buffer.from(wy.get(n)!.buffer).equals(Buffer.from(v.buffer)), n).toBe(true);
    for (const m of [x.model, y.model, memory, streamed]) m.dispose();
  });

  it('hidden states spilled to disk (a tiny activation budget) change no score', async () => {
    const spillDir = join(work, 'spill');
    for (const score of ['ppl', 'taylor'] as const) {
      const options = parseOptions(depthPruner.options, { remove: 1, score, batchSize: 3 }, '');
      const memory = await loadModel(STORIES);
      const streamed = SlimmableStream.open(STORIES);
      const a = await scoreBlocks(memory, options, context());
      const b = await scoreBlocks(streamed, options, context({ activationBytes: 1, spillDir }));
      expect(Array.from(b)).toEqual(Array.from(a));
      memory.dispose();
      streamed.dispose();
    }
  });
});
