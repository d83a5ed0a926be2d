import { describe, expect, it } from 'vitest';
import { createContainer, PluginHost, resolveAllOrNone, Tokens, TopiaryError } from '@topiary/kernel';
import plugin, {
  constantScheduler,
  cosineScheduler,
  cubicScheduler,
  linearScheduler,
  oneShotScheduler,
  wsdScheduler,
} from '../src/index.js';

describe('size schedules (closed forms)', () => {
  const o = cubicScheduler.validate({ from: 0.1, to: 0.75, start: 10, end: 110, every: 10 }, 'train.schedule');

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

  it('one-shot jumps at `at`', () => {
    const s = oneShotScheduler.create(oneShotScheduler.validate({ to: 0.5, at: 7 }, 'x'));
    expect([s(0), s(6), s(7), s(100)]).toEqual([0, 0, 0.5, 0.5]);
  });

  it('rejects bad options naming the field', () => {
    expect(() => cubicScheduler.validate({ to: 0.5, start: 10, end: 10 }, 'stages[0].train.prune.schedule')).toThrow(
      expect.objectContaining({ where: 'stages[0].train.prune.schedule.end' }),
    );
    expect(() => linearScheduler.validate({ to: 1.5, end: 3 }, 's')).toThrow(TopiaryError);
    expect(() => linearScheduler.validate({ to: 0.5, end: 3, evry: 2 }, 's')).toThrow(/unknown field/);
  });
});

describe('learning-rate schedules (closed forms)', () => {
  it('constant with warm-up', () => {
    const s = constantScheduler.create(constantScheduler.validate({ lr: 1e-3, warmup: 4 }, 'lr'));
    expect([0, 1, 2, 3, 4, 99].map(s)).toEqual([0.25e-3, 0.5e-3, 0.75e-3, 1e-3, 1e-3, 1e-3]);
  });

  it('cosine: warm-up then half a cosine to minLr', () => {
    const s = cosineScheduler.create(cosineScheduler.validate({ lr: 1, warmup: 10, total: 110, minLr: 0.1 }, 'lr'));
    expect(s(0)).toBeCloseTo(0.1, 12);
    expect(s(9)).toBeCloseTo(1, 12);
    expect(s(10)).toBeCloseTo(1, 12);
    expect(s(35)).toBeCloseTo(0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * 0.25)), 12);
    expect(s(60)).toBeCloseTo(0.55, 12);
    expect(s(110)).toBeCloseTo(0.1, 12);
    expect(s(500)).toBeCloseTo(0.1, 12);
  });

  it('wsd: warm-up, flat, then decay over the last fraction', () => {
    const o = wsdScheduler.validate({ lr: 2, warmup: 5, total: 100, decay: 0.2 }, 'lr');
    expect(o.decaySteps).toBe(20);
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
  });

  it('rejects inconsistent options', () => {
    expect(() => cosineScheduler.validate({ lr: 1, warmup: 200, total: 100 }, 'lr')).toThrow(/warmup/);
    expect(() => wsdScheduler.validate({ lr: 1, warmup: 50, total: 100, decaySteps: 60 }, 'lr')).toThrow(/exceed/);
    expect(() => cosineScheduler.validate({ lr: 1, total: 10, minLr: 2 }, 'lr')).toThrow(/minLr|exceed/);
    expect(() => constantScheduler.validate({ lr: 0 }, 'lr')).toThrow(expect.objectContaining({ where: 'lr.lr' }));
  });
});

describe('plugin', () => {
  it('registers every scheduler by name under Tokens.Scheduler', () => {
    const container = createContainer();
    const host = new PluginHost(container);
    host.use(plugin);
    host.freeze();
    const names = resolveAllOrNone(container, Tokens.Scheduler).map((s) => s.name).sort();
    expect(names).toEqual(['constant', 'cosine', 'cubic', 'linear', 'one-shot', 'wsd']);
    expect(plugin.provides.schedulers).toHaveLength(6);
  });
});
