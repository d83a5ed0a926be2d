/**
 * A whole-model load that cannot fit the wasm engine's heap is refused from the headers, before any weight is read;
 * a streamed open of the same checkpoint is not.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TopiaryError } from '@topiary/kernel';
import { float32Bytes, loadModel, parameterShapes, readHfConfig, writeHeaderOnlySafetensors } from '../src/index.js';

let work: string;

/** A TinyLlama-1.1B-shaped safetensors checkpoint whose weights are holes (a sparse file): headers only on disk. */
function sparseTinyLlama(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22,
    num_attention_heads: 32, num_key_value_heads: 4, vocab_size: 32000, max_position_embeddings: 2048, rms_norm_eps: 1e-5,
    tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, torch_dtype: 'bfloat16',
  }));
  const shapes = parameterShapes(readHfConfig(dir));
  writeHeaderOnlySafetensors(join(dir, 'model.safetensors'), [...shapes].map(([name, shape]) => ({ name, shape })));
}

describe('whole-model loads that cannot fit the heap', () => {
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'topiary-fits-'));
    await import('@tensorflow/tfjs-backend-wasm');
    await tf.setBackend('wasm');
  });
  afterAll(async () => {
    rmSync(work, { recursive: true, force: true });
    await tf.setBackend('cpu');
  });

  it('are refused on the wasm engine with the size, the limit and the streamed commands, before reading weights', async () => {
    const dir = join(work, 'tinyllama');
    sparseTinyLlama(dir);
    const t0 = Date.now();
    const err = await loadModel(dir).then(() => undefined, (e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(5000); // headers only: 4.4 GB of weights were never read
    expect(err).toBeInstanceOf(TopiaryError);
    const e = err as TopiaryError;
    expect(e.code).toBe('E_USAGE');
    expect(e.message).toMatch(/4\.1 GiB of float32 weights.*4 GiB/);
    expect(e.file).toBe(dir);
    expect(e.hint).toContain('topiary prune');
    // streamed, the same checkpoint opens (nothing is read until a block is computed)
    const streamed = await loadModel(dir, { residency: 'block' });
    expect(float32Bytes(streamed.config)).toBe(4 * 1_100_048_384);
    streamed.dispose();
  });
});
