import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { TopiaryError } from '@topiary/kernel';
import { checkSchedule, crossEntropyLoss, distillationKl, learningRate, recoveryLoss } from '../src/index.js';

tf.setBackend('cpu');

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
  it('rejects bad schedules naming the field', () => {
    expect(() => checkSchedule({ ...s, steps: 0 })).toThrow(TopiaryError);
    expect(() => checkSchedule({ ...s, warmup: 12 })).toThrow(/warmup/);
    expect(() => checkSchedule({ ...s, lr: -1 })).toThrow(/learning rate/);
  });
});

// Closed forms computed in float64 by hand-written JS, independent of tfjs.
function logSoftmax(z: number[]): number[] {
  const m = Math.max(...z);
  const lse = m + Math.log(z.reduce((a, x) => a + Math.exp(x - m), 0));
  return z.map((x) => x - lse);
}

describe('recovery losses', () => {
  const student = [
    [1, 2, 0.5],
    [0, -1, 3],
  ];
  const teacher = [
    [2, 1, 0],
    [0.5, 0.5, 2],
  ];
  const targets = [1, 2];
  const S = (): tf.Tensor2D => tf.tensor2d(student);
  const Tt = (): tf.Tensor2D => tf.tensor2d(teacher);
  const y = (): tf.Tensor1D => tf.tensor1d(targets, 'int32');

  const ce = (student.map((z, i) => -logSoftmax(z)[targets[i]!]!).reduce((a, b) => a + b) / 2);
  const kl = (T: number): number =>
    student
      .map((z, i) => {
        const ls = logSoftmax(z.map((x) => x / T));
        const lt = logSoftmax(teacher[i]!.map((x) => x / T));
        return lt.reduce((a, l, k) => a + Math.exp(l) * (l - ls[k]!), 0);
      })
      .reduce((a, b) => a + b) / 2;

  it('cross-entropy matches the closed form', () => {
    expect(crossEntropyLoss(S(), y()).dataSync()[0]).toBeCloseTo(ce, 5);
  });
  it('KL with temperature matches the closed form and is 0 against itself', () => {
    expect(distillationKl(S(), Tt(), 2).dataSync()[0]).toBeCloseTo(kl(2), 5);
    expect(distillationKl(S(), S(), 3).dataSync()[0]).toBeCloseTo(0, 6);
  });
  it('mixes α·T²·KL + (1 − α)·CE', () => {
    const got = recoveryLoss(S(), y(), Tt(), { temperature: 2, alpha: 0.3 }).dataSync()[0]!;
    expect(got).toBeCloseTo(0.3 * 4 * kl(2) + 0.7 * ce, 5);
    expect(recoveryLoss(S(), y(), null, { temperature: 2, alpha: 0.3 }).dataSync()[0]).toBeCloseTo(ce, 5);
  });
  it('the distillation gradient is (p_s − p_t)·T/… : zero when student equals teacher', () => {
    const g = tf.grad((z) => distillationKl(z as tf.Tensor2D, Tt(), 2))(Tt());
    expect(Math.max(...Array.from(g.dataSync()).map(Math.abs))).toBeLessThan(1e-6);
  });
});
