import { afterAll, describe, expect, it } from 'vitest';
import { EventBus, parseOptions, type CausalLM, type ProgressEvent } from '@topiary/kernel';
import { isExactNM, sparsityTable } from '@topiary/prune-core';
import { wandaPruner } from '../src/index.js';
import { e2eReference, evalPerplexity, loadShipped, maskDifferences, pruneContext } from '../../../packages/prune-core/test/e2e-helpers.js';

// stories260K, 16 calibration windows × 64 tokens (seed 0) and 16 eval windows, the same on both sides; the
// reference is bench/reference/prune_reference.py (PyTorch) run once on bench/reference/fixtures/prune_calibration.json.
const CASES: [string, Record<string, unknown>][] = [
  ['wanda-50', { sparsity: 0.5 }],
  ['wanda-2:4', { pattern: '2:4' }],
  ['wanda-4:8', { pattern: '4:8' }],
  ['wanda-50-owl', { sparsity: 0.5, owl: true }],
];

describe('Wanda on stories260K equals the PyTorch reference (sequential, calibration through pruned blocks)', () => {
  const models: CausalLM[] = [];
  afterAll(() => models.forEach((m) => m.dispose()));

  it('dense perplexity matches the reference forward', async () => {
    const model = await loadShipped();
    models.push(model);
    expect(evalPerplexity(model)).toBeCloseTo(e2eReference.dense, 3);
  });

  for (const [label, raw] of CASES) {
    it(label, async () => {
      const ref = e2eReference.runs[label]!;
      const model = await loadShipped();
      models.push(model);
      const events = new EventBus();
      const progress: ProgressEvent[] = [];
      events.on('progress', (e) => progress.push(e));
      const { report } = await wandaPruner.prune(model, parseOptions(wandaPruner.options, raw, ''), await pruneContext(events));
      const diffs = maskDifferences(model, ref.masks!);
      const total = [...diffs.values()].reduce((a, b) => a + b, 0);
      expect(total, `mask differences per layer: ${JSON.stringify(Object.fromEntries(diffs))}`).toBe(0);
      expect(report.sparsity).toBeCloseTo(ref.measuredSparsity, 6);
      expect(evalPerplexity(model)).toBeCloseTo(ref.perplexity, 2);
      expect(progress.filter((e) => e.task === 'prune:wanda').map((e) => e.current)).toEqual([1, 2, 3, 4, 5]);
      if (label.endsWith('owl')) {
        const owl = report.details!.owl as { blockSparsity: number[]; outlierRatios: number[] };
        owl.blockSparsity.forEach((s, i) => expect(s).toBeCloseTo(ref.layerSparsity[i]!, 9));
      }
      if (label === 'wanda-2:4') {
        for (const lin of model.linears()) {
          const keep = Uint8Array.from(model.readWeight(lin.param), (v) => (v === 0 ? 0 : 1));
          expect(isExactNM(keep, lin.outFeatures, lin.inFeatures, 2, 4), lin.param).toBe(true);
        }
        expect(sparsityTable(report)).toContain('50.00%');
      }
    });
  }
});
