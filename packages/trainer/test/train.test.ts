import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { TopiaryError } from '@topiary/kernel';
import { loadModel } from '@topiary/model-llama';
import { linearSparsity } from '@topiary/scheduler-basic';
import { listCheckpoints, loadLatestCheckpoint, train } from '../src/index.js';
import { metrics, repoRoot, resolveStage, smallCorpus, spec, tempDir, tok512, tinyModel, useCpu } from './helpers.js';

beforeAll(useCpu);

const pruning = { targetRatio: 0.5, schedule: { name: 'linear', start: 2, end: 8, every: 2 }, slimAt: 0.3 };

describe('pruning-aware pretraining (tiny, real text)', () => {
  it('follows the size schedule within one group, slims, reaches the target and exports the architecture', async () => {
    const dir = tempDir();
    const out = join(dir, 'run');
    const result = await train(spec(out, smallCorpus(dir), { prune: pruning }));
    const m = metrics(out);
    const source = result.sourceParams;
    const target = Math.round(source * 0.5);
    const schedule = linearSparsity({ from: 0, to: 1 - target / source, start: 2, end: 8, every: 2 });
    const prunes = m.filter((r) => r.type === 'prune');
    expect(prunes.length).toBeGreaterThanOrEqual(3);
    for (const p of prunes) {
      const expected = Math.max(target, Math.round(source * (1 - schedule(p.step as number))));
      expect(p.scheduleTarget).toBe(expected);
      const params = p.params as number;
      // at or below the schedule, by less than the largest group: a hidden channel = its embedding column (512)
      // + per layer 2 norm weights, q/k/v columns and an o row (4·32) and gate/up columns and a down row (3·64),
      // + the final norm weight = 1157 < this bound
      expect(params).toBeLessThanOrEqual(expected);
      expect(expected - params).toBeLessThan(32 + 2 * (2 + 4 * 8 * 4 + 3 * 64) + 512);
    }
    // pruned only on mask-update steps (every 2 from 2 to 8)
    for (const p of prunes) expect([4, 6, 8]).toContain(p.step);
    // slimmed: physical size follows; the final model is the target size within one group
    const slims = m.filter((r) => r.type === 'architecture' && r.reason === 'slim');
    expect(slims.length).toBeGreaterThan(0);
    for (const s of slims) expect(s.physicalParams).toBe(s.params);
    expect(result.params).toBeLessThanOrEqual(target);
    expect(result.params).toBe(result.architecture.params);
    const trains = m.filter((r) => r.type === 'train');
    expect(trains).toHaveLength(12);
    expect(trains.at(-1)!.physicalParams).toBe(result.params);
    // exported architecture loads back with per-layer sizes
    const arch = JSON.parse(readFileSync(join(out, 'architecture.json'), 'utf8'));
    expect(arch.params).toBe(result.params);
    const model = await loadModel(join(out, 'model'));
    expect(model.parameterCount()).toBe(result.params);
    expect(model.config.nLayers).toBe(2);
    model.dispose();
    expect(Number.isFinite(result.validPerplexity)).toBe(true);
  });
});

describe('checkpoints and resume', () => {
  it('resumes after an interruption with the same loss curve (within 1e-6) as an uninterrupted run', async () => {
    const dir = tempDir();
    const corpus = smallCorpus(dir);
    const full = join(dir, 'full');
    await train(spec(full, corpus, { prune: pruning }));
    const cut = join(dir, 'cut');
    // "crash" after 7 steps: the last checkpoint is step 4 (every 4), the metrics of steps 4..6 are lost work
    const partial = await train(spec(cut, corpus, { prune: pruning }), { stopAfter: 7 });
    expect(partial.finished).toBe(false);
    expect(listCheckpoints(join(cut, 'checkpoints'))[0]!.step).toBe(4);
    const resumed = await train(spec(cut, corpus, { prune: pruning }));
    expect(resumed.resumedFrom).toBe(4);
    const curve = (out: string) => metrics(out).filter((r) => r.type === 'train').map((r) => [r.step, r.loss, r.params] as const);
    const a = curve(full);
    const b = curve(cut);
    expect(b.map((x) => x[0])).toEqual(a.map((x) => x[0]));
    for (let i = 0; i < a.length; i++) {
      expect(Math.abs((a[i]![1] as number) - (b[i]![1] as number))).toBeLessThanOrEqual(1e-6);
      expect(b[i]![2]).toBe(a[i]![2]);
    }
    expect(readFileSync(join(cut, 'architecture.json'), 'utf8')).toBe(readFileSync(join(full, 'architecture.json'), 'utf8'));
  });

  it('stops on an injected NaN naming the step and tensor, and keeps the last good checkpoint', async () => {
    const dir = tempDir();
    const out = join(dir, 'run');
    const bad = 'model.layers.1.mlp.down_proj.weight';
    const run = train(spec(out, smallCorpus(dir)), {
      hooks: {
        afterUpdate(step, model) {
          if (step === 5) {
            const w = model.readWeight(bad).slice();
            w[3] = Number.NaN;
            model.writeWeight(bad, w);
          }
        },
      },
    });
    await expect(run).rejects.toThrow(TopiaryError);
    await expect(run).rejects.toMatchObject({ code: 'E_NUMERIC', where: `step 5: the weight ${bad}` });
    const cks = listCheckpoints(join(out, 'checkpoints'));
    expect(cks.map((c) => c.step)).toEqual([4]);
    const ck = loadLatestCheckpoint(join(out, 'checkpoints'))!;
    for (const w of ck.weights.values()) expect(w.every(Number.isFinite)).toBe(true);
    const fault = metrics(out).find((r) => r.type === 'fault');
    expect(fault?.message).toMatch(/step 5/);
    expect(fault?.lastCheckpoint).toBe(4);
    await expect(run).rejects.toMatchObject({ message: expect.stringMatching(/the last good checkpoint is step 4/) });
  });
});

describe('continued pretraining of a pretrained source', () => {
  const source = join(repoRoot, 'assets', 'models', 'stories260K', 'stories260K.bin');

  it('held-out text from its own file; distillation from the source: α = 1 against itself starts at KL = 0, and the plain and distilled runs differ', async () => {
    const dir = tempDir();
    const text = readFileSync(smallCorpus(dir, 30_000), 'utf8');
    const train_ = join(dir, 'train.txt');
    const valid = join(dir, 'valid.txt');
    writeFileSync(train_, text.slice(0, 24_000));
    writeFileSync(valid, text.slice(24_000));
    const base = { model: { from: source }, data: { train: train_, valid, tokenizer: tok512, seqLen: 32 }, batchSize: 4, steps: 3, lr: { schedule: 'constant', lr: 1e-3 }, eval: { every: 3, batches: 2 } };
    const plain = await train(resolveStage({ ...base, out: join(dir, 'plain') }, 'train'));
    const kd = await train(resolveStage({ ...base, out: join(dir, 'kd'), distill: { from: 'source', alpha: 1, temperature: 2 } }, 'train'));
    const losses = (out: string) => metrics(out).filter((r) => r.type === 'train').map((r) => r.loss as number);
    // the student starts as the teacher: the pure-distillation loss of the first step is KL(p ‖ p) = 0
    expect(Math.abs(losses(join(dir, 'kd'))[0]!)).toBeLessThan(1e-5);
    expect(losses(join(dir, 'plain'))[0]!).toBeGreaterThan(0.5);
    // the held-out curve starts at the source (step −1) and is measured on valid.txt only
    const evals = (out: string) => metrics(out).filter((r) => r.type === 'eval');
    expect(evals(join(dir, 'plain'))[0]).toMatchObject({ step: -1, tokens: 0 });
    expect(evals(join(dir, 'plain'))[0]!.validLoss).toBeCloseTo(evals(join(dir, 'kd'))[0]!.validLoss as number, 10);
    expect(plain.validLoss).not.toBe(kd.validLoss);
  });

  it('refuses distill: source without a source model, and a tokenizer that differs from the source folder\'s own', async () => {
    const dir = tempDir();
    expect(() => spec(join(dir, 'r'), smallCorpus(dir), { distill: { from: 'source' } })).toThrow(
      expect.objectContaining({ where: 'stages[0].train.distill.from', message: expect.stringMatching(/does not start from a model/) }),
    );
    // an HF folder whose tokenizer.json is not the tokenizer given: same size, different tokens
    const hf = join(repoRoot, 'assets', 'models', 'stories260K-hf');
    const folder = join(dir, 'model');
    mkdirSync(folder);
    for (const f of readdirSync(hf)) copyFileSync(join(hf, f), join(folder, f));
    const same = resolveStage({ model: { from: folder }, data: { train: smallCorpus(dir), tokenizer: tok512, seqLen: 16 }, batchSize: 4, steps: 1, out: join(dir, 'ok') }, 'train');
    expect((await train(same)).steps).toBe(1); // the same vocabulary in another format is accepted
    const tj = JSON.parse(readFileSync(join(folder, 'tokenizer.json'), 'utf8'));
    const vocab = tj.model.vocab as Record<string, number>;
    const [a, b] = ['▁the', '▁and']; // two tokens every story uses, swapped
    [vocab[a!], vocab[b!]] = [vocab[b!]!, vocab[a!]!];
    writeFileSync(join(folder, 'tokenizer.json'), JSON.stringify(tj));
    const s = resolveStage({ model: { from: folder }, data: { train: smallCorpus(dir), tokenizer: tok512, seqLen: 16 }, batchSize: 4, steps: 1, out: join(dir, 'r') }, 'train');
    await expect(train(s)).rejects.toMatchObject({ code: 'E_CONFIG', where: 'data.tokenizer', message: expect.stringMatching(/does not match the source model's/) });
  });
});

describe('bad input is refused at the door', () => {
  it('target larger than the source', async () => {
    const dir = tempDir();
    const s = spec(join(dir, 'r'), smallCorpus(dir), { prune: { targetParams: 10_000_000, schedule: { name: 'linear', end: 8 } } });
    await expect(train(s)).rejects.toMatchObject({ code: 'E_RECIPE', message: expect.stringMatching(/not smaller than the source/) });
  });

  it('a schedule that ends after the token budget', () => {
    expect(() => spec('/tmp/x', '/tmp/y', { steps: 10, prune: { targetRatio: 0.5, schedule: { name: 'cubic', end: 50 } } })).toThrow(
      expect.objectContaining({ where: 'stages[0].train.prune.schedule.end', message: expect.stringMatching(/after the token budget/) }),
    );
  });

  it('a corpus smaller than one batch', async () => {
    const dir = tempDir();
    const tiny = join(dir, 'tiny.txt');
    writeFileSync(tiny, 'Once upon a time there was a cat. '.repeat(8));
    const s = resolveStage(
      { model: tinyModel, data: { train: tiny, tokenizer: tok512, seqLen: 16, validFraction: 0 }, batchSize: 64, steps: 2, out: join(dir, 'r') },
      'train',
    );
    await expect(train(s)).rejects.toMatchObject({ code: 'E_DATA', message: expect.stringMatching(/fewer than one batch/) });
    expect(existsSync(join(dir, 'r', 'checkpoints'))).toBe(false);
  });

  it('unknown fields and unknown plugins name the field', async () => {
    expect(() => spec('/tmp/x', '/tmp/y', { prune: { targetRatio: 0.5, schedule: { name: 'linear', end: 8 }, kinds: ['heads'] } })).toThrow(
      expect.objectContaining({ where: 'stages[0].train.prune.kinds[0]' }),
    );
    expect(() => spec('/tmp/x', '/tmp/y', { batchsize: 3 })).toThrow(expect.objectContaining({ where: 'stages[0].train.batchsize' }));
    const dir = tempDir();
    const s = spec(join(dir, 'r'), smallCorpus(dir), { prune: { targetRatio: 0.5, schedule: { name: 'linear', end: 8 }, saliency: 'nope' } });
    await expect(train(s)).rejects.toMatchObject({ code: 'E_PLUGIN_UNKNOWN', message: expect.stringMatching(/unknown saliency "nope"/) });
  });
});
