/**
 * Exactness against bench/reference/eval_reference.py (PyTorch float64, its own LLaMA forward and llama2.c
 * encoder): perplexity within 0.1 % and identical per-item predictions on the shipped stories260K model.
 *
 * Everything is checked, always: every window of both perplexity settings (19194 tokens) and every item of both
 * tasks (300 items), against the reference's per-window NLL sums and per-item log-likelihoods.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { EventBus, type CausalLM, type Tokenizer } from '@topiary/kernel';
import { loadTokenizer } from '@topiary/corpus';
import { loadModel } from '@topiary/model-llama';
import { defaultTaskRegistry, evaluatePerplexity, evaluateTask } from '../src/index.js';

const root = join(import.meta.dirname, '..', '..', '..');
interface RefTask { n: number; acc: number; acc_norm: number; acc_stderr: number; acc_norm_stderr: number; items: { label: number; pred: number; pred_norm: number; logliks: number[] }[] }
const ref = JSON.parse(readFileSync(join(root, 'bench', 'reference', 'outputs', 'eval_reference.json'), 'utf8')) as {
  text: { file: string; prefix_bytes: number; token_count: number; ids_sha256: string; first_ids: number[] };
  perplexity: { seqlen: number; stride: number; windows: number; tokens: number; ppl: number; nll: number; per_window: [number, number, number, number][] }[];
  tasks: Record<string, RefTask>;
};

// each check takes 10-30 s on 2 idle cores (about 75 s in all); room for a suite that runs other files beside it
const timeout = 600_000;
let model: CausalLM;
let tok: Tokenizer;
let ids: number[];

beforeAll(async () => {
  await tf.setBackend('wasm');
  model = await loadModel(join(root, 'assets', 'models', 'stories260K-hf'));
  tok = await loadTokenizer(join(root, 'assets', 'models', 'stories260K', 'tok512.bin'));
  const text = readFileSync(join(root, ref.text.file)).subarray(0, ref.text.prefix_bytes).toString('utf8');
  ids = tok.encode(text, { bos: true });
});

describe('exactness vs the PyTorch reference (stories260K)', () => {
  it('tokenizes the text prefix to the same ids as the Python llama2.c encoder', () => {
    expect(ids.length).toBe(ref.text.token_count);
    expect(ids.slice(0, 32)).toEqual(ref.text.first_ids);
    expect(createHash('sha256').update(ids.join(',')).digest('hex')).toBe(ref.text.ids_sha256);
  });

  for (const r of ref.perplexity) {
    it(`perplexity L=${r.seqlen} S=${r.stride}: every window, within 0.1 %`, async () => {
      const got = await evaluatePerplexity(model, tok, { file: ref.text.file, ids, seqLen: r.seqlen, stride: r.stride }, { events: new EventBus(), batchSize: 8 });
      expect(r.per_window).toHaveLength(r.windows);
      const tokens = r.per_window.reduce((a, w) => a + w[2], 0);
      const ppl = Math.exp(r.per_window.reduce((a, w) => a + w[3], 0) / tokens);
      expect(tokens).toBe(r.tokens);
      expect(ppl).toBeCloseTo(r.ppl, 9);
      expect(got.windows).toBe(r.windows);
      expect(got.tokens).toBe(r.tokens);
      expect(Math.abs(got.ppl / r.ppl - 1)).toBeLessThan(1e-3);
      console.log(`ppl L=${r.seqlen} S=${r.stride}, ${got.windows} windows: topiary ${got.ppl.toFixed(6)} vs torch ${r.ppl.toFixed(6)} (rel ${(got.ppl / r.ppl - 1).toExponential(2)})`);
    }, timeout);
  }

  for (const name of Object.keys(ref.tasks)) {
    it(`${name}: identical per-item predictions, acc and acc_norm over every item`, async () => {
      const r = ref.tasks[name]!;
      expect(r.items).toHaveLength(r.n);
      const got = await evaluateTask(model, tok, defaultTaskRegistry().get(name), { events: new EventBus(), batchSize: 32 });
      expect(got.n).toBe(r.n);
      expect(got.predictions).toEqual(r.items.map((i) => i.pred));
      expect(got.predictionsNorm).toEqual(r.items.map((i) => i.pred_norm));
      expect(got.items.map((i) => i.label)).toEqual(r.items.map((i) => i.label));
      expect(got.acc).toBeCloseTo(r.acc, 12);
      expect(got.accNorm).toBeCloseTo(r.acc_norm, 12);
      expect(got.accStderr).toBeCloseTo(r.acc_stderr, 12);
      expect(got.accNormStderr).toBeCloseTo(r.acc_norm_stderr, 12);
      let maxDiff = 0;
      got.items.forEach((it, i) => {
        expect(it.logLiks).toHaveLength(r.items[i]!.logliks.length);
        it.logLiks.forEach((l, k) => (maxDiff = Math.max(maxDiff, Math.abs(l - r.items[i]!.logliks[k]!))));
      });
      expect(maxDiff).toBeLessThan(2e-3);
      console.log(`${name}, ${got.n} items: acc ${got.acc} acc_norm ${got.accNorm}; max |Δ loglik| vs torch ${maxDiff.toExponential(2)}`);
    }, timeout);
  }
});
