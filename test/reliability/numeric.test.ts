/**
 * Numerical guards, tested from outside the trainer: a NaN written into a weight (through the trainer's fault-
 * injection hook) stops the run naming the step and the tensor, the last good checkpoint stays and verifies, and no
 * checkpoint is written after the fault. A divergent learning rate through the CLI stops on a gradient.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { createContainer, isTopiaryError, PluginHost } from '@topiary/kernel';
import schedulers from '@topiary/scheduler-basic';
import { listCheckpoints, loadLatestCheckpoint, resolveTrainOptions, train } from '@topiary/trainer';
import { cliBin, tempDir } from './helpers.js';
// @ts-expect-error plain ESM shared with the stress scripts
import { runTrain, writeRecipe } from './resume-lib.mjs';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

/** The installed schedules a run resolves its learning-rate schedule from. */
const withSchedulers = new PluginHost(createContainer()).use(schedulers).freeze();

function spec(dir: string, extra: Record<string, unknown>) {
  const recipe = JSON.parse(readFileSync(writeRecipe(dir, { steps: 10, checkpointEvery: 2, keep: 10 }), 'utf8'));
  return resolveTrainOptions({ ...recipe.stages[0].train, out: join(dir, 'run'), ...extra }, 'stages[0].train', withSchedulers, { seed: 3 });
}

const poison = (name: string) => (step: number, model: { parameters(): Map<string, tf.Variable> }) => {
  if (step !== 5) return;
  const v = model.parameters().get(name)!;
  v.assign(tf.tidy(() => tf.fill(v.shape, Number.NaN)));
};

async function expectNumeric(run: Promise<unknown>): Promise<{ message: string; where?: string; hint?: string }> {
  try {
    await run;
  } catch (e) {
    if (isTopiaryError(e) && e.code === 'E_NUMERIC') return e;
    throw e;
  }
  throw new Error('training did not stop');
}

function metricsOf(out: string): { step: number; type: string; message?: string }[] {
  return readFileSync(join(out, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

describe('NaN/Inf guards stop the run and keep the last good checkpoint', () => {
  test('NaN in a weight (checked every step) names step 5 and the tensor; checkpoint 4 stays and verifies', async () => {
    const dir = tempDir();
    const s = spec(dir, { guardEvery: 1 });
    const name = 'model.layers.1.mlp.down_proj.weight';
    const err = await expectNumeric(train(s, { hooks: { afterUpdate: poison(name) as never } }));
    expect(err.message).toContain('step 5');
    expect(err.message).toContain(name);
    expect(err.where).toBe(`step 5: the weight ${name}`);
    expect(err.hint).toMatch(/last good checkpoint/);
    const root = join(s.out, 'checkpoints');
    expect(listCheckpoints(root).map((c) => c.step)).toEqual([4, 2]);
    const last = loadLatestCheckpoint(root);
    expect(last?.step).toBe(4);
    for (const w of last!.weights.values()) expect(w.every(Number.isFinite)).toBe(true);
    const fault = metricsOf(s.out).find((m) => m.type === 'fault');
    expect(fault?.message).toContain(name);
    expect(existsSync(join(s.out, 'model'))).toBe(false); // no final model from a poisoned run
  });

  test('with weight checks off, the checkpoint write still refuses the poisoned weights: no checkpoint holds NaN', async () => {
    const dir = tempDir();
    const s = spec(dir, { guardEvery: 1000 });
    const err = await expectNumeric(train(s, { hooks: { afterUpdate: poison('model.norm.weight') as never } }));
    // poisoned after step 5; step 6 is a checkpoint step (every 2): writing it finds the NaN weight and stops
    expect(err.where).toBe('step 5: the weight model.norm.weight');
    const steps = listCheckpoints(join(s.out, 'checkpoints')).map((c) => c.step);
    expect(steps[0]).toBe(4); // the newest checkpoint is the last good one
    const last = loadLatestCheckpoint(join(s.out, 'checkpoints'))!;
    expect([...last.weights.values()].every((w) => w.every((x) => Number.isFinite(x)))).toBe(true);
  });

  if (!existsSync(cliBin)) console.log(`skipped: the CLI test needs the built CLI (${cliBin}); run pnpm build`);
  test.skipIf(!existsSync(cliBin))('through the CLI: a divergent learning rate stops with E_NUMERIC naming step and gradient (exit 1)', async () => {
    const dir = tempDir();
    const raw = JSON.parse(readFileSync(writeRecipe(dir, { steps: 12, checkpointEvery: 2 }), 'utf8'));
    raw.stages[0].train.lr = { schedule: 'constant', lr: 1e30 };
    raw.stages[0].train.optimizer = { clipNorm: 0 };
    writeFileSync(join(dir, 'diverge.json'), JSON.stringify(raw));
    const r = (await runTrain(join(dir, 'diverge.json'), join(dir, 'out'))) as { code: number; stderr: string };
    expect(r.code).toBe(1);
    const err = JSON.parse(r.stderr.trim().split('\n').pop()!).error;
    expect(err.code).toBe('E_NUMERIC');
    expect(err.where).toMatch(/^step \d+: the (gradient of|weight|loss)/);
    expect(err.message).toMatch(/non-finite value at step \d+/);
  });
});
