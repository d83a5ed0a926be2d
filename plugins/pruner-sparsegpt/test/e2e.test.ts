import { afterAll, describe, expect, it } from 'vitest';
import type { CausalLM } from '@topiary/kernel';
import { isExactNM } from '@topiary/prune-core';
import { sparsegptPruner } from '../src/index.js';
import { e2eReference, evalPerplexity, loadShipped, pruneContext } from '../../../packages/prune-core/test/e2e-helpers.js';

// The bar: perplexity within 1 % of the PyTorch reference on the same model, calibration and eval windows.
const CASES: [string, Record<string, unknown>][] = [
  ['sparsegpt-50', { sparsity: 0.5 }],
  ['sparsegpt-2:4', { pattern: '2:4' }],
  ['sparsegpt-50-owl', { sparsity: 0.5, owl: true }],
];

describe('SparseGPT on stories260K matches the PyTorch reference', () => {
  const models: CausalLM[] = [];
  afterAll(() => models.forEach((m) => m.dispose()));

  for (const [label, raw] of CASES) {
    it(label, async () => {
      const ref = e2eReference.runs[label]!;
      const model = await loadShipped();
      models.push(model);
      const { report } = await sparsegptPruner.prune(model, sparsegptPruner.validate(raw, ''), await pruneContext());
      const ppl = evalPerplexity(model);
      expect(Math.abs(ppl / ref.perplexity - 1)).toBeLessThan(0.01);
      expect(report.sparsity).toBeCloseTo(ref.measuredSparsity, 3);
      expect(ppl).toBeLessThan(e2eReference.runs[label.replace('sparsegpt', 'magnitude')]!.perplexity); // reconstruction beats plain magnitude
      if (raw.pattern === '2:4') {
        for (const lin of model.linears()) {
          const keep = Uint8Array.from(model.readWeight(lin.param), (v) => (v === 0 ? 0 : 1));
          expect(isExactNM(keep, lin.outFeatures, lin.inFeatures, 2, 4), lin.param).toBe(true);
        }
      }
    });
  }
});
