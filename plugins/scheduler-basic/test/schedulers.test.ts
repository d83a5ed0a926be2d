import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  createContainer,
  optionErrors,
  optionFields,
  optionsJsonSchema,
  parseOptions,
  PluginHost,
  resolveAllOrNone,
  resolveNamed,
  Tokens,
  TopiaryError,
  type PluginManifest,
} from '@topiary/kernel';
import plugin, {
  basicSchedulers,
  constantScheduler,
  cosineScheduler,
  cubicScheduler,
  linearScheduler,
  oneShotScheduler,
  wsdDecaySteps,
  wsdScheduler,
} from '../src/index.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  name: string;
  version: string;
  peerDependencies: Record<string, string>;
  topiary: { plugin: string; provides: { schedulers: string[] } };
};

describe('size schedules (closed forms)', () => {
  const o = parseOptions(cubicScheduler.options, { from: 0.1, to: 0.75, start: 10, end: 110, every: 10 }, 'train.schedule');

  it('cubic follows Zhu & Gupta at every mask update and holds between', () => {
    const s = cubicScheduler.create(o);
    expect(s(0)).toBe(0.1);
    expect(s(10)).toBe(0.1);
    for (let t = 10; t <= 110; t += 10) {
      const expected = 0.75 + (0.1 - 0.75) * (1 - (t - 10) / 100) ** 3;
      expect(s(t)).toBeCloseTo(expected, 12);
      if (t < 110) expect(s(t + 9)).toBeCloseTo(expected, 12); // held until the next update
    }
    expect(s(110)).toBe(0.75);
    expect(s(10_000)).toBe(0.75);
    // cubic removes more early: at half time, 1 − 0.5³ = 87.5 % of the way
    expect((s(60) - 0.1) / 0.65).toBeCloseTo(0.875, 12);
  });

  it('linear is the straight line between the same points', () => {
    const s = linearScheduler.create(o);
    expect(s(60)).toBeCloseTo(0.1 + 0.65 * 0.5, 12);
    expect(s(35)).toBeCloseTo(0.1 + 0.65 * 0.2, 12); // quantised to step 30
    expect(s(200)).toBe(0.75);
  });

  it('fills the defaults: from 0, start 0, every 1 (gradual); from 0, at 0 (one-shot)', () => {
    expect(parseOptions(linearScheduler.options, { to: 0.5, end: 4 }, 's')).toEqual({ from: 0, to: 0.5, start: 0, end: 4, every: 1 });
    expect(parseOptions(oneShotScheduler.options, { to: 0.5 }, 's')).toEqual({ from: 0, to: 0.5, at: 0 });
  });

  it('one-shot jumps at `at`', () => {
    const s = oneShotScheduler.create(parseOptions(oneShotScheduler.options, { to: 0.5, at: 7 }, 'x'));
    expect([s(0), s(6), s(7), s(100)]).toEqual([0, 0, 0.5, 0.5]);
  });

  it('rejects bad options naming the field', () => {
    expect(() => parseOptions(cubicScheduler.options, { to: 0.5, start: 10, end: 10 }, 'stages[0].train.prune.schedule')).toThrow(
      expect.objectContaining({
        code: 'E_RECIPE',
        where: 'stages[0].train.prune.schedule.end',
        message: 'must be after start (10), got 10',
        hint: 'end is the step at which the final size is reached',
      }),
    );
    expect(() => parseOptions(linearScheduler.options, { to: 1.5, end: 3 }, 's')).toThrow(
      expect.objectContaining({ where: 's.to', message: 'must be in [0,1], got 1.5' }),
    );
    expect(() => parseOptions(linearScheduler.options, { to: 0.5, end: 3, evry: 2 }, 's')).toThrow(
      expect.objectContaining({ where: 's.evry', message: 'unknown field' }),
    );
    expect(() => parseOptions(linearScheduler.options, { end: 3 }, 's')).toThrow(expect.objectContaining({ where: 's.to', message: 'is required' }));
    expect(() => parseOptions(linearScheduler.options, { to: 0.5, end: 3, every: 0 }, 's')).toThrow(expect.objectContaining({ where: 's.every' }));
    expect(() => parseOptions(oneShotScheduler.options, { to: 0.5, at: 2.5 }, 's')).toThrow(
      expect.objectContaining({ where: 's.at', message: 'must be an integer, got 2.5' }),
    );
  });
});

describe('learning-rate schedules (closed forms)', () => {
  it('constant with warm-up', () => {
    const s = constantScheduler.create(parseOptions(constantScheduler.options, { lr: 1e-3, warmup: 4 }, 'lr'));
    expect([0, 1, 2, 3, 4, 99].map(s)).toEqual([0.25e-3, 0.5e-3, 0.75e-3, 1e-3, 1e-3, 1e-3]);
    expect(parseOptions(constantScheduler.options, { lr: 1 }, 'lr')).toEqual({ lr: 1, warmup: 0 });
  });

  it('cosine: warm-up then half a cosine to minLr', () => {
    const s = cosineScheduler.create(parseOptions(cosineScheduler.options, { lr: 1, warmup: 10, total: 110, minLr: 0.1 }, 'lr'));
    expect(s(0)).toBeCloseTo(0.1, 12);
    expect(s(9)).toBeCloseTo(1, 12);
    expect(s(10)).toBeCloseTo(1, 12);
    expect(s(35)).toBeCloseTo(0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * 0.25)), 12);
    expect(s(60)).toBeCloseTo(0.55, 12);
    expect(s(110)).toBeCloseTo(0.1, 12);
    expect(s(500)).toBeCloseTo(0.1, 12);
  });

  it('wsd: warm-up, flat, then decay over the last fraction', () => {
    const o = parseOptions(wsdScheduler.options, { lr: 2, warmup: 5, total: 100, decay: 0.2 }, 'lr');
    expect(wsdDecaySteps(o)).toBe(20);
    expect(o.shape).toBe('linear');
    const s = wsdScheduler.create(o);
    expect(s(4)).toBeCloseTo(2, 12);
    expect(s(50)).toBe(2);
    expect(s(79)).toBe(2);
    expect(s(80)).toBe(2);
    expect(s(90)).toBeCloseTo(1, 12);
    expect(s(100)).toBeCloseTo(0, 12);
    const sq = wsdScheduler.create({ ...o, shape: 'sqrt' });
    expect(sq(85)).toBeCloseTo(2 * (1 - Math.sqrt(0.25)), 12);
    const cs = wsdScheduler.create({ ...o, shape: 'cosine', minLr: 0.5 });
    expect(cs(90)).toBeCloseTo(0.5 + 1.5 * 0.5, 12);
    // decay defaults to 0.2 of total; decaySteps gives the phase in steps instead
    expect(wsdDecaySteps(parseOptions(wsdScheduler.options, { lr: 1, total: 50 }, 'lr'))).toBe(10);
    const steps = wsdScheduler.create(parseOptions(wsdScheduler.options, { lr: 2, total: 100, decaySteps: 40 }, 'lr'));
    expect(steps(60)).toBe(2);
    expect(steps(80)).toBeCloseTo(1, 12);
  });

  it('rejects inconsistent options', () => {
    expect(() => parseOptions(cosineScheduler.options, { lr: 1, warmup: 200, total: 100 }, 'lr')).toThrow(
      expect.objectContaining({ where: 'lr.warmup', message: 'warmup (200) is longer than total (100)' }),
    );
    expect(() => parseOptions(wsdScheduler.options, { lr: 1, warmup: 50, total: 100, decaySteps: 60 }, 'lr')).toThrow(
      expect.objectContaining({ where: 'lr.decaySteps', message: 'warmup (50) + decay (60) steps exceed total (100)' }),
    );
    expect(() => parseOptions(wsdScheduler.options, { lr: 1, warmup: 90, total: 100 }, 'lr')).toThrow(expect.objectContaining({ where: 'lr.decay' }));
    expect(() => parseOptions(wsdScheduler.options, { lr: 1, total: 100, decay: 0.1, decaySteps: 10 }, 'lr')).toThrow(
      expect.objectContaining({ where: 'lr.decaySteps', message: 'give decay (a fraction) or decaySteps, not both' }),
    );
    expect(() => parseOptions(wsdScheduler.options, { lr: 1, total: 100, shape: 'exp' }, 'lr')).toThrow(
      expect.objectContaining({ where: 'lr.shape', message: 'must be one of "linear", "cosine", "sqrt", got "exp"' }),
    );
    expect(() => parseOptions(cosineScheduler.options, { lr: 1, total: 10, minLr: 2 }, 'lr')).toThrow(
      expect.objectContaining({ where: 'lr.minLr', message: 'must not exceed lr (1), got 2' }),
    );
    expect(() => parseOptions(constantScheduler.options, { lr: 0 }, 'lr')).toThrow(expect.objectContaining({ where: 'lr.lr', message: 'must be in (0,∞), got 0' }));
    expect(() => parseOptions(constantScheduler.options, {}, 'lr')).toThrow(expect.objectContaining({ where: 'lr.lr', message: 'is required' }));
    // every problem at once
    const all = optionErrors(cosineScheduler.options, { lr: -1, warmup: 1.5, bogus: true }, 'lr').map((e) => e.where).sort();
    expect(all).toEqual(['lr.bogus', 'lr.lr', 'lr.total', 'lr.warmup']);
    expect(optionErrors(cosineScheduler.options, {}, 'lr').every((e) => e instanceof TopiaryError)).toBe(true);
  });
});

describe('options as declared schemas', () => {
  it('every field of every schedule carries a description, and defaults show in the JSON Schema', () => {
    for (const s of basicSchedulers) {
      const json = optionsJsonSchema(s.options) as { properties: Record<string, { description?: string; default?: unknown }>; additionalProperties: boolean };
      expect(json.additionalProperties, s.name).toBe(false);
      for (const [key, field] of Object.entries(json.properties)) expect(field.description, `${s.name}.${key}`).toBeTruthy();
    }
    const cubic = optionsJsonSchema(cubicScheduler.options) as { properties: Record<string, { default?: unknown }>; required: string[] };
    expect(cubic.properties.every!.default).toBe(1);
    expect(cubic.required.sort()).toEqual(['end', 'to']);
    const wsd = optionFields(wsdScheduler.options);
    expect(wsd.find((f) => f.key === 'shape')).toMatchObject({ flag: '--shape', choices: ['linear', 'cosine', 'sqrt'], default: 'linear' });
    expect(wsd.find((f) => f.key === 'decaySteps')).toMatchObject({ flag: '--decay-steps', required: false });
    expect(wsd.find((f) => f.key === 'lr')).toMatchObject({ required: true });
  });
});

describe('plugin', () => {
  it('registers exactly the schedulers its package.json provides, by name under Tokens.Scheduler', () => {
    const container = createContainer();
    const manifest: PluginManifest = { name: pkg.topiary.plugin, packageName: pkg.name, version: pkg.version, provides: pkg.topiary.provides, kernel: pkg.peerDependencies['@topiary/kernel'] };
    const host = new PluginHost(container);
    host.use(plugin, {}, manifest); // use() checks the kernel range, freeze() checks register() against "topiary".provides
    host.freeze();
    const registered = resolveAllOrNone(container, Tokens.Scheduler);
    const names = registered.map((s) => s.name).sort();
    expect(names).toEqual(['constant', 'cosine', 'cubic', 'linear', 'one-shot', 'wsd']);
    expect(registered).toHaveLength(pkg.topiary.provides.schedulers.length);
    expect([...pkg.topiary.provides.schedulers].sort()).toEqual(names);
    expect(resolveNamed(container, Tokens.Scheduler, 'cosine', 'scheduler').kind).toBe('lr');
    expect(resolveAllOrNone(createContainer(), Tokens.Scheduler)).toEqual([]); // nothing leaks into another run
  });
});
