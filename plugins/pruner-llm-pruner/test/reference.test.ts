/**
 * Reference fidelity: group importances of the shipped stories260K model on the committed calibration windows
 * match an independent float64 PyTorch computation (bench/reference/structured_reference.py), and the same
 * groups are chosen for the same targets.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseOptions } from '@topiary/kernel';
import { loadModel, type LlamaModel } from '@topiary/model-llama';
import { selectGroups } from '@topiary/structured-core';
import { parseLayerSpec } from '@topiary/structured-core';
import { llmPruner, scoreGroups } from '../src/index.js';
import { calibration, pruneContext, shippedModel, useFastBackend } from './helpers.js';

interface Reference {
  parameters: number;
  importance: Record<string, Record<string, number>>;
  selections: { saliency: string; aggregation: string; ratio: number; ranking: 'per-layer' | 'global'; layers: string; remove: string[] }[];
}
const ref = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'reference.json'), 'utf8')) as Reference;

describe('LLM-Pruner importances vs the PyTorch reference (stories260K)', () => {
  let model: LlamaModel;
  const { windows, batchSize } = calibration();
  const ctx = pruneContext(windows);
  const cache = new Map<string, Map<string, number>>();

  async function scores(saliency: string, aggregation: string): Promise<Map<string, number>> {
    const key = `${saliency}/${aggregation}`;
    if (!cache.has(key)) {
      const opts = parseOptions(llmPruner.options, { ratio: 0.2, saliency, aggregation, layers: '0:5', batchSize }, '');
      const s = await scoreGroups(model, opts, ctx);
      cache.set(key, new Map(s.groups.map((g, i) => [g.id, s.importance[i]!])));
    }
    return cache.get(key)!;
  }

  beforeAll(async () => {
    await useFastBackend();
    model = await loadModel(shippedModel);
    expect(model.parameterCount()).toBe(ref.parameters);
  });

  for (const key of Object.keys(ref.importance)) {
    it(`${key}: every kv-group and FFN channel importance matches`, async () => {
      const [saliency, aggregation] = key.split('/') as [string, string];
      const got = await scores(saliency, aggregation);
      const want = ref.importance[key]!;
      expect(got.size).toBe(Object.keys(want).length);
      const scale = Math.max(...Object.values(want).map(Math.abs));
      let worst = 0;
      for (const [id, w] of Object.entries(want)) {
        const g = got.get(id);
        expect(g, id).toBeDefined();
        // float32 gradients vs float64: relative to the value, with a floor relative to the largest score
        worst = Math.max(worst, Math.abs(g! - w) / (Math.abs(w) + 1e-3 * scale));
      }
      expect(worst).toBeLessThan(2e-3);
    });
  }

  for (const sel of ref.selections) {
    it(`chooses the same groups: ${sel.saliency}/${sel.aggregation} ratio ${sel.ratio} ${sel.ranking} layers ${sel.layers}`, async () => {
      const got = await scores(sel.saliency, sel.aggregation);
      const groups = model.groups(['kv-group', 'ffn-channel']);
      const spec = parseLayerSpec(sel.layers);
      const chosen = selectGroups({
        candidates: groups.map((group) => ({ group, importance: got.get(group.id)! })),
        totalParameters: model.parameterCount(),
        ratio: sel.ratio,
        ranking: sel.ranking,
        range: { start: spec.start, end: spec.end! },
      });
      expect([...chosen.remove].sort()).toEqual(sel.remove);
    });
  }
});
