/**
 * Exactness against bench/reference/eval_reference.py (PyTorch float64, its own LLaMA forward and llama2.c
 * encoder): perplexity within 0.1 % and identical per-item predictions on the shipped stories260K model.
 *
 * By default a prefix of the work runs (the first windows, the first items) so the suite stays fast; the reference
 * stores per-window NLL sums and per-item log-likelihoods, so the prefix is checked against exactly the same
 * numbers. TOPIARY_FULL_REFERENCE=1 runs everything (19194 tokens, 300 items; a few minutes on 2 busy cores).
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

const full = process.env.TOPIARY_FULL_REFERENCE === '1';
const windowLimit = full ? undefined : 3;
const itemLimit: Record<string, number | undefined> = full ? {} : { 'hellaswag-mini': 25, 'arc-easy-dev-mini': 40 };
if (!full) console.log('reference test: checking a prefix of the windows/items; TOPIARY_FULL_REFERENCE=1 checks all of them');
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
    it(`perplexity L=${r.seqlen} S=${r.stride} within 0.1 %`, async () => {
      const got = await evaluatePerplexity(model, tok, { file: ref.text.file, ids, seqLen: r.seqlen, stride: r.stride }, { events: new EventBus(), batchSize: 8, limit: windowLimit });
      const windows = r.per_window.slice(0, got.windows);
      const tokens = windows.reduce((a, w) => a + w[2], 0);
      const ppl = Math.exp(windows.reduce((a, w) => a + w[3], 0) / tokens);
      expect(got.windows).toBe(windowLimit ?? r.windows);
      expect(got.tokens).toBe(tokens);
      if (!windowLimit) {
        expect(got.tokens).toBe(r.tokens);
        expect(ppl).toBeCloseTo(r.ppl, 9);
      }
      expect(Math.abs(got.ppl / ppl - 1)).toBeLessThan(1e-3);
      console.log(`ppl L=${r.seqlen} S=${r.stride}, ${got.windows} windows: topiary ${got.ppl.toFixed(6)} vs torch ${ppl.toFixed(6)} (rel ${(got.ppl / ppl - 1).toExponential(2)})`);
    });
  }

  for (const name of Object.keys(ref.tasks)) {
    it(`${name}: identical per-item predictions, acc and acc_norm`, async () => {
      const r = ref.tasks[name]!;
      const got = await evaluateTask(model, tok, defaultTaskRegistry().get(name), { events: new EventBus(), batchSize: 32, limit: itemLimit[name] });
      const items = r.items.slice(0, got.n);
      expect(got.n).toBe(itemLimit[name] ?? r.n);
      expect(got.predictions).toEqual(items.map((i) => i.pred));
      expect(got.predictionsNorm).toEqual(items.map((i) => i.pred_norm));
      expect(got.items.map((i) => i.label)).toEqual(items.map((i) => i.label));
      if (got.n === r.n) {
        expect(got.acc).toBeCloseTo(r.acc, 12);
        expect(got.accNorm).toBeCloseTo(r.acc_norm, 12);
        expect(got.accStderr).toBeCloseTo(r.acc_stderr, 12);
      }
      let maxDiff = 0;
      got.items.forEach((it, i) => it.logLiks.forEach((l, k) => (maxDiff = Math.max(maxDiff, Math.abs(l - items[i]!.logliks[k]!)))));
      expect(maxDiff).toBeLessThan(2e-3);
      console.log(`${name}, ${got.n} items: acc ${got.acc} acc_norm ${got.accNorm}; max |Δ loglik| vs torch ${maxDiff.toExponential(2)}`);
    });
  }
});
