/** Issue 20 ("Out"): dtype kept on save (bf16/f16), --dtype choice, sparsity metadata, padding to a uniform model. */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  LlamaModel,
  bf16ToFloat,
  floatToBf16,
  loadModel,
  loadedDtype,
  padToUniform,
  readSafetensorsIndex,
  saveModel,
  analyseSparsity,
  TOPIARY_SPARSITY_KEY,
} from '../src/index.js';
import { maxAbsDiff, stories260KBin, stories260KHf } from './paths.js';
import { logitsOf, weightsOf } from './model-helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'model-llama-export-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await tf.setBackend('cpu');
});

function dataBytes(dir: string): Buffer {
  const file = join(dir, 'model.safetensors');
  const n = Number(readFileSync(file).readBigUInt64LE(0));
  return readFileSync(file).subarray(8 + n);
}
function configJson(dir: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
}

describe('bfloat16 conversion', () => {
  const bits = (x: number): number => floatToBf16(x);
  test('round to nearest, ties to even', () => {
    expect(bits(1)).toBe(0x3f80);
    expect(bits(1 + 2 ** -8)).toBe(0x3f80); // halfway between 0x3f80 and 0x3f81: even (down)
    expect(bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // halfway between 0x3f81 and 0x3f82: even (up)
    expect(bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81); // just above halfway: up
    expect(bits(-2.5)).toBe(0xc020);
    expect(bits(0)).toBe(0);
    expect(bits(-0)).toBe(0x8000);
    expect(bits(Infinity)).toBe(0x7f80);
    expect(bits(-Infinity)).toBe(0xff80);
    expect(bits(3.4028234663852886e38)).toBe(0x7f80); // float32 max rounds to infinity in bf16
    expect(Number.isNaN(bf16ToFloat(bits(NaN)))).toBe(true);
    expect(bits(1e-40)).toBe(floatToBf16(1e-40)); // subnormals round like the rest
  });
  test('every bf16 value survives float → bf16 → float', () => {
    for (let b = 0; b < 0x10000; b++) {
      const x = bf16ToFloat(b);
      if (Number.isNaN(x)) continue;
      expect(floatToBf16(x)).toBe(b);
    }
  });
});

describe('saving keeps the loaded dtype', () => {
  test('bf16 → bf16 bit-exact, half the size of f32; f16 kept; --dtype chooses', async () => {
    const dense = await loadModel(stories260KHf);
    expect(loadedDtype(dense.config)).toBe('float32');
    const f32Dir = join(tmp, 'f32');
    await saveModel(dense, f32Dir);
    expect(configJson(f32Dir).torch_dtype).toBe('float32');
    const bfDir = join(tmp, 'bf16');
    await saveModel(dense, bfDir, { dtype: 'bfloat16' });
    expect(configJson(bfDir).torch_dtype).toBe('bfloat16');
    const idx = readSafetensorsIndex(join(bfDir, 'model.safetensors'));
    expect(new Set([...idx.entries.values()].map((e) => e.dtype))).toEqual(new Set(['BF16']));
    const f32Size = statSync(join(f32Dir, 'model.safetensors')).size;
    const bfSize = statSync(join(bfDir, 'model.safetensors')).size;
    console.log(`stories260K: f32 ${f32Size} bytes, bf16 ${bfSize} bytes`);
    expect(dataBytes(bfDir).length * 2).toBe(dataBytes(f32Dir).length);

    // loaded from bf16, saved with no dtype: bf16 again, the same bits
    const bf = await loadModel(bfDir);
    expect(loadedDtype(bf.config)).toBe('bfloat16');
    const again = join(tmp, 'bf16-again');
    await saveModel(bf, again);
    expect(configJson(again).torch_dtype).toBe('bfloat16');
    expect(dataBytes(again).equals(dataBytes(bfDir))).toBe(true);
    // the bf16 weights are the f32 ones rounded: within bf16's relative precision
    for (const [name, w] of weightsOf(bf)) {
      const ref = dense.readWeight(name);
      for (let i = 0; i < w.length; i++) expect(Math.abs(w[i]! - ref[i]!)).toBeLessThanOrEqual(Math.abs(ref[i]!) * 2 ** -8);
    }
    // a slimmed or cloned bf16 model is still written as bf16
    const slimmed = bf.clone();
    expect(loadedDtype(slimmed.config)).toBe('bfloat16');
    slimmed.maskGroups([slimmed.groups(['ffn-channel'])[0]!.id]);
    const slim = slimmed.slim();
    expect(loadedDtype(slim.config)).toBe('bfloat16');
    const slimDir = join(tmp, 'bf16-slim');
    await saveModel(slim, slimDir);
    expect(configJson(slimDir).torch_dtype).toBe('bfloat16');
    slimmed.dispose();
    slim.dispose();
    // asked for f32: written as f32, and a bf16-representable model is lossless there and back
    const widened = join(tmp, 'bf16-as-f32');
    await saveModel(bf, widened, { dtype: 'float32' });
    const w = await loadModel(widened);
    expect(loadedDtype(w.config)).toBe('float32');
    expect(maxAbsDiff(logitsOf(w), logitsOf(bf))).toBe(0);

    // f16 remembered too
    const f16Dir = join(tmp, 'f16');
    await saveModel(dense, f16Dir, { dtype: 'float16' });
    const h = await loadModel(f16Dir);
    expect(loadedDtype(h.config)).toBe('float16');
    const h2 = join(tmp, 'f16-again');
    await saveModel(h, h2);
    expect(configJson(h2).torch_dtype).toBe('float16');
    expect(dataBytes(h2).equals(dataBytes(f16Dir))).toBe(true);
    for (const m of [dense, bf, w, h]) m.dispose();
  });
});

describe('topiary_sparsity in config.json', () => {
  test('dense: no key; 2:4: pattern and per-layer fractions; unstructured: pattern null', async () => {
    const dense = await loadModel(stories260KHf);
    const d = join(tmp, 'dense');
    await saveModel(dense, d);
    expect(configJson(d)[TOPIARY_SPARSITY_KEY]).toBeUndefined();

    const nm = weightsOf(dense);
    for (const [name, w] of nm) {
      if (!/_proj\.weight$/.test(name)) continue;
      for (let i = 0; i < w.length; i += 4) { w[i] = 0; w[i + 2] = 0; }
    }
    const nmModel = new LlamaModel(dense.config, nm);
    const nmDir = join(tmp, 'nm');
    await saveModel(nmModel, nmDir);
    const s = configJson(nmDir)[TOPIARY_SPARSITY_KEY] as { pattern: string | null; layers: Record<string, number> };
    expect(s.pattern).toBe('2:4');
    expect(Object.keys(s.layers)).toHaveLength(5 * 7);
    expect(s.layers['model.layers.0.mlp.down_proj.weight']).toBeCloseTo(0.5, 2);
    const back = await loadModel(nmDir); // the key does not disturb loading
    expect(maxAbsDiff(logitsOf(back), logitsOf(nmModel))).toBe(0);

    const un = weightsOf(dense);
    for (const [name, w] of un) {
      if (!/_proj\.weight$/.test(name)) continue;
      for (let i = 0; i < w.length; i++) if ((i * 7919) % 10 < 3) w[i] = 0;
    }
    const info = analyseSparsity(dense.config, un)!;
    expect(info.pattern).toBeNull();
    expect(info.layers['model.layers.2.self_attn.q_proj.weight']).toBeCloseTo(0.3, 2);
    for (const m of [dense, nmModel, back]) m.dispose();
  });
});

describe('padding a width-pruned model to a uniform LlamaForCausalLM', () => {
  test('same logits as the slim model (< 1e-5), plain config, loads back', async () => {
    const m = await loadModel(stories260KBin);
    const masked = [
      'layers.0.head.0',
      'layers.0.head.5',
      'layers.1.kv.1',
      'layers.2.head.3',
      'layers.2.head.4',
      'layers.2.head.7',
      ...Array.from({ length: 40 }, (_, c) => `layers.3.ffn.${c * 3}`),
      ...Array.from({ length: 10 }, (_, c) => `layers.1.ffn.${c + 100}`),
    ];
    m.maskGroups(masked);
    const slim = m.slim();
    expect(slim.config.layers).toBeDefined();
    const padded = padToUniform(slim.config, weightsOf(slim));
    expect(padded.config.layers).toBeUndefined();
    expect(padded.config).toMatchObject({ nHeads: 8, nKvHeads: 4, hiddenDim: 172, dim: 64, nLayers: 5 });
    const pm = new LlamaModel(padded.config, padded.weights);
    const diff = maxAbsDiff(logitsOf(pm), logitsOf(slim));
    console.log(`padded vs slim: max |Δlogit| = ${diff.toExponential(2)}`);
    expect(diff).toBeLessThan(1e-5);
    const dir = join(tmp, 'padded');
    await saveModel(pm, dir);
    const cfg = configJson(dir);
    expect(cfg.architectures).toEqual(['LlamaForCausalLM']);
    expect(cfg.topiary_layers).toBeUndefined();
    expect(cfg).toMatchObject({ num_attention_heads: 8, num_key_value_heads: 4, intermediate_size: 172 });
    const back = await loadModel(dir);
    expect(maxAbsDiff(logitsOf(back), logitsOf(slim))).toBeLessThan(1e-5);

    // a removed block: slimming drops it, padding keeps the remaining depth and is still exact
    const d = await loadModel(stories260KBin);
    d.maskGroups(['layers.2', 'layers.1.head.1', 'layers.4.ffn.7']);
    const ds = d.slim();
    const dp = padToUniform(ds.config, weightsOf(ds));
    const dm = new LlamaModel(dp.config, dp.weights);
    expect(dp.config.nLayers).toBe(4);
    expect(maxAbsDiff(logitsOf(dm), logitsOf(ds))).toBeLessThan(1e-5);
    for (const x of [m, slim, pm, back, d, ds, dm]) x.dispose();
  });
});
