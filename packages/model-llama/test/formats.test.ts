/** Formats: round trips, dtypes, sharded checkpoints, and typed errors for damaged files (including a fuzz test). */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { TopiaryError, Tokens, createContainer, type ModelFormat, type Tokenizer } from '@topiary/kernel';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import plugin, {
  detectModelFormat,
  floatToHalf,
  halfToFloat,
  loadModel,
  readSafetensorsIndex,
  readTensors,
  saveModel,
  writeSafetensors,
  type LlamaModel,
} from '../src/index.js';
import { fixtures, maxAbsDiff, stories260KBin, stories260KHf } from './paths.js';
import { logitsOf } from './model-helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'model-llama-formats-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await tf.setBackend('cpu');
});


async function expectError(p: Promise<unknown> | (() => unknown), code: string, pattern: RegExp): Promise<TopiaryError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(TopiaryError);
    const err = e as TopiaryError;
    expect(err.code).toBe(code);
    expect(err.describe()).toMatch(pattern);
    return err;
  }
  throw new Error('expected an error');
}

describe('round trips', () => {
  test('llama2.c → safetensors (f32) → load gives identical logits', async () => {
    const a = await loadModel(stories260KBin);
    const dir = join(tmp, 'rt32');
    await saveModel(a, dir);
    expect(detectModelFormat(dir)).toBe('hf');
    const b = await loadModel(dir);
    expect(maxAbsDiff(logitsOf(a), logitsOf(b))).toBe(0);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg).toMatchObject({ architectures: ['LlamaForCausalLM'], hidden_size: 64, num_key_value_heads: 4, tie_word_embeddings: true });
    // the written file is byte-identical in tensor data to the shipped HF conversion
    const mine = readSafetensorsIndex(join(dir, 'model.safetensors'));
    const shipped = readSafetensorsIndex(join(stories260KHf, 'model.safetensors'));
    expect([...mine.entries.keys()]).toEqual([...shipped.entries.keys()].sort());
    const x = readTensors(mine, ['model.layers.2.self_attn.k_proj.weight']).get('model.layers.2.self_attn.k_proj.weight')!;
    const y = readTensors(shipped, ['model.layers.2.self_attn.k_proj.weight']).get('model.layers.2.self_attn.k_proj.weight')!;
    expect(maxAbsDiff(x, y)).toBe(0);
    a.dispose();
    b.dispose();
  });

  test('f16 save: weights round to half precision, logits stay close', async () => {
    const a = await loadModel(stories260KBin);
    const dir = join(tmp, 'rt16');
    await saveModel(a, dir, { dtype: 'float16' });
    const idx = readSafetensorsIndex(join(dir, 'model.safetensors'));
    expect(idx.entries.get('model.norm.weight')!.dtype).toBe('F16');
    const b = await loadModel(join(dir, 'model.safetensors'));
    const w = a.readWeight('model.layers.0.mlp.up_proj.weight');
    const h = b.readWeight('model.layers.0.mlp.up_proj.weight');
    for (let i = 0; i < w.length; i += 97) expect(h[i]).toBe(halfToFloat(floatToHalf(w[i]!)));
    expect(maxAbsDiff(logitsOf(a), logitsOf(b))).toBeLessThan(0.05);
    a.dispose();
    b.dispose();
  });

  test('half-precision conversion: exact values, rounding to nearest even, subnormals, overflow', () => {
    expect(floatToHalf(1)).toBe(0x3c00);
    expect(floatToHalf(-2)).toBe(0xc000);
    expect(floatToHalf(65504)).toBe(0x7bff);
    expect(floatToHalf(1e6)).toBe(0x7c00);
    expect(floatToHalf(2 ** -24)).toBe(1);
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    for (let h = 0; h < 0x7c00; h += 7) expect(floatToHalf(halfToFloat(h))).toBe(h);
  });

  test('sharded checkpoint (model.safetensors.index.json)', async () => {
    const a = await loadModel(stories260KBin);
    const dir = join(tmp, 'sharded');
    mkdirSync(dir, { recursive: true });
    const names = [...a.parameters().keys()];
    const half = Math.ceil(names.length / 2);
    const shards = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    shards.forEach((list, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(join(dir, file), list.map((name) => ({ name, shape: a.parameters().get(name)!.shape, data: a.readWeight(name) })));
      for (const n of list) weightMap[n] = file;
    });
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    copyFileSync(join(stories260KHf, 'config.json'), join(dir, 'config.json'));
    const b = await loadModel(dir);
    expect(maxAbsDiff(logitsOf(a), logitsOf(b))).toBe(0);
    // a weight_map pointing at a shard without the tensor
    const bad = { ...weightMap, 'model.norm.weight': 'model-00001-of-00002.safetensors' };
    if (weightMap['model.norm.weight'] !== bad['model.norm.weight']) {
      writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: bad }));
      await expectError(loadModel(dir), 'E_FORMAT', /missing tensor "model\.norm\.weight"/);
    }
    a.dispose();
    b.dispose();
  });
});

describe('plugin', () => {
  test('registers both formats on Tokens.ModelFormat', async () => {
    const c = createContainer();
    plugin.register(c, {});
    const formats = c.resolveAll(Tokens.ModelFormat) as ModelFormat[];
    expect(formats.map((f) => f.name).sort()).toEqual(['llama2c', 'safetensors']);
    const l2c = formats.find((f) => f.name === 'llama2c')!;
    expect(l2c.canLoad(stories260KBin)).toBe(true);
    expect(l2c.canLoad(stories260KHf)).toBe(false);
    const st = formats.find((f) => f.name === 'safetensors')!;
    expect(st.canLoad(stories260KHf)).toBe(true);
    const m = await st.load(stories260KHf);
    expect(m.config.vocabSize).toBe(512);
    m.dispose();
  });
});

describe('bad files give typed errors naming file and field', () => {
  const hfBytes = readFileSync(join(stories260KHf, 'model.safetensors'));
  const config = readFileSync(join(stories260KHf, 'config.json'), 'utf8');
  let n = 0;
  function hfFolder(weights: Uint8Array, cfg = config): string {
    const dir = join(tmp, `bad${n++}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model.safetensors'), weights);
    writeFileSync(join(dir, 'config.json'), cfg);
    return dir;
  }
  function withHeader(mutate: (h: Record<string, unknown>) => void): Uint8Array {
    const len = Number(hfBytes.readBigUInt64LE(0));
    const header = JSON.parse(hfBytes.subarray(8, 8 + len).toString('utf8')) as Record<string, unknown>;
    mutate(header);
    let text = JSON.stringify(header);
    text += ' '.repeat((8 - (text.length % 8)) % 8);
    const out = Buffer.alloc(8);
    out.writeBigUInt64LE(BigInt(text.length));
    return Buffer.concat([out, Buffer.from(text), hfBytes.subarray(8 + len)]);
  }

  test('truncated safetensors', async () => {
    const dir = hfFolder(hfBytes.subarray(0, hfBytes.length - 1000));
    await expectError(loadModel(dir), 'E_FORMAT', /model\.safetensors: .*lies outside|truncated/);
  });
  test('header length past the end', async () => {
    const b = Buffer.from(hfBytes);
    b.writeBigUInt64LE(BigInt(b.length));
    await expectError(loadModel(hfFolder(b)), 'E_FORMAT', /header length.*past the end/);
  });
  test('file shorter than the header length field', async () => {
    await expectError(loadModel(hfFolder(new Uint8Array(5))), 'E_FORMAT', /less than the 8-byte header/);
  });
  test('unknown dtype', async () => {
    const b = withHeader((h) => ((h['model.norm.weight'] as { dtype: string }).dtype = 'Q7'));
    const e = await expectError(loadModel(hfFolder(b)), 'E_FORMAT', /unknown dtype "Q7"/);
    expect(e.where).toBe('model.norm.weight.dtype');
    expect(e.file).toMatch(/model\.safetensors$/);
  });
  test('shape/config mismatch', async () => {
    const e = await expectError(loadModel(hfFolder(hfBytes, config.replace('"intermediate_size": 172', '"intermediate_size": 170'))), 'E_CONFIG', /shape \[172, 64\].*\[170, 64\]/);
    expect(e.where).toBe('model.layers.0.mlp.gate_proj.weight');
  });
  test('missing tensor', async () => {
    const b = withHeader((h) => delete h['model.layers.3.mlp.up_proj.weight']);
    await expectError(loadModel(hfFolder(b)), 'E_FORMAT', /missing tensor "model\.layers\.3\.mlp\.up_proj\.weight"/);
    await expectError(loadModel(hfFolder(hfBytes, config.replace('"tie_word_embeddings": true', '"tie_word_embeddings": false'))), 'E_FORMAT', /lm_head\.weight/);
  });
  test('bad config.json fields', async () => {
    const e = await expectError(loadModel(hfFolder(hfBytes, config.replace('"num_attention_heads": 8', '"num_attention_heads": "eight"'))), 'E_CONFIG', /num_attention_heads/);
    expect(e.file).toMatch(/config\.json$/);
    await expectError(loadModel(hfFolder(hfBytes, '{ nope')), 'E_CONFIG', /not valid JSON/);
  });
  test('tokenizer vocabulary differs from the model', async () => {
    const tok: Tokenizer = { name: 'fake', vocabSize: 32000, bosId: 1, eosId: 2, encode: () => [], decode: () => '' };
    await expectError(loadModel(stories260KBin, { tokenizer: tok, tokenizerFile: 'tokenizer.bin' }), 'E_CONFIG', /tokenizer\.bin: vocab_size: tokenizer has 32000 tokens but the model's vocabulary is 512/);
  });
  test('llama2.c: truncated, extra bytes, bad header', async () => {
    const bin = readFileSync(stories260KBin);
    const write = (b: Uint8Array): string => {
      const f = join(tmp, `bad${n++}.bin`);
      writeFileSync(f, b);
      return f;
    };
    await expectError(loadModel(write(bin.subarray(0, bin.length - 4))), 'E_FORMAT', /stories|bad.*\.bin: size: .*needs 1056540/);
    await expectError(loadModel(write(Buffer.concat([bin, Buffer.alloc(8)]))), 'E_FORMAT', /8 bytes more/);
    const huge = Buffer.from(bin);
    huge.writeInt32LE(1 << 20, 0); // dim
    huge.writeInt32LE(1 << 20, 4); // hidden
    await expectError(loadModel(write(huge)), 'E_FORMAT', /needs \d+/);
    const v9 = Buffer.alloc(300);
    v9.writeUInt32LE(0x616b3432, 0);
    v9.writeInt32LE(9, 4);
    await expectError(loadModel(write(v9)), 'E_FORMAT', /version: unknown llama2\.c format version 9/);
  });
  test('not a model at all', async () => {
    const f = join(tmp, 'notes.txt');
    writeFileSync(f, 'hello');
    await expectError(loadModel(f), 'E_FORMAT', /cannot tell the model format/);
    await expectError(loadModel(join(tmp, 'nope')), 'E_IO', /no such file/);
  });
});

describe('fuzz: mutated headers never crash with anything but a typed error', () => {
  const st = readFileSync(join(fixtures, 'tiny-untied', 'model.safetensors'));
  const bin = readFileSync(join(fixtures, 'tiny-llama2c', 'tiny.v1.bin'));
  const cfg = readFileSync(join(fixtures, 'tiny-untied', 'config.json'));
  const dir = join(tmp, 'fuzz');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), cfg);

  async function loadOrTypedError(file: string): Promise<void> {
    try {
      const m = await loadModel(file);
      m.dispose(); // a mutation that keeps the file valid is fine
    } catch (e) {
      if (!(e instanceof TopiaryError) || !['E_FORMAT', 'E_CONFIG'].includes(e.code)) throw e;
    }
  }

  test('safetensors header bytes', async () => {
    const len = Number(st.readBigUInt64LE(0));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(len + 7), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), async (edits) => {
        const b = Buffer.from(st);
        for (const [pos, byte] of edits) b[pos] = byte;
        writeFileSync(join(dir, 'model.safetensors'), b);
        await loadOrTypedError(join(dir, 'model.safetensors'));
      }),
      { numRuns: 60, seed: 42 },
    );
  });

  test('llama2.c v1 header ints', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 9 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), async (field, value) => {
        const b = Buffer.from(bin);
        b.writeInt32LE(value, 4 * field);
        const f = join(dir, 'tiny.bin');
        writeFileSync(f, b);
        try {
          const m = await loadModel(f);
          m.dispose();
        } catch (e) {
          if (!(e instanceof TopiaryError) || !['E_FORMAT', 'E_CONFIG'].includes(e.code)) throw e;
        }
      }),
      { numRuns: 60, seed: 7 },
    );
  });
});
