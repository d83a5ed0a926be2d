/** The train stage's options: one schema, resolved at the door against the run's container (no tensors here). */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createContainer, loadRecipe, optionErrors, optionsJsonSchema } from '@topiary/kernel';
import { resolveTrainOptions, trainOptions } from '../src/index.js';
import { repoRoot, resolveStage, schedulers } from './helpers.js';

const where = 'stages[0].train';
const base = { model: { vocabSize: 512, dim: 32, nLayers: 2, nHeads: 4, hiddenDim: 64 }, data: { train: 't.txt', tokenizer: 'tok.bin' }, out: 'run' };
const stage = (extra: Record<string, unknown>) => resolveStage({ ...base, ...extra }, where);
const refused = (extra: Record<string, unknown>, expected: Record<string, unknown>) =>
  expect(() => stage(extra)).toThrow(expect.objectContaining({ code: 'E_RECIPE', ...expected }));

describe('train options: defaults', () => {
  it('fills every default and takes the recipe’s seed, output, model and data where the stage gives none', () => {
    const s = resolveStage({}, where, { seed: 7, out: 'runs/x', modelFrom: 'models/m', trainData: 'd.txt', tokenizer: 'tok.bin' });
    expect(s).toMatchObject({
      model: { from: 'models/m' },
      data: { train: 'd.txt', tokenizer: 'tok.bin', seqLen: 64, validFraction: 0.05 },
      seed: 7,
      batchSize: 8,
      accumulate: 1,
      steps: 100,
      optimizer: { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clipNorm: 1 },
      evalEvery: 10,
      evalBatches: 8,
      checkpointEvery: 10,
      keepCheckpoints: 2,
      guardEvery: 1,
      resume: true,
      out: 'runs/x',
    });
    expect(s.lr).toMatchObject({ name: 'constant', options: { lr: 1e-3 }, where: `${where}.lr` });
    expect(s.lr.scheduler.name).toBe('constant');
    expect(s.prune).toBeUndefined();
  });

  it('turns tokens into steps and shares of the run ("10%") into steps', () => {
    const s = stage({ batchSize: 4, accumulate: 2, data: { ...base.data, seqLen: 16 }, tokens: 1000, eval: { every: '50%' }, checkpoint: { every: '10%' } });
    expect(s.steps).toBe(Math.ceil(1000 / (4 * 2 * 16)));
    expect(s.evalEvery).toBe(4);
    expect(s.checkpointEvery).toBe(1);
    const lr = stage({ steps: 200, lr: { schedule: 'cosine', lr: 3e-3, warmup: '3%', minLr: 3e-4 } }).lr;
    expect(lr.options).toEqual({ lr: 3e-3, warmup: 6, minLr: 3e-4, total: 200 }); // total defaults to the run's steps
    const p = stage({ steps: 200, prune: { targetRatio: 0.5, schedule: { name: 'linear', start: '10%', end: '60%', every: '1%' } } }).prune!;
    expect(p.schedule.options).toEqual({ start: 20, end: 120, every: 2 });
    expect(p.schedule.scheduler.kind).toBe('sparsity');
    expect(p).toMatchObject({
      targetRatio: 0.5,
      saliency: 'taylor-fisher',
      saliencyEvery: 1,
      accumulator: { name: 'ema', options: {} },
      kinds: ['head', 'ffn-channel', 'hidden-channel'],
      normalise: 'calibrated',
      slimAt: 0.1,
      minKeep: { heads: 1, ffn: 1, hidden: 8 },
    });
  });

  it('accepts the model as a path, { from }, { architecture } or a config, and names bare as well as object forms', () => {
    expect(stage({ model: 'models/m' }).model).toEqual({ from: 'models/m' });
    expect(stage({ model: { architecture: 'runs/a/model' } }).model).toEqual({ architecture: 'runs/a/model' });
    expect(stage({}).model).toEqual({ config: base.model });
    refused({ lr: 'cosine' }, { where: `${where}.lr.lr`, message: 'is required' }); // a bare name: the schedule's own required fields still apply
    expect(stage({ prune: { targetParams: 1000, schedule: 'one-shot', accumulator: 'sum' } }).prune).toMatchObject({ schedule: { name: 'one-shot' }, accumulator: { name: 'sum' } });
  });
});

describe('the shipped recipes', () => {
  it('every train stage of recipes/ resolves, and every arm trains on the same tokens with the same schedule', () => {
    const files = readdirSync(join(repoRoot, 'recipes')).filter((f) => f.startsWith('efficientllm-'));
    expect(files.length).toBeGreaterThan(0);
    const budgets = new Set<string>();
    for (const file of files) {
      const recipe = loadRecipe(join(repoRoot, 'recipes', file));
      for (const st of recipe.stages.filter((x) => x.kind === 'train')) {
        const s = resolveTrainOptions(st.options, st.where, schedulers, { seed: recipe.seed, out: recipe.output, modelFrom: recipe.model?.from });
        budgets.add(JSON.stringify({ tokens: s.steps * s.batchSize * s.accumulate * s.data.seqLen, lr: s.lr.options, evalEvery: s.evalEvery }));
        if (s.prune) expect(s.prune.schedule.scheduler.kind, file).toBe('sparsity');
      }
    }
    expect([...budgets]).toHaveLength(1);
  });
});

describe('train options: refused at the door, naming the field', () => {
  it('plain fields', () => {
    refused({ batchsize: 3 }, { where: `${where}.batchsize`, message: 'unknown field' });
    refused({ batchSize: 0 }, { where: `${where}.batchSize`, message: 'must be in [1,∞), got 0' });
    refused({ steps: 10, tokens: 100 }, { where: `${where}.tokens`, message: 'give steps or tokens, not both' });
    refused({ data: { ...base.data, validFraction: 1 } }, { where: `${where}.data.validFraction`, message: 'must be in [0,1), got 1' });
    refused({ optimizer: { beta2: 1 } }, { where: `${where}.optimizer.beta2` });
    refused({ eval: { every: 'often' } }, { where: `${where}.eval.every`, message: 'must be a whole number of steps or a share of the run like "10%", got "often"' });
    refused({ checkpoint: { keep: 0 } }, { where: `${where}.checkpoint.keep` });
    refused({ resume: 'yes' }, { where: `${where}.resume`, message: 'must be a boolean, got "yes"' });
  });

  it('the model', () => {
    refused({ model: { vocabSize: 512, dim: 32, nLayers: 2, nHeads: 4 } }, { where: `${where}.model.hiddenDim`, message: 'is required' });
    refused({ model: { ...base.model, dim: 0 } }, { where: `${where}.model.dim` });
    refused({ model: { from: 'm', dim: 3 } }, { where: `${where}.model.dim`, message: 'unknown field' });
    refused({ model: { ...base.model, nKvHeds: 2 } }, { where: `${where}.model.nKvHeds`, message: 'unknown field' });
    expect(() => resolveStage({ data: base.data, out: 'r' }, where)).toThrow(expect.objectContaining({ where: `${where}.model`, message: expect.stringMatching(/^is required/) }));
    expect(() => resolveStage({ model: base.model, out: 'r' }, where)).toThrow(expect.objectContaining({ where: `${where}.data.train` }));
    expect(() => resolveStage({ model: base.model, data: base.data }, where)).toThrow(expect.objectContaining({ where: `${where}.out` }));
  });

  it('the schedules, by their own schemas', () => {
    refused({ lr: { schedule: 'cosine', lr: 0 } }, { where: `${where}.lr.lr`, message: 'must be in (0,∞), got 0' });
    refused({ lr: { schedule: 'cosine', lr: 1, minLr: 2 } }, { where: `${where}.lr.minLr` });
    refused({ lr: { schedule: 'cosine', lr: 1, warmup: 5, total: 3 } }, { where: `${where}.lr.warmup` });
    refused({ lr: { schedule: 'linear', lr: 1 } }, { where: `${where}.lr.schedule`, message: '"linear" is a sparsity schedule, not a learning-rate one' });
    const prune = (schedule: unknown, extra: Record<string, unknown> = {}) => ({ steps: 10, prune: { targetRatio: 0.5, schedule, ...extra } });
    refused(prune({ name: 'linear', end: 8, every: 0 }), { where: `${where}.prune.schedule.every` });
    refused(prune({ name: 'linear', start: 8, end: 4 }), { where: `${where}.prune.schedule.end`, message: 'must be after start (8), got 4' });
    refused(prune({ name: 'cubic', end: 50 }), { where: `${where}.prune.schedule.end`, message: 'the schedule ends at step 50, after the token budget (10 steps)' });
    refused(prune({ name: 'one-shot', at: '150%' }), { where: `${where}.prune.schedule.at`, message: 'must be at most 100%, got 150%' });
    refused(prune({ name: 'linear', end: 8, to: 0.9 }), { where: `${where}.prune.schedule.to` });
    refused(prune({ end: 8 }), { where: `${where}.prune.schedule.name`, message: 'is required' });
    refused(prune(undefined), { where: `${where}.prune.schedule`, message: 'is required' });
    refused(prune({ name: 'cosine', lr: 1, total: 10 }), { where: `${where}.prune.schedule.name`, message: '"cosine" is a learning-rate schedule, not a sparsity one', hint: 'sparsity schedules: cubic, linear, one-shot' });
    refused({ steps: 10, prune: { schedule: { name: 'linear', end: 8 } } }, { where: `${where}.prune.targetRatio` });
    refused(prune({ name: 'linear', end: 8 }, { kinds: ['heads'] }), { where: `${where}.prune.kinds[0]` });
    refused(prune({ name: 'linear', end: 8 }, { kinds: [] }), { where: `${where}.prune.kinds`, message: expect.stringMatching(/non-empty list of: head, kv-group/) });
    refused(prune({ name: 'linear', end: 8 }, { minKeep: { hidden: 0 } }), { where: `${where}.prune.minKeep.hidden` });
  });

  it('a scheduler the run has not installed is E_PLUGIN_UNKNOWN, naming the field the name is written in', () => {
    const empty = createContainer();
    expect(() => resolveTrainOptions({ ...base, lr: { schedule: 'cosine', lr: 1 } }, where, empty)).toThrow(
      expect.objectContaining({ code: 'E_PLUGIN_UNKNOWN', where: `${where}.lr.schedule`, message: 'unknown scheduler "cosine"', hint: 'no scheduler plugin is installed' }),
    );
    expect(() => resolveTrainOptions(base, where, empty)).toThrow(expect.objectContaining({ code: 'E_PLUGIN_UNKNOWN', where: `${where}.lr`, message: 'unknown scheduler "constant"' }));
    expect(() => resolveTrainOptions({ ...base, steps: 10, prune: { targetRatio: 0.5, schedule: { name: 'exp', end: 8 } } }, where, schedulers)).toThrow(
      expect.objectContaining({ code: 'E_PLUGIN_UNKNOWN', where: `${where}.prune.schedule.name`, hint: expect.stringContaining('cubic, linear, one-shot, wsd') }),
    );
  });

  it('lists every problem at once for the schema part', () => {
    const wheres = optionErrors(trainOptions, { batchSize: 0, data: { seqLen: 1 }, bogus: 1 }, where).map((e) => e.where).sort();
    expect(wheres).toEqual([`${where}.batchSize`, `${where}.bogus`, `${where}.data.seqLen`]);
  });

  it('describes every field in its JSON Schema and marks the fields that name files', () => {
    type Node = { description?: string; path?: boolean; keywords?: string[]; properties?: Record<string, Node> };
    const json = optionsJsonSchema(trainOptions) as { properties: Record<string, Node> };
    for (const [key, field] of Object.entries(json.properties)) expect(field.description, key).toBeTruthy();
    const p = json.properties;
    expect(p.model).toMatchObject({ path: true }); // `model: path` (a string) is a path too
    expect(p.model!.properties!.from).toMatchObject({ path: true });
    expect(p.model!.properties!.architecture).toMatchObject({ path: true });
    expect(p.data!.properties!.train).toMatchObject({ path: true });
    expect(p.data!.properties!.tokenizer).toMatchObject({ path: true, keywords: ['bytes'] });
    expect(p.out).toMatchObject({ path: true });
  });

  it('resolving what a stage already parsed gives the same spec (a pipeline parses first, then prepares)', () => {
    const raw = { ...base, steps: 200, lr: { schedule: 'cosine', lr: 1e-3, warmup: '5%' }, prune: { targetRatio: 0.5, schedule: { name: 'cubic', end: '50%' } } };
    const strip = (s: ReturnType<typeof resolveStage>) => JSON.parse(JSON.stringify(s, (k, v) => (k === 'scheduler' ? v.name : v)));
    expect(strip(resolveStage(trainOptions.parse(raw), where))).toEqual(strip(resolveStage(raw, where)));
  });
});
