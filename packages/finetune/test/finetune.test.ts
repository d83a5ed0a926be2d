import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createContainer, PluginHost } from '@topiary/kernel';
import { AdamW, loadModel } from '@topiary/model-llama';
import schedulerBasic from '@topiary/scheduler-basic';
import { finetune } from '../src/index.js';

const shipped = join(import.meta.dirname, '..', '..', '..', 'assets/models/stories260K-hf');
// Deterministic token windows of the model's own greedy-ish text are not needed: any fixed windows exercise the loop.
const windows = Array.from({ length: 8 }, (_, s) => Int32Array.from({ length: 33 }, (_, i) => (i === 0 ? 1 : 3 + ((i * 37 + s * 101) % 500))));

// the run's container: the LR schedule's curve comes from the scheduler plugin registered here
const container = createContainer();
new PluginHost(container).use(schedulerBasic).freeze();

beforeAll(async () => {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    if (await tf.setBackend('wasm')) return;
  } catch {
    // cpu
  }
  await tf.setBackend('cpu');
});

describe('finetune loop on stories260K', () => {
  it('refuses to start when the run has no scheduler plugin for the decay', async () => {
    const model = await loadModel(shipped);
    const run = finetune(model, {
      schedule: { lr: 1e-3, steps: 4, decay: 'cosine' },
      container: createContainer(),
      windows,
      batchSize: 2,
      seed: 0,
      optimizer: new AdamW({ lr: 1e-3, weightDecay: 0 }),
    });
    await expect(run).rejects.toMatchObject({ code: 'E_PLUGIN_UNKNOWN', where: 'finetune.decay', message: 'unknown scheduler "cosine"' });
    model.dispose();
  });

  it('lowers the training loss and keeps masked groups at zero', async () => {
    const model = await loadModel(shipped);
    model.maskGroups(['layers.1.ffn.0', 'layers.2.kv.1']);
    const report = await finetune(model, {
      schedule: { lr: 3e-3, minLr: 0, steps: 12, warmup: 2, decay: 'cosine' },
      container,
      windows,
      batchSize: 4,
      seed: 0,
      optimizer: new AdamW({ lr: 3e-3, weightDecay: 0 }),
    });
    expect(report.losses).toHaveLength(12);
    expect(report.lastLoss).toBeLessThan(report.firstLoss);
    const gate = model.readWeight('model.layers.1.mlp.gate_proj.weight');
    expect(Array.from(gate.subarray(0, 64)).every((v) => v === 0)).toBe(true);
    const k = model.readWeight('model.layers.2.self_attn.k_proj.weight');
    expect(Array.from(k.subarray(8 * 64, 16 * 64)).every((v) => v === 0)).toBe(true);
    model.dispose();
  });

  it('distillation from an identical teacher starts at pure CE·(1 − α) (KL = 0)', async () => {
    const model = await loadModel(shipped);
    const teacher = model.clone();
    const copy = model.clone();
    const plain = await finetune(copy, {
      schedule: { lr: 1e-9, minLr: 0, steps: 1, warmup: 0, decay: 'constant' },
      container,
      windows,
      batchSize: 8,
      seed: 0,
      optimizer: new AdamW({ lr: 1e-9, weightDecay: 0 }),
    });
    const kd = await finetune(model, {
      schedule: { lr: 1e-9, minLr: 0, steps: 1, warmup: 0, decay: 'constant' },
      container,
      windows,
      batchSize: 8,
      seed: 0,
      teacher,
      distill: { temperature: 2, alpha: 0.25 },
      optimizer: new AdamW({ lr: 1e-9, weightDecay: 0 }),
    });
    expect(kd.firstLoss).toBeCloseTo(0.75 * plain.firstLoss, 4);
    for (const m of [model, teacher, copy]) m.dispose();
  });
});
