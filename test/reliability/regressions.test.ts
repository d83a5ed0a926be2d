/**
 * One test per bug the fuzzers found (see docs/reliability.md, "Found and fixed"): each input used to end in an
 * uncaught exception, a hang or a multi-gigabyte allocation; now it is a TopiaryError naming the file and field.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadRecipe } from '@topiary/kernel';
import { loadModel } from '@topiary/model-llama';
import { loadTokenizer } from '@topiary/corpus';
import { defaultTaskRegistry, loadTaskItems } from '@topiary/eval';
import { hfDir, stories260K, tempDir, tok512, topiaryError } from './helpers.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('fuzz findings stay fixed', () => {
  test('llama2.c header with n_layers = 16M is refused from the header alone (was 3 GB RSS, then a crash)', async () => {
    const dir = tempDir();
    const b = Buffer.from(readFileSync(stories260K));
    b.writeInt32LE(16_000_000, 8); // v0: dim, hidden_dim, n_layers, ...
    writeFileSync(join(dir, 'm.bin'), b);
    const before = process.memoryUsage().rss;
    const t0 = performance.now();
    const err = await topiaryError(() => loadModel(join(dir, 'm.bin')));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 2 ** 20);
    expect(err.code).toBe('E_FORMAT');
    expect(err.where).toBe('size');
    expect(err.file).toBe(join(dir, 'm.bin'));
    expect(err.message).toMatch(/16000000 layers/);
  });

  test('config.json with num_hidden_layers = 2^31 is refused before per-layer lists are built (was a hang)', async () => {
    const dir = tempDir();
    copyFileSync(join(hfDir, 'model.safetensors'), join(dir, 'model.safetensors'));
    const cfg = JSON.parse(readFileSync(join(hfDir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 2 ** 31 }));
    const t0 = performance.now();
    const err = await topiaryError(() => loadModel(dir));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(err.code).toBe('E_CONFIG');
    expect(err.file).toBe(join(dir, 'config.json'));
    expect(err.where).toMatch(/nLayers/);
  });

  test('recipe YAML alias bomb is an E_RECIPE naming the file (was a ReferenceError from the yaml library)', async () => {
    const dir = tempDir();
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 0; i < 9; i++) lines.push(`${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(9).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]`);
    writeFileSync(join(dir, 'bomb.yaml'), `${lines.join('\n')}\n`);
    const err = await topiaryError(() => loadRecipe(join(dir, 'bomb.yaml')));
    expect(err.code).toBe('E_RECIPE');
    expect(err.file).toBe(join(dir, 'bomb.yaml'));
    expect(err.message).toMatch(/alias/i);
  });

  test('ARC task line whose choices hold null is an E_DATA naming file and line (was a TypeError)', async () => {
    const dir = tempDir();
    const file = join(dir, 'arc.jsonl');
    writeFileSync(file, `${JSON.stringify({ question: { stem: 'Why?', choices: [{ text: 'a', label: 'A' }, null] }, answerKey: 'A' })}\n`);
    const err = await topiaryError(() => loadTaskItems(defaultTaskRegistry().get('arc-easy-dev-mini'), undefined, { dataFile: file }));
    expect(err.code).toBe('E_DATA');
    expect(err.file).toBe(file);
    expect(err.where).toBe('line 1');
  });

  test('tokenizer.json with a token id of 507510784 is refused naming the field (was a hang filling a table that long)', async () => {
    const dir = tempDir();
    const json = JSON.parse(readFileSync(join(hfDir, 'tokenizer.json'), 'utf8'));
    const first = Object.keys(json.model.vocab)[4]!;
    json.model.vocab[first] = 507510784;
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    const t0 = performance.now();
    const err = await topiaryError(() => loadTokenizer(join(dir, 'tokenizer.json')));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(err.code).toBe('E_FORMAT');
    expect(err.where).toBe(`model.vocab[${JSON.stringify(first)}]`);
  });

  test('tokenizer.json with a damaged post_processor: encode is an E_FORMAT naming the file (was a TypeError)', async () => {
    const dir = tempDir();
    const json = JSON.parse(readFileSync(join(hfDir, 'tokenizer.json'), 'utf8'));
    json.post_processor.single[1] = JSON.stringify(json.post_processor.single[1]);
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    copyFileSync(join(hfDir, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
    let err;
    try {
      const tok = await loadTokenizer(join(dir, 'tokenizer.json'));
      err = await topiaryError(() => tok.encode('Once upon a time'));
    } catch (e) {
      err = e as { code: string; file: string };
    }
    expect(err.code).toBe('E_FORMAT');
    expect(err.file).toBe(join(dir, 'tokenizer.json'));
  });

  test('tokenizer.json whose tokens are all special decodes to "" (the library threw on an empty id list)', async () => {
    const tok = await loadTokenizer(join(hfDir, 'tokenizer.json'));
    expect(tok.decode([tok.bosId, tok.eosId])).toBe('');
  });

  test('truncated llama2.c tokenizer (no byte pieces): encode falls back to <unk>, decode works (ids past the vocabulary were produced)', async () => {
    const dir = tempDir();
    const bytes = readFileSync(tok512);
    let off = 4;
    for (let i = 0; i < 200; i++) off += 8 + bytes.readInt32LE(off + 4);
    writeFileSync(join(dir, 'tok.bin'), bytes.subarray(0, off));
    const tok = await loadTokenizer(join(dir, 'tok.bin'));
    expect(tok.vocabSize).toBe(200);
    const ids = tok.encode('☃ snow', { bos: true });
    expect(ids.every((id) => id >= 0 && id < 200)).toBe(true);
    expect(typeof tok.decode(ids)).toBe('string');
  });
});
