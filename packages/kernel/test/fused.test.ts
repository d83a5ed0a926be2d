import { describe, expect, it } from 'vitest';
import { checkSoftmaxCrossEntropyInputs, FusedKernel } from '../src/index.js';

describe('FusedKernel.softmaxCrossEntropy input check (shared by the backends)', () => {
  it('accepts float32 logits [n, vocab] with int32 targets [n]', () => {
    expect(() => checkSoftmaxCrossEntropyInputs({ dtype: 'float32', shape: [3, 7] }, { dtype: 'int32', shape: [3] })).not.toThrow();
  });

  it('refuses other dtypes, ranks or row counts, naming what it got', () => {
    const bad: Array<[{ dtype: string; shape: number[] }, { dtype: string; shape: number[] }]> = [
      [{ dtype: 'int32', shape: [3, 7] }, { dtype: 'int32', shape: [3] }],
      [{ dtype: 'float32', shape: [3, 7] }, { dtype: 'float32', shape: [3] }],
      [{ dtype: 'float32', shape: [21] }, { dtype: 'int32', shape: [3] }],
      [{ dtype: 'float32', shape: [3, 7] }, { dtype: 'int32', shape: [4] }],
    ];
    for (const [z, t] of bad) {
      expect(() => checkSoftmaxCrossEntropyInputs(z, t)).toThrow(
        `${FusedKernel.softmaxCrossEntropy}: expected float32 logits [n, vocab] and int32 targets [n], got ${z.dtype} [${z.shape}] and ${t.dtype} [${t.shape}]`,
      );
    }
  });
});
