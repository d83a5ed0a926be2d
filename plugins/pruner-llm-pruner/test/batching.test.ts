/**
 * Calibration passes are batched so memory is bounded (DEFAULT_BATCH_TOKENS per pass), and the batching must not
 * change the result: the gradient is that of the mean loss over ALL windows, whatever the batch size, including an
 * uneven last batch.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createLlama } from '@topiary/model-llama';
import { calibrationBatchSize, collectGradients, DEFAULT_BATCH_TOKENS } from '@topiary/structured-core';
import { useFastBackend } from './helpers.js';

function windows(n: number, len: number, vocab: number): Int32Array[] {
  return Array.from({ length: n }, (_, i) => Int32Array.from({ length: len }, (_, t) => (i * 31 + t * 7 + ((i * t) % 5)) % vocab));
}

describe('calibration batches', () => {
  beforeAll(useFastBackend);

  it('default batch: as many windows as fit in DEFAULT_BATCH_TOKENS (the crash case 128 × 512 → 4 per pass)', () => {
    expect(DEFAULT_BATCH_TOKENS).toBe(2048);
    expect(calibrationBatchSize(windows(128, 512, 10))).toBe(4);
    expect(calibrationBatchSize(windows(10, 64, 10))).toBe(10); // LLM-Pruner's own 10 × 64: one batch, as in its code
    expect(calibrationBatchSize(windows(3, 4096, 10))).toBe(1);
    expect(calibrationBatchSize(windows(128, 512, 10), 16)).toBe(16);
  });

  it('gradients do not depend on the batch size (uneven last batch included)', async () => {
    const model = createLlama({ vocabSize: 64, dim: 16, nLayers: 1, nHeads: 2, hiddenDim: 24, maxSeqLen: 512 }, { seed: 3 });
    const ws = windows(7, 400, 64); // 2,800 tokens: the default batch holds 5 windows, then 2
    expect(calibrationBatchSize(ws)).toBe(5);
    const whole = await collectGradients(model, ws, { batchSize: 7 });
    for (const batchSize of [1, 3, 0]) {
      const batched = await collectGradients(model, ws, { batchSize });
      for (const [name, g] of whole) {
        const b = batched.get(name)!;
        let maxDiff = 0;
        let scale = 0;
        for (let i = 0; i < g.grad.length; i++) {
          maxDiff = Math.max(maxDiff, Math.abs(g.grad[i]! - b.grad[i]!));
          scale = Math.max(scale, Math.abs(g.grad[i]!));
        }
        expect(maxDiff, `${name}, batch ${batchSize}`).toBeLessThanOrEqual(1e-5 * scale + 1e-9);
      }
    }
    model.dispose();
  });
});
