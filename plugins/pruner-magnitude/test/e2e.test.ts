import { afterAll, describe, expect, it } from 'vitest';
import type { CausalLM } from '@topiary/kernel';
import { magnitudePruner } from '../src/index.js';
import { e2eReference, evalPerplexity, loadShipped, maskDifferences, pruneContext } from '../../../packages/prune-core/test/e2e-helpers.js';

// Same model, calibration (for OWL only) and eval windows as bench/reference/prune_reference.py e2e.
const CASES: [string, Record<string, unknown>][] = [
  ['magnitude-50', { sparsity: 0.5 }],
  ['magnitude-2:4', { pattern: '2:4' }],
  ['magnitude-50-owl', { sparsity: 0.5, owl: true }],
];

describe('magnitude pruning of stories260K equals the PyTorch reference', () => {
  const models: CausalLM[] = [];
  afterAll(() => models.forEach((m) => m.dispose()));

  for (const [label, raw] of CASES) {
    it(label, async () => {
      const ref = e2eReference.runs[label]!;
      const model = await loadShipped();
      models.push(model);
      const ctx = await pruneContext();
      const { report } = await magnitudePruner.prune(model, magnitudePruner.validate(raw, ''), raw.owl ? ctx : { ...ctx, calibration: undefined });
      const diffs = maskDifferences(model, ref.masks!);
      expect([...diffs.values()].reduce((a, b) => a + b, 0), JSON.stringify(Object.fromEntries(diffs))).toBe(0);
      expect(report.sparsity).toBeCloseTo(ref.measuredSparsity, 6);
      expect(evalPerplexity(model)).toBeCloseTo(ref.perplexity, 2);
    });
  }

  it('without data, OWL is refused naming --calibration', async () => {
    const model = await loadShipped();
    models.push(model);
    const ctx = await pruneContext();
    await expect(magnitudePruner.prune(model, magnitudePruner.validate({ sparsity: 0.5, owl: true }, ''), { ...ctx, calibration: undefined })).rejects.toMatchObject({
      where: '--calibration',
    });
  });

  it('layers the model does not have are refused naming --layers', async () => {
    const model = await loadShipped();
    models.push(model);
    await expect(magnitudePruner.prune(model, magnitudePruner.validate({ sparsity: 0.5, layers: '3-7' }, ''), await pruneContext())).rejects.toMatchObject({
      where: '--layers',
    });
  });
});
