/**
 * Depth pruning on the shipped stories260K model: block scores match the float64 PyTorch reference
 * (bench/reference/structured_reference.py) on the committed calibration windows, the same blocks are removed
 * (one-shot and iterative), the result is physically smaller and computes what the masked model computed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createContainer, EventBus, parseOptions, resolveNamed, Tokens, TopiaryError, type CausalLM, type PruneContext, type TensorBackend } from '@topiary/kernel';
import { loadModel } from '@topiary/model-llama';
import taylor from '@topiary/saliency-taylor';
import { depthPruner, scoreBlocks } from '../src/index.js';

const root = join(import.meta.dirname, '..', '..', '..');
const shipped = join(root, 'assets/models/stories260K-hf');
const calib = JSON.parse(readFileSync(join(root, 'plugins/pruner-llm-pruner/test/fixtures/calibration.json'), 'utf8')) as { windows: number[][]; batchSize: number };
const windows = calib.windows.map((w) => Int32Array.from(w));
const ref = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'reference.json'), 'utf8')) as {
  scores: Record<string, Record<string, number>>;
  oneShot2: Record<string, number[]>;
  iterative2: Record<string, number[]>;
};

function context(): PruneContext {
  const c = createContainer();
  taylor.register(c, {});
  return { backend: {} as TensorBackend, events: new EventBus(), calibration: windows, saliency: (n) => resolveNamed(c, Tokens.Saliency, n, 'saliency', '--saliency') };
}

function logits(model: CausalLM): Float32Array {
  return tf.tidy(() => model.forward(tf.tensor2d([...windows[0]!, ...windows[1]!], [2, windows[0]!.length], 'int32')).dataSync() as Float32Array);
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

describe('depth scores vs the PyTorch reference', () => {
  for (const score of ['block-influence', 'ppl', 'taylor'] as const) {
    it(`${score}: every block's score matches`, async () => {
      const model = await loadModel(shipped);
      const got = await scoreBlocks(model, parseOptions(depthPruner.options, { remove: 1, score, batchSize: calib.batchSize }, ''), context());
      const want = ref.scores[score]!;
      for (let i = 0; i < 5; i++) expect(Math.abs(got[i]! - want[String(i)]!) / Math.abs(want[String(i)]!)).toBeLessThan(1e-3);
      model.dispose();
    });
  }
});

describe('depth pruning removes the same blocks physically', () => {
  const cases: [string, boolean, number[]][] = [
    ['block-influence', false, ref.oneShot2['block-influence']!],
    ['ppl', false, ref.oneShot2.ppl!],
    ['taylor', false, ref.oneShot2.taylor!],
    ['block-influence', true, ref.iterative2['block-influence']!],
    ['ppl', true, ref.iterative2.ppl!],
  ];
  for (const [score, iterative, want] of cases) {
    it(`${score} ${iterative ? 'iterative' : 'one-shot'}: removes blocks ${want.join(', ')}`, async () => {
      const model = await loadModel(shipped);
      const before = model.parameterCount();
      const { model: slim, report } = await depthPruner.prune(model, parseOptions(depthPruner.options, { remove: 2, score, iterative, batchSize: calib.batchSize }, ''), context());
      expect(report.details!.removedBlocks).toEqual(want);
      expect(slim.numBlocks).toBe(3);
      expect(report.parametersAfter).toBe(before - 2 * 45440);
      if (!iterative) {
        const a = logits(model);
        const b = logits(slim);
        let worst = 0;
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
        expect(worst).toBeLessThan(1e-4);
      }
      model.dispose();
      slim.dispose();
    });
  }
});

describe('depth bad input', () => {
  it('K >= number of blocks, K beyond the range, unknown score: errors naming the flag', async () => {
    const model = await loadModel(shipped);
    const fail = async (p: Promise<unknown> | (() => unknown)): Promise<TopiaryError> => {
      try {
        await (typeof p === 'function' ? p() : p);
      } catch (e) {
        expect(e).toBeInstanceOf(TopiaryError);
        return e as TopiaryError;
      }
      throw new Error('expected an error');
    };
    const all = await fail(depthPruner.prune(model, parseOptions(depthPruner.options, { remove: 5 }, ''), context()));
    expect(all.where).toBe('--remove');
    expect(all.message).toMatch(/cannot remove 5 of the model's 5 blocks/);
    const range = await fail(depthPruner.prune(model, parseOptions(depthPruner.options, { remove: 3, layers: '1:3' }, ''), context()));
    expect(range.where).toBe('--remove');
    const bad = await fail(() => parseOptions(depthPruner.options, { remove: 1, score: 'cosine' }, ''));
    expect(bad.where).toBe('score');
    expect(bad.message).toBe('must be one of "block-influence", "ppl", "taylor", got "cosine"');
    expect((await fail(() => parseOptions(depthPruner.options, { remove: 0 }, ''))).where).toBe('remove');
    const missing = await fail(() => parseOptions(depthPruner.options, {}, 'stages[0].prune'));
    expect(missing.where).toBe('stages[0].prune.remove');
    expect(missing.message).toMatch(/is required/);
    expect(model.numBlocks).toBe(5);
    model.dispose();
  });
});
