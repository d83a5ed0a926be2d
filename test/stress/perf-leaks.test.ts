/**
 * Stress (not in the normal suite): 1000 training steps of a tiny LLaMA on the default wasm backend (and on the
 * native one when its addon is built). Tensor count and tfjs bytes must stay exactly flat after warm-up, and the
 * process RSS must not grow beyond a small allowance (allocator noise), i.e. nothing leaks per step.
 * Run: cd test && npx vitest run --config stress/perf-leaks.vitest.config.ts   (TOPIARY_LEAK_STEPS=200 for a quick look)
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createWasmBackend } from '@topiary/backend-wasm';
import { AdamW, createLlama, trainStep } from '@topiary/model-llama';

const STEPS = Number(process.env['TOPIARY_LEAK_STEPS'] ?? 1000);

async function leakRun(label: string): Promise<void> {
  const model = createLlama({ vocabSize: 64, dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, hiddenDim: 48, maxSeqLen: 32 }, { seed: 3 });
  const opt = new AdamW({ lr: 1e-3 });
  const ids = [0, 1].map((s) => tf.tensor2d(Int32Array.from({ length: 4 * 17 }, (_, i) => (i * 7 + s * 13) % 64), [4, 17], 'int32'));
  const samples: { step: number; tensors: number; bytes: number; rss: number }[] = [];
  for (let step = 1; step <= STEPS; step++) {
    trainStep(model, opt, ids[step % 2]!);
    if (step === 50 || step % 250 === 0) {
      const m = tf.memory();
      samples.push({ step, tensors: m.numTensors, bytes: m.numBytes, rss: process.memoryUsage().rss });
    }
  }
  console.log(`${label}: ${samples.map((s) => `step ${s.step}: ${s.tensors} tensors, ${(s.bytes / 1024).toFixed(0)} KiB, RSS ${(s.rss / 2 ** 20).toFixed(0)} MB`).join('; ')}`);
  const first = samples[0]!;
  for (const s of samples) {
    expect(s.tensors, `tensors at step ${s.step}`).toBe(first.tensors);
    expect(s.bytes, `tfjs bytes at step ${s.step}`).toBe(first.bytes);
  }
  // RSS after warm-up: allow 64 MB of allocator/JIT drift over the whole run (a leak of one activation per step
  // of this model would add several hundred MB over 1000 steps).
  const last = samples.at(-1)!;
  expect(last.rss - samples[1]!.rss).toBeLessThan(64 * 2 ** 20);
  ids.forEach((t) => t.dispose());
  opt.dispose();
  model.dispose();
}

describe('no leaks over 1000 training steps', () => {
  it('wasm backend: tensor count, tfjs bytes and RSS stay flat', async () => {
    await createWasmBackend().init();
    await leakRun('wasm');
  }, 600_000);

  it('native backend (when built): the same', async () => {
    // Imported by path: the opt-in plugin is deliberately not a dependency of anything.
    const native = await import('../../plugins/backend-native/src/index.js');
    const b = native.createNativeBackend();
    const a = await b.available();
    if (!a.ok) {
      console.log(`skipped: native backend unavailable: ${a.reason}`);
      return;
    }
    await b.init();
    await leakRun('native');
  }, 600_000);
});
