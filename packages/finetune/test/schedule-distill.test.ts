import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { createContainer, optionFields, optionsJsonSchema, PluginHost, TopiaryError, type DependencyContainer } from '@topiary/kernel';
import schedulerBasic from '@topiary/scheduler-basic';
import { linearCrossEntropy } from '@topiary/model-llama';
import { checkSchedule, finetuneOptions, lrSchedule, resolveFinetuneOptions, type LrScheduleInput } from '../src/index.js';

tf.setBackend('cpu');

/** A run's container with the scheduler plugin registered, as the plugin host does it. */
function withSchedulers(): DependencyContainer {
  const container = createContainer();
  new PluginHost(container).use(schedulerBasic).freeze();
  return container;
}

const container = withSchedulers();
const learningRate = (s: LrScheduleInput, step: number): number => lrSchedule(container, s)(step);

describe('learning-rate schedule', () => {
  const s = { lr: 1e-3, steps: 11, warmup: 1, decay: 'cosine' as const, minLr: 1e-4 };
  it('warms up linearly then decays by a cosine to minLr at the last step', () => {
    const w = { ...s, warmup: 4 };
    expect(learningRate(w, 0)).toBeCloseTo(2.5e-4, 12);
    expect(learningRate(w, 3)).toBeCloseTo(1e-3, 12);
    expect(learningRate(s, 1)).toBeCloseTo(1e-3, 12); // first decay step = peak
    expect(learningRate(s, 10)).toBeCloseTo(1e-4, 12); // last step = minLr
    // halfway through the decay (step 1 + 4.5 of 9): cos(π/2) = 0 -> the midpoint
    expect(learningRate({ ...s, steps: 12, warmup: 2 }, 2 + 4.5)).toBeCloseTo((1e-3 + 1e-4) / 2, 12);
  });
  it('linear decay is the straight line; constant stays at lr', () => {
    const l = { ...s, decay: 'linear' as const, minLr: 0, warmup: 0, steps: 5 };
    expect([0, 1, 2, 3, 4].map((i) => learningRate(l, i))).toEqual([1e-3, 7.5e-4, 5e-4, 2.5e-4, 0]);
    expect(learningRate({ ...l, decay: 'constant' }, 3)).toBe(1e-3);
  });
  it('fills the defaults: lr 1e-4, minLr 0, cosine, warmup 10% of steps', () => {
    expect(checkSchedule({ steps: 25 })).toEqual({ steps: 25, lr: 1e-4, minLr: 0, warmup: 2, decay: 'cosine' });
    expect(learningRate({ steps: 25 }, 0)).toBeCloseTo(0.5e-4, 12);
  });
  it('rejects bad schedules naming the field', () => {
    expect(() => checkSchedule({ ...s, steps: 0 })).toThrow(TopiaryError);
    expect(() => checkSchedule({ ...s, steps: 0 })).toThrow(expect.objectContaining({ code: 'E_RECIPE', where: 'finetune.steps', message: 'must be in [1,∞), got 0' }));
    expect(() => checkSchedule({ ...s, warmup: 12 })).toThrow(expect.objectContaining({ where: 'finetune.warmup', message: 'must be in [0,11], got 12' }));
    expect(() => checkSchedule({ ...s, lr: -1 })).toThrow(expect.objectContaining({ where: 'finetune.lr', message: 'must be in (0,∞), got -1' }));
    expect(() => checkSchedule({ ...s, minLr: 2e-3 })).toThrow(expect.objectContaining({ where: 'finetune.minLr', message: 'must be in [0,0.001], got 0.002' }));
    expect(() => checkSchedule({ ...s, decay: 'step' as 'linear' })).toThrow(
      expect.objectContaining({ where: 'finetune.decay', message: 'must be one of "cosine", "linear", "constant", got "step"' }),
    );
  });
  it('needs the schedule from a plugin: an empty container says which scheduler is missing', () => {
    expect(() => lrSchedule(createContainer(), s, 'stages[2].finetune')).toThrow(
      expect.objectContaining({ code: 'E_PLUGIN_UNKNOWN', where: 'stages[2].finetune.decay', message: 'unknown scheduler "cosine"', hint: 'no scheduler plugin is installed' }),
    );
    expect(() => lrSchedule(createContainer(), { ...s, decay: 'linear' })).toThrow(expect.objectContaining({ code: 'E_PLUGIN_UNKNOWN', message: 'unknown scheduler "wsd"' }));
  });
});

describe('fine-tuning options (one schema)', () => {
  it('validates a recipe stage with every default filled, data from the recipe', () => {
    const o = resolveFinetuneOptions({ steps: 40, lr: 1e-3, distillFrom: 'source' }, 'stages[2].finetune', container, { data: 'train.txt' });
    expect(o).toEqual({
      data: 'train.txt',
      steps: 40,
      lr: 1e-3,
      minLr: 0,
      warmup: 4,
      decay: 'cosine',
      batchSize: 8,
      weightDecay: 0,
      distillFrom: 'source',
      temperature: 2,
      alpha: 0.5,
    });
    expect(resolveFinetuneOptions({ steps: 4, data: 'own.txt', seqlen: 32, warmup: 0 }, 'f', container, { data: 'train.txt' })).toMatchObject({ data: 'own.txt', seqlen: 32, warmup: 0 });
  });

  it('names the field at fault', () => {
    const where = 'stages[2].finetune';
    const bad = (raw: Record<string, unknown>, expected: Record<string, unknown>): void => {
      expect(() => resolveFinetuneOptions({ data: 'd.txt', steps: 10, ...raw }, where, container)).toThrow(expect.objectContaining({ code: 'E_RECIPE', ...expected }));
    };
    bad({ steps: undefined }, { where: `${where}.steps`, message: 'is required' });
    bad({ steps: 2.5 }, { where: `${where}.steps`, message: 'must be an integer, got 2.5' });
    bad({ lr: 0 }, { where: `${where}.lr`, message: 'must be in (0,∞), got 0' });
    bad({ minLr: 1 }, { where: `${where}.minLr` });
    bad({ warmup: 11 }, { where: `${where}.warmup`, message: 'must be in [0,10], got 11' });
    bad({ decay: 'exp' }, { where: `${where}.decay` });
    bad({ batchSize: 0 }, { where: `${where}.batchSize` });
    bad({ seqlen: 1 }, { where: `${where}.seqlen`, message: 'must be in [2,∞), got 1' });
    bad({ weightDecay: -0.1 }, { where: `${where}.weightDecay` });
    bad({ temperature: 0 }, { where: `${where}.temperature` });
    bad({ alpha: 1.5 }, { where: `${where}.alpha`, message: 'must be in [0,1], got 1.5' });
    bad({ seqLen: 32 }, { where: `${where}.seqLen`, message: 'unknown field' });
    expect(() => resolveFinetuneOptions({ steps: 10 }, where, container)).toThrow(
      expect.objectContaining({ where: `${where}.data`, message: expect.stringMatching(/^is required/) }),
    );
  });

  it('refuses a decay whose scheduler is not installed, before anything runs', () => {
    expect(() => resolveFinetuneOptions({ data: 'd.txt', steps: 10 }, 'stages[0].finetune', createContainer())).toThrow(
      expect.objectContaining({ code: 'E_PLUGIN_UNKNOWN', where: 'stages[0].finetune.decay' }),
    );
  });

  it('describes every field for --help and recipe completion', () => {
    const json = optionsJsonSchema(finetuneOptions) as { properties: Record<string, { description?: string }>; required: string[] };
    for (const [key, field] of Object.entries(json.properties)) expect(field.description, key).toBeTruthy();
    expect(json.required).toEqual(['steps']);
    const flags = Object.fromEntries(optionFields(finetuneOptions).map((f) => [f.key, f]));
    expect(Object.values(flags).map((f) => f.flag)).toEqual([
      '--data', '--steps', '--lr', '--min-lr', '--warmup', '--decay', '--batch-size', '--seqlen', '--weight-decay', '--distill-from', '--temperature', '--alpha',
    ]);
    expect(flags.lr).toMatchObject({ default: 1e-4, required: false });
    expect(flags.steps).toMatchObject({ required: true });
    expect(flags.decay).toMatchObject({ choices: ['cosine', 'linear', 'constant'], default: 'cosine' });
    expect(flags.alpha).toMatchObject({ default: 0.5 });
    expect(flags.temperature).toMatchObject({ default: 2 });
    expect(flags.batchSize).toMatchObject({ default: 8 });
  });

  it('marks the fields that name files, so recipe paths can be made absolute from the schema', () => {
    const json = optionsJsonSchema(finetuneOptions) as { properties: Record<string, { path?: boolean; keywords?: string[] }> };
    expect(json.properties.data).toMatchObject({ path: true });
    expect(json.properties.distillFrom).toMatchObject({ path: true, keywords: ['source'] });
    expect(Object.entries(json.properties).filter(([, f]) => f.path).map(([k]) => k)).toEqual(['data', 'distillFrom']);
  });

  it('resolving what a stage already parsed gives the same options (a pipeline parses first, then prepares)', () => {
    const raw = { data: 'd.txt', steps: 30, decay: 'linear' };
    expect(resolveFinetuneOptions(finetuneOptions.parse(raw), 'f', container)).toEqual(resolveFinetuneOptions(raw, 'f', container));
  });
});

// Closed forms computed in float64 by hand-written JS, independent of tfjs.
function logSoftmax(z: number[]): number[] {
  const m = Math.max(...z);
  const lse = m + Math.log(z.reduce((a, x) => a + Math.exp(x - m), 0));
  return z.map((x) => x - lse);
}

describe('recovery losses (the LM head\'s chunked loss, distilled)', () => {
  // logits = h Wᵀ with W = I: the rows of h are the logits, so the closed forms below apply directly
  const student = [
    [1, 2, 0.5],
    [0, -1, 3],
  ];
  const teacher = [
    [2, 1, 0],
    [0.5, 0.5, 2],
  ];
  const targets = [1, 2];
  const eye = (): tf.Tensor2D => tf.eye(3) as tf.Tensor2D;
  const S = (): tf.Tensor2D => tf.tensor2d(student);
  const y = (): tf.Tensor1D => tf.tensor1d(targets, 'int32');
  const head = (T: number, alpha: number, rows = teacher) => ({ h: tf.tensor2d(rows), weight: eye(), temperature: T, alpha });

  const ce = student.map((z, i) => -logSoftmax(z)[targets[i]!]!).reduce((a, b) => a + b) / 2;
  const kl = (T: number): number =>
    student
      .map((z, i) => {
        const ls = logSoftmax(z.map((x) => x / T));
        const lt = logSoftmax(teacher[i]!.map((x) => x / T));
        return lt.reduce((a, l, k) => a + Math.exp(l) * (l - ls[k]!), 0);
      })
      .reduce((a, b) => a + b) / 2;
  /** ∂L/∂z = ((1 − α)(p − y) + α·T·(q_s − q_t)) / n, in float64. */
  const gradient = (T: number, alpha: number): number[][] =>
    student.map((z, i) => {
      const p = logSoftmax(z).map(Math.exp);
      const qs = logSoftmax(z.map((x) => x / T)).map(Math.exp);
      const qt = logSoftmax(teacher[i]!.map((x) => x / T)).map(Math.exp);
      return z.map((_, k) => ((1 - alpha) * (p[k]! - (k === targets[i] ? 1 : 0)) + alpha * T * (qs[k]! - qt[k]!)) / 2);
    });

  it('plain: cross-entropy matches the closed form', () => {
    expect(linearCrossEntropy(S(), eye(), y()).dataSync()[0]).toBeCloseTo(ce, 5);
  });
  it('distilled: α·T²·KL + (1 − α)·CE, in one chunk and row by row', () => {
    for (const chunk of [undefined, 3]) {
      expect(linearCrossEntropy(S(), eye(), y(), chunk, head(2, 0.3)).dataSync()[0]).toBeCloseTo(0.3 * 4 * kl(2) + 0.7 * ce, 5);
      expect(linearCrossEntropy(S(), eye(), y(), chunk, head(2, 1)).dataSync()[0]).toBeCloseTo(4 * kl(2), 5);
    }
    // against itself the KL term is 0
    expect(linearCrossEntropy(S(), eye(), y(), undefined, head(3, 1, student)).dataSync()[0]).toBeCloseTo(0, 6);
  });
  it('the fused gradient is ((1 − α)(p − y) + α·T·(q_s − q_t)) / n, chunked or not; zero at α = 1 against itself', () => {
    for (const chunk of [undefined, 3]) {
      const g = tf.grad((h) => linearCrossEntropy(h as tf.Tensor2D, eye(), y(), chunk, head(2, 0.3)))(S());
      const want = gradient(2, 0.3).flat();
      Array.from(g.dataSync()).forEach((v, k) => expect(v).toBeCloseTo(want[k]!, 5));
    }
    const self = tf.grad((h) => linearCrossEntropy(h as tf.Tensor2D, eye(), y(), undefined, head(2, 1, student)))(S());
    expect(Math.max(...Array.from(self.dataSync()).map(Math.abs))).toBeLessThan(1e-6);
  });
});
