/**
 * Per-item check against bench/reference/lmeval_reference.py, which follows lm-evaluation-harness v0.4.8's own
 * rules (requests, multiple-input winogrande, few-shot sampler with random.Random(1234), lambada greedy/perplexity,
 * bootstrap stderr) with a PyTorch float64 forward of stories260K: the same prompts (sha256 of every context),
 * log-likelihoods within float32 noise, identical is_greedy flags and predictions.
 * The lambada runs need the shared data folder (skipped with a printed reason when absent).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { EventBus, type CausalLM, type Tokenizer } from '@topiary/kernel';
import { loadTokenizer } from '@topiary/corpus';
import { loadModel } from '@topiary/model-llama';
import { defaultTaskRegistry, defineTask, evaluateTask, taskFromFile, type MultipleChoiceTask, type TaskReport } from '../src/index.js';

const root = join(import.meta.dirname, '..', '..', '..');
const fixtures = join(import.meta.dirname, 'fixtures');
const sharedData = process.env.TOPIARY_SHARED_DATA ?? resolve(root, '..', 'shared', 'data');
const lambadaFile = join(sharedData, 'eval', 'lambada_openai_test.jsonl');
const hasLambada = existsSync(lambadaFile);
if (!hasLambada) console.log(`skipped: the lambada_openai reference runs need ${lambadaFile} (the shared data folder beside the checkout), which is absent`);

interface RefItem { doc_id: number; logliks: number[]; greedy: boolean[]; context_sha256: string; gold?: number; pred?: number; pred_norm?: number }
interface RefRun { n: number; num_fewshot: number; seed: number; items: RefItem[]; acc: number; acc_stderr: number; acc_norm?: number; perplexity?: number; perplexity_stderr?: number; bootstrap_iters?: number; original?: number }
const ref = JSON.parse(readFileSync(join(root, 'bench', 'reference', 'outputs', 'lmeval_reference.json'), 'utf8')) as { runs: Record<string, RefRun> };
const sha = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

let model: CausalLM;
let tok: Tokenizer;
beforeAll(async () => {
  await tf.setBackend('wasm');
  model = await loadModel(join(root, 'assets', 'models', 'stories260K-hf'));
  tok = await loadTokenizer(join(root, 'assets', 'models', 'stories260K', 'tok512.bin'));
});

function compare(name: string, got: TaskReport, r: RefRun): void {
  expect(got.n).toBe(r.n);
  let maxDiff = 0;
  got.items.forEach((it, i) => {
    const want = r.items[i]!;
    expect(sha(it.requests[0]!.context), `${name} item ${i}: context`).toBe(want.context_sha256);
    expect(it.greedy, `${name} item ${i}: is_greedy`).toEqual(want.greedy);
    if (want.pred !== undefined) {
      expect(it.label).toBe(want.gold);
      expect(it.pred, `${name} item ${i}: pred`).toBe(want.pred);
      expect(it.predNorm, `${name} item ${i}: pred_norm`).toBe(want.pred_norm);
    }
    it.logLiks.forEach((l, k) => (maxDiff = Math.max(maxDiff, Math.abs(l - want.logliks[k]!))));
  });
  expect(maxDiff).toBeLessThan(2e-3);
  expect(got.acc).toBeCloseTo(r.acc, 12);
  if (r.acc_norm !== undefined) expect(got.accNorm).toBeCloseTo(r.acc_norm, 12);
  if (r.perplexity !== undefined) expect(Math.abs(got.perplexity! / r.perplexity - 1)).toBeLessThan(1e-3);
  if (r.perplexity_stderr !== undefined) expect(Math.abs(got.perplexityStderr! / r.perplexity_stderr - 1)).toBeLessThan(1e-2);
  console.log(`${name}: ${got.n} items, acc ${got.acc}${got.perplexity !== undefined ? ` ppl ${got.perplexity.toFixed(2)} (torch ${r.perplexity!.toFixed(2)})` : ''}; max |Δ loglik| ${maxDiff.toExponential(2)}`);
}

const timeout = 600_000;
describe('lm-eval rules vs the PyTorch reference (stories260K)', () => {
  const fileRuns: [string, string, number][] = [
    ['piqa_hf', 'piqa_hf.jsonl', 0],
    ['winogrande_hf', 'winogrande_hf.jsonl', 0],
    ['hellaswag_hf', 'hellaswag_hf.jsonl', 0],
    ['piqa_hf_2shot', 'piqa_hf.jsonl', 2],
    ['winogrande_hf_1shot', 'winogrande_hf.jsonl', 1],
  ];
  for (const [name, file, shots] of fileRuns) {
    it(`${name}: task file by path (schema detected), ${shots}-shot`, async () => {
      const task = await taskFromFile(join(fixtures, file));
      compare(name, await evaluateTask(model, tok, task, { events: new EventBus(), batchSize: 16 }, { numFewshot: shots }), ref.runs[name]!);
    }, timeout);
  }

  it('arc-easy-dev-mini, 2-shot, first 30 items (pool: all 200)', async () => {
    const got = await evaluateTask(model, tok, defaultTaskRegistry().get('arc-easy-dev-mini'), { events: new EventBus(), batchSize: 16, limit: 30 }, { numFewshot: 2 });
    compare('arc-easy-dev-mini_2shot', got, ref.runs['arc-easy-dev-mini_2shot']!);
  }, timeout);

  describe.skipIf(!hasLambada)('lambada_openai (shared data)', () => {
    const lambada = (): MultipleChoiceTask => defineTask({ ...defaultTaskRegistry().get('lambada_openai'), dataFile: lambadaFile });
    it('zero-shot, first 40 documents: greedy acc, perplexity, bootstrap stderr (2000 resamples)', async () => {
      const r = ref.runs.lambada_openai!;
      const got = await evaluateTask(model, tok, lambada(), { events: new EventBus(), batchSize: 8, limit: 40 }, { bootstrapIters: r.bootstrap_iters! });
      expect(got.original).toBe(r.original);
      compare('lambada_openai', got, r);
    }, timeout);
    it('1-shot (n drawn from the test split, evaluated doc not removed), first 12 documents', async () => {
      const got = await evaluateTask(model, tok, lambada(), { events: new EventBus(), batchSize: 4, limit: 12 }, { numFewshot: 1, bootstrapIters: 0 });
      compare('lambada_openai_1shot', got, ref.runs.lambada_openai_1shot!);
    }, timeout);
  });
});
