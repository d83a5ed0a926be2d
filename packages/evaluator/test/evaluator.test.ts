import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { EventBus } from '@topiary/kernel';
import { evaluateModels } from '../src/index.js';

const assets = join(import.meta.dirname, '..', '..', '..', 'assets');
beforeAll(async () => {
  await tf.setBackend('wasm');
});

describe('evaluateModels', () => {
  it('the llama2.c .bin and the HF folder of stories260K give the same numbers, side by side', async () => {
    // A 20 KB prefix of the TinyStories text (the HF tokenizer library takes ~25 ms per KB of one long text).
    const full = readFileSync(join(assets, 'data', 'tinystories_val_head.txt'));
    const text = join(mkdtempSync(join(tmpdir(), 'topiary-evaluator-')), 'tinystories_20k.txt');
    writeFileSync(text, full.subarray(0, full.indexOf('\n\n', 20000)));
    const result = await evaluateModels(
      [
        { name: 'llama2c', model: join(assets, 'models', 'stories260K', 'stories260K.bin'), tokenizer: join(assets, 'models', 'stories260K', 'tok512.bin') },
        { name: 'hf', model: join(assets, 'models', 'stories260K-hf'), tokenizer: join(assets, 'models', 'stories260K-hf', 'tokenizer.json') },
      ],
      { perplexity: [text], tasks: ['hellaswag-mini'], seqLen: 128 },
      { events: new EventBus(), limit: 4, batchSize: 4 },
    );
    const [a, b] = result.reports;
    expect(a!.perplexity[text]!.tokens).toBe(4 * 127);
    expect(Math.abs(a!.perplexity[text]!.ppl / b!.perplexity[text]!.ppl - 1)).toBeLessThan(1e-5);
    expect(a!.tasks['hellaswag-mini']!.predictions).toEqual(b!.tasks['hellaswag-mini']!.predictions);
    expect(result.json[0]).toMatchObject({ model: 'llama2c', tasks: { 'hellaswag-mini': { n: 4 } } });
    expect(result.comparison.split('\n')[0]).toBe('| metric | llama2c | hf | Δ (last − first) |');
    expect(result.markdown).toContain('### hf');
  });

  it('refuses a tokenizer whose vocabulary does not match the model', async () => {
    await expect(
      evaluateModels([{ model: join(assets, 'models', 'stories260K-hf'), tokenizer: 'bytes' }], { tasks: ['hellaswag-mini'] }, { events: new EventBus(), limit: 1 }),
    ).rejects.toMatchObject({ code: 'E_CONFIG' });
  });
});
