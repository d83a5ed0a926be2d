import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  createContainer,
  EventBus,
  optionErrors,
  optionFields,
  parseOptions,
  PluginHost,
  resolveNamed,
  Tokens,
  type CausalLM,
  type PruneContext,
  type TensorBackend,
} from '@topiary/kernel';
import { loadModel } from '@topiary/model-llama';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import plugin, { ffnNormOptions, ffnNormPruner, type FfnNormOptions } from '../src/index.js';

const here = join(import.meta.dirname, '..');
const shippedModel = join(here, '..', '..', 'assets', 'models', 'stories260K-hf');

function context(): PruneContext {
  return {
    backend: {} as TensorBackend, // a pruner that only reads and masks weights never touches the backend
    events: new EventBus(),
    saliency: () => {
      throw new Error('ffn-norm uses no saliency');
    },
  };
}

const options = (raw: Record<string, unknown>): FfnNormOptions => parseOptions(ffnNormOptions, raw, 'test');

/** The channel's L2 (or L1) norm computed here from scratch: gate row c, up row c, down column c. */
function channelNorms(model: CausalLM, layer: number, norm: 'l1' | 'l2' = 'l2'): number[] {
  const w = (k: string) => model.readWeight(`model.layers.${layer}.mlp.${k}_proj.weight`);
  const gate = w('gate');
  const up = w('up');
  const down = w('down');
  const { dim, hiddenDim } = model.config;
  const f = norm === 'l2' ? (x: number) => x * x : Math.abs;
  return Array.from({ length: hiddenDim }, (_, c) => {
    let s = 0;
    for (let j = 0; j < dim; j++) s += f(gate[c * dim + j]!) + f(up[c * dim + j]!) + f(down[j * hiddenDim + c]!);
    return norm === 'l2' ? Math.sqrt(s) : s;
  });
}

function lowestChannels(norms: number[], n: number): number[] {
  return norms
    .map((v, c) => [v, c] as const)
    .sort((a, b) => a[0] - b[0] || a[1] - b[1])
    .slice(0, n)
    .map(([, c]) => c)
    .sort((a, b) => a - b);
}

function logits(model: CausalLM, ids: number[][]): Float32Array {
  return tf.tidy(() => model.forward(tf.tensor2d(ids, undefined, 'int32')).dataSync() as Float32Array);
}

describe('options schema', () => {
  it('applies the defaults', () => {
    expect(options({ channelRatio: 0.25 })).toEqual({ channelRatio: 0.25, headRatio: 0, norm: 'l2' });
    expect(options({ channelRatio: 0.5, norm: 'l1', layers: '1:4', headRatio: 0.25 })).toEqual({ channelRatio: 0.5, norm: 'l1', layers: '1:4', headRatio: 0.25 });
  });

  it('names the path and says what is wrong', () => {
    const at = (raw: unknown) => Object.fromEntries(optionErrors(ffnNormOptions, raw, 'stages[0].prune').map((e) => [e.where, e.message]));
    expect(at({ channelRatio: 2 })).toEqual({ 'stages[0].prune.channelRatio': 'must be in (0,1), got 2' });
    expect(at({ channelRatio: 0 })).toEqual({ 'stages[0].prune.channelRatio': 'must be in (0,1), got 0' });
    expect(at({})).toEqual({ 'stages[0].prune.channelRatio': 'is required' });
    expect(at({ channelRatio: 'half' })).toEqual({ 'stages[0].prune.channelRatio': 'must be a number, got "half"' });
    expect(at({ channelRatio: 0.2, headRatio: -0.1 })).toEqual({ 'stages[0].prune.headRatio': 'must be in [0,1), got -0.1' });
    expect(at({ channelRatio: 0.2, norm: 'l3' })).toEqual({ 'stages[0].prune.norm': 'must be one of "l2", "l1", got "l3"' });
    expect(at({ channelRatio: 0.2, layers: 'first' })['stages[0].prune.layers']).toMatch(/block range START:END/);
    const typo = optionErrors(ffnNormOptions, { channelRatoi: 0.2 }, 'stages[0].prune');
    const unknown = typo.find((e) => e.where === 'stages[0].prune.channelRatoi')!;
    expect(unknown.message).toBe('unknown field');
    expect(unknown.hint).toContain('channelRatio');
  });

  it('gives the command-line flags and their help lines', () => {
    const fields = optionFields(ffnNormOptions);
    expect(fields.map((f) => f.flag)).toEqual(['--channel-ratio', '--head-ratio', '--norm', '--layers']);
    const byFlag = Object.fromEntries(fields.map((f) => [f.flag, f]));
    expect(byFlag['--channel-ratio']!.required).toBe(true);
    expect(byFlag['--channel-ratio']!.description).toMatch(/FFN channels of each block to remove/);
    expect(byFlag['--head-ratio']!.default).toBe(0);
    expect(byFlag['--norm']!.choices).toEqual(['l2', 'l1']);
    expect(byFlag['--layers']!.valueName).toBe('START:END');
  });
});

describe('plugin', () => {
  it('registers exactly what package.json declares, under the pruner token', () => {
    const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')) as {
      name: string;
      version: string;
      topiary: { plugin: string; provides: { pruners: string[] } };
      peerDependencies: Record<string, string>;
    };
    const manifest = { name: pkg.topiary.plugin, packageName: pkg.name, version: pkg.version, provides: pkg.topiary.provides, kernel: pkg.peerDependencies['@topiary/kernel'] };
    expect(plugin.name).toBe(pkg.topiary.plugin);
    const container = createContainer();
    new PluginHost(container).use(plugin, {}, manifest).freeze(); // throws if register() and provides disagree
    const pruner = resolveNamed(container, Tokens.Pruner, 'ffn-norm', 'pruner');
    expect(pruner).toBe(ffnNormPruner);
    expect(pruner.needsCalibration).toBe(false);
    expect(pruner.granularity).toBe('group');
  });
});

describe('pruning the shipped stories260K', () => {
  let original: CausalLM;
  const ids = [[1, 403, 407, 261, 378, 386, 315, 271, 304, 263, 270, 2], [1, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]];
  beforeAll(async () => {
    await tf.setBackend('cpu');
    original = await loadModel(shippedModel);
  });
  afterAll(() => original?.dispose());

  it('removes the lowest-norm FFN channels of every block, and the parameters they held', async () => {
    const model = original.clone();
    const { dim, hiddenDim, nLayers } = model.config;
    expect([dim, hiddenDim, nLayers]).toEqual([64, 172, 5]);
    const expectedGone = Array.from({ length: nLayers }, (_, l) => lowestChannels(channelNorms(model, l), Math.round(0.25 * hiddenDim)));
    const { model: pruned, report } = await ffnNormPruner.prune(model, options({ channelRatio: 0.25 }), context());

    // 43 of 172 channels per block, each 3 × 64 weights (a gate row, an up row, a down column)
    const perChannel = 3 * dim;
    expect(report.parametersBefore).toBe(original.parameterCount());
    expect(report.parametersBefore - report.parametersAfter).toBe(nLayers * 43 * perChannel);
    expect(pruned.parameterCount()).toBe(report.parametersAfter);
    expect(report.method).toBe('ffn-norm');
    expect(report.details!.perLayer).toEqual(Array.from({ length: nLayers }, (_, layer) => ({ layer, ffnChannels: [172, 129], heads: [8, 8] })));

    // the removed groups are exactly the lowest-norm channels computed independently
    const removed = report.details!.removedGroups as string[];
    for (let l = 0; l < nLayers; l++) {
      const gone = removed.filter((id) => id.startsWith(`layers.${l}.ffn.`)).map((id) => Number(id.split('.').pop())).sort((a, b) => a - b);
      expect(gone, `block ${l}`).toEqual(expectedGone[l]);
      // and what is left is the rest, in order: the pruned gate rows are the kept rows of the original
      const kept = Array.from({ length: hiddenDim }, (_, c) => c).filter((c) => !gone.includes(c));
      const before = original.readWeight(`model.layers.${l}.mlp.gate_proj.weight`);
      const after = pruned.readWeight(`model.layers.${l}.mlp.gate_proj.weight`);
      expect(after.length).toBe(kept.length * dim);
      kept.forEach((c, r) => expect(after.subarray(r * dim, (r + 1) * dim)).toEqual(before.subarray(c * dim, (c + 1) * dim)));
    }
    const widths = pruned.config.layers?.map((l) => l.hiddenDim) ?? Array(nLayers).fill(pruned.config.hiddenDim);
    expect(widths).toEqual([129, 129, 129, 129, 129]);

    // the smaller model still runs, and computes what the masked model computes
    const out = logits(pruned, ids);
    expect(out.length).toBe(2 * ids[0]!.length * 512);
    expect(out.every(Number.isFinite)).toBe(true);
    const masked = logits(model, ids);
    let maxDiff = 0;
    for (let i = 0; i < out.length; i++) maxDiff = Math.max(maxDiff, Math.abs(out[i]! - masked[i]!));
    expect(maxDiff).toBeLessThan(1e-4);
    // and differs from the unpruned model
    const full = logits(original, ids);
    expect(full.some((v, i) => Math.abs(v - out[i]!) > 1e-3)).toBe(true);
    pruned.dispose();
    model.dispose();
  });

  it('l1 norm, a layer range and heads', async () => {
    const model = original.clone();
    const expectedGone = lowestChannels(channelNorms(model, 2, 'l1'), Math.round(0.5 * 172));
    const { model: pruned, report } = await ffnNormPruner.prune(model, options({ channelRatio: 0.5, norm: 'l1', layers: '1:4', headRatio: 0.25 }), context());
    const perLayer = report.details!.perLayer as { layer: number; ffnChannels: number[]; heads: number[] }[];
    expect(perLayer).toEqual([1, 2, 3].map((layer) => ({ layer, ffnChannels: [172, 86], heads: [8, 6] })));
    const removed = report.details!.removedGroups as string[];
    expect(removed.filter((id) => id.startsWith('layers.0.') || id.startsWith('layers.4.'))).toEqual([]);
    const gone = removed.filter((id) => id.startsWith('layers.2.ffn.')).map((id) => Number(id.split('.').pop())).sort((a, b) => a - b);
    expect(gone).toEqual(expectedGone);
    const shapes = pruned.config.layers!.map((l) => [l.hiddenDim, l.nHeads]);
    expect(shapes).toEqual([[172, 8], [86, 6], [86, 6], [86, 6], [172, 8]]);
    // each head is 8 q rows and 8 o columns of width 64; kv heads no query head reads any more go too
    const heads = 3 * 2 * 2 * 8 * 64;
    expect(report.parametersBefore - report.parametersAfter).toBeGreaterThanOrEqual(3 * 86 * 192 + heads);
    expect(logits(pruned, ids).every(Number.isFinite)).toBe(true);
    pruned.dispose();
    model.dispose();
  });

  it('refuses a layer range outside the model', async () => {
    const model = original.clone();
    await expect(ffnNormPruner.prune(model, options({ channelRatio: 0.25, layers: '2:9' }), context())).rejects.toMatchObject({
      code: 'E_USAGE',
      message: expect.stringContaining('5 blocks'),
    });
    model.dispose();
  });
});
