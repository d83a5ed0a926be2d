import { afterAll, describe, expect, it } from 'vitest';
import { parseOptions, type CausalLM } from '@topiary/kernel';
import { magnitudePruner } from '../src/index.js';
import { e2eReference, evalPerplexity, loadShipped, maskDifferences, pruneContext } from '../../../packages/prune-core/test/e2e-helpers.js';

// Same model, calibration (for OWL only) and eval windows as bench/reference/prune_reference.py e2e, whose
// unstructured magnitude cases compare per output row (scope: row). The default, one threshold per weight matrix,
// is checked against the original code's procedure in test/protocol.
const CASES: [string, Record<string, unknown>][] = [
  ['magnitude-50', { sparsity: 0.5, scope: 'row' }],
  ['magnitude-2:4', { pattern: '2:4' }],
  ['magnitude-50-owl', { sparsity: 0.5, owl: true, scope: 'row' }],
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
      const { report } = await magnitudePruner.prune(model, parseOptions(magnitudePruner.options, raw, ''), raw.owl ? ctx : { ...ctx, calibration: undefined });
      const diffs = maskDifferences(model, ref.masks!);
      expect([...diffs.values()].reduce((a, b) => a + b, 0), JSON.stringify(Object.fromEntries(diffs))).toBe(0);
      expect(report.sparsity).toBeCloseTo(ref.measuredSparsity, 6);
      expect(evalPerplexity(model)).toBeCloseTo(ref.perplexity, 2);
    });
  }

  it('the default compares within each weight matrix (the papers’ magnitude baseline): half of every matrix, rows uneven', async () => {
    expect(parseOptions(magnitudePruner.options, { sparsity: 0.5 }, '').scope).toBe('layer');
    const model = await loadShipped();
    models.push(model);
    const name = 'model.layers.0.mlp.gate_proj.weight';
    const original = Float32Array.from(model.readWeight(name));
    await magnitudePruner.prune(model, parseOptions(magnitudePruner.options, { sparsity: 0.5 }, ''), { ...(await pruneContext()), calibration: undefined });
    const w = model.readWeight(name);
    const lin = model.linears(0).find((l) => l.param === name)!;
    let zeros = 0;
    let largestDropped = 0;
    let smallestKept = Infinity;
    for (let i = 0; i < w.length; i++) {
      if (w[i] === 0) {
        zeros++;
        largestDropped = Math.max(largestDropped, Math.abs(original[i]!));
      } else smallestKept = Math.min(smallestKept, Math.abs(original[i]!));
    }
    expect(zeros).toBe(Math.floor(w.length * 0.5));
    expect(largestDropped).toBeLessThanOrEqual(smallestKept); // one threshold for the whole matrix
    const perRow = Array.from({ length: lin.outFeatures }, (_, r) => w.subarray(r * lin.inFeatures, (r + 1) * lin.inFeatures).reduce((n, v) => n + (v === 0 ? 1 : 0), 0));
    expect(new Set(perRow).size).toBeGreaterThan(1); // not per row
  });

  it('without data, OWL is refused naming --calibration', async () => {
    const model = await loadShipped();
    models.push(model);
    const ctx = await pruneContext();
    await expect(magnitudePruner.prune(model, parseOptions(magnitudePruner.options, { sparsity: 0.5, owl: true }, ''), { ...ctx, calibration: undefined })).rejects.toMatchObject({
      where: '--calibration',
    });
  });

  it('layers the model does not have are refused naming --layers', async () => {
    const model = await loadShipped();
    models.push(model);
    await expect(magnitudePruner.prune(model, parseOptions(magnitudePruner.options, { sparsity: 0.5, layers: '3-7' }, ''), await pruneContext())).rejects.toMatchObject({
      where: '--layers',
    });
  });
});
