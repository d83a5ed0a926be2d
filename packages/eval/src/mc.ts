/**
 * Zero-shot multiple choice, lm-eval-harness style. For each request (context, continuation):
 * - trailing spaces of the context move to the front of the continuation, then
 *   `whole = encode(context + continuation)`, `ctx = encode(context)`, `cont = whole[len(ctx):]`
 *   (lm-eval's `_encode_pair`); both encodings start with BOS when `bos` is on (default — what lm-eval did for
 *   Llama tokenizers that add BOS; an empty context is then just [BOS]);
 * - the sequence `ctx + cont` keeps its last maxSeqLen + 1 tokens (left truncation, as lm-eval);
 * - loglik = Σ log p(cont tokens | everything before).
 * acc: the choice with the highest loglik is right (first on ties, like numpy's argmax); acc_norm: highest
 * loglik / character length of the choice (lm-eval: `completion_len = len(choice)` of `doc_to_choice`,
 * lm_eval/api/task.py v0.4.8 `process_results`, multiple_choice branch). Standard errors: sample standard deviation
 * (n − 1) of the per-item 0/1 scores over √n (lm-eval's `mean_stderr`, lm_eval/api/metrics.py).
 *
 * Loglikelihood tasks (lambada_openai): one request per document; acc = 1 when every continuation token is the
 * argmax at its position (lm-eval's `is_greedy`), perplexity = exp(−mean loglik) (metrics.py `perplexity`), its
 * stderr by lm-eval's bootstrap (see `bootstrapStderr`).
 *
 * Few-shot (`numFewshot` n > 0), lm-eval's ContextSampler (lm_eval/api/samplers.py v0.4.8 lines 78-122) with
 * `random.Random(fewshotSeed)` (default 1234, lm_eval/evaluator.py `simple_evaluate`), one generator advancing over
 * the evaluated documents in order: draw `rnd.sample(pool, n + 1)`, drop the evaluated document, keep n (or
 * `rnd.sample(pool, n)` where lm-eval does not remove it — `fewshotExcludesEval: false`); the context is
 * Σ (example + "\n\n") + the document's own context (fewshot_delimiter "\n\n", target_delimiter " ").
 * The pool is the evaluated file itself — our data has no train splits (lm-eval would draw arc/piqa/hellaswag
 * examples from train); lambada_openai's pool is lm-eval's own (its test split).
 */
import { TopiaryError, type CausalLM, type EvalContext, type TaskResult, type Tokenizer } from '@topiary/kernel';
import { readJsonLines } from '@topiary/corpus';
import { resolveDataFile } from './data.js';
import { bootstrapStderr, PyRandom } from './pyrandom.js';
import { scoreBatches } from './scoring.js';
import type { McItem, McRequest, MultipleChoiceTask, OutputType, TaskMetric } from './tasks.js';

export interface EncodedRequest {
  context: number[];
  continuation: number[];
}

export function encodeRequest(tokenizer: Tokenizer, request: McRequest, bos = true): EncodedRequest {
  let { context, continuation } = request;
  const trimmed = context.replace(/\s+$/u, '');
  if (trimmed.length < context.length) {
    continuation = context.slice(trimmed.length) + continuation;
    context = trimmed;
  }
  const whole = tokenizer.encode(context + continuation, { bos });
  const ctx = tokenizer.encode(context, { bos });
  if (ctx.length === 0) ctx.push(tokenizer.bosId); // lm-eval scores an empty context after the prefix token
  return { context: ctx, continuation: whole.slice(ctx.length) };
}

export interface ItemResult {
  label: number;
  /** Predicted choice by loglik (acc) and by loglik per character (acc_norm). */
  pred: number;
  predNorm: number;
  logLiks: number[];
  /** Per request: is the continuation the greedy decode (every token the argmax)? */
  greedy: boolean[];
  /** 0-based index of the document in the file. */
  docId: number;
  /** The record as read from the file. */
  doc: Record<string, unknown>;
  /** The requests as scored (few-shot examples included in the contexts). */
  requests: McRequest[];
  target?: string | number;
}

export interface TaskReport extends TaskResult {
  predictions: number[];
  predictionsNorm: number[];
  items: ItemResult[];
  dataFile: string;
  output: OutputType;
  metrics: readonly TaskMetric[];
  /** loglikelihood tasks: exp(−mean loglik) and lm-eval's bootstrap stderr (NaN when not computed). */
  perplexity?: number;
  perplexityStderr?: number;
  /** Documents in the file (lm-eval's n-samples.original); `n` is the number evaluated (effective). */
  original: number;
  numFewshot: number;
  fewshotSeed: number;
  /** The task definition (for lm-eval's `configs`). */
  definition: MultipleChoiceTask;
}

/** Mean and sample-stderr of 0/1 scores. */
export function meanStderr(values: readonly number[]): { mean: number; stderr: number } {
  const n = values.length;
  if (n === 0) return { mean: Number.NaN, stderr: Number.NaN };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, stderr: Number.NaN };
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  return { mean, stderr: Math.sqrt(variance / n) };
}

function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** Log-likelihood of each request's continuation, batched (sorted by length so batches pad little). */
export async function scoreRequests(model: CausalLM, encoded: readonly EncodedRequest[], ctx: EvalContext, task = 'eval:mc'): Promise<number[]> {
  return (await scoreRequestsGreedy(model, encoded, ctx, task)).logLiks;
}

/** As `scoreRequests`, with lm-eval's `is_greedy` per request (every continuation token is the argmax). */
export async function scoreRequestsGreedy(model: CausalLM, encoded: readonly EncodedRequest[], ctx: EvalContext, task = 'eval:mc'): Promise<{ logLiks: number[]; greedy: boolean[] }> {
  const maxLen = model.config.maxSeqLen + 1;
  const seqs = encoded.map((r) => [...r.context, ...r.continuation].slice(-maxLen));
  const order = seqs.map((_, i) => i).sort((a, b) => seqs[b]!.length - seqs[a]!.length || a - b);
  const out = new Array<number>(encoded.length).fill(0);
  const greedyOut = new Array<boolean>(encoded.length).fill(true);
  const batchSize = Math.max(1, ctx.batchSize ?? 16);
  ctx.events.progress(task, 0, order.length, undefined, 'requests');
  const groups: number[][] = [];
  for (let i = 0; i < order.length; i += batchSize) groups.push(order.slice(i, i + batchSize).filter((k) => encoded[k]!.continuation.length > 0 && seqs[k]!.length >= 2));
  const nonEmpty = groups.filter((g) => g.length > 0);
  let done = 0;
  await scoreBatches(
    model,
    nonEmpty.map((idx) => idx.map((k) => seqs[k]!)),
    {
      activationBytes: ctx.activationBytes,
      onBlock: (block, pass, passes) => ctx.events.progress(`${task}:blocks`, block + 1, model.numBlocks, `pass ${pass + 1}/${passes}`, 'blocks'),
      onBatch: async (b, { logProbs, greedy }) => {
        if (ctx.signal?.aborted) throw new TopiaryError('E_INTERNAL', 'evaluation aborted');
        nonEmpty[b]!.forEach((k, j) => {
          const lp = logProbs[j]!;
          const g = greedy[j]!;
          const contLen = Math.min(encoded[k]!.continuation.length, seqs[k]!.length - 1);
          let sum = 0;
          let all = true;
          for (let q = lp.length - contLen; q < lp.length; q++) {
            sum += lp[q]!;
            if (!g[q]) all = false;
          }
          out[k] = sum;
          greedyOut[k] = all;
        });
        done += nonEmpty[b]!.length;
        ctx.events.progress(task, Math.min(order.length, done), order.length, undefined, 'requests');
        await new Promise((r) => setImmediate(r));
      },
    },
  );
  return { logLiks: out, greedy: greedyOut };
}

export interface TaskRunOptions {
  /** Prepend BOS to contexts. Default true. */
  bos?: boolean;
  /** Read items from this file instead of the task's own (same schema). */
  dataFile?: string;
  /** Folders to look for the task's data file in (default `evalDataDirs()`). */
  dataDirs?: string[];
  /** Few-shot examples per document (lm-eval's --num_fewshot). Default 0. */
  numFewshot?: number;
  /** lm-eval's fewshot_random_seed. Default 1234. */
  fewshotSeed?: number;
  /** Resamples for the bootstrap stderr of perplexity (lm-eval's --bootstrap_iters, default 100000; 0: none). */
  bootstrapIters?: number;
}

export interface LoadedItem extends McItem {
  docId: number;
  doc: Record<string, unknown>;
}

export async function loadTaskItems(task: MultipleChoiceTask, limit?: number, options: TaskRunOptions = {}): Promise<{ items: LoadedItem[]; file: string; original: number; pool?: LoadedItem[] }> {
  const file = options.dataFile ?? resolveDataFile(task.dataFile, task.name, options.dataDirs);
  // Few-shot needs every document (the pool); otherwise only the first `limit` are turned into items and the rest
  // are only counted (lm-eval's n-samples.original).
  const all = (options.numFewshot ?? 0) > 0;
  const pool: LoadedItem[] = [];
  let original = 0;
  try {
    for await (const { value, line } of readJsonLines(file)) {
      if (all || limit === undefined || original < limit) pool.push({ ...task.toItem(value, line), docId: original, doc: value });
      original++;
    }
  } catch (e) {
    if (e instanceof TopiaryError && e.file === undefined) throw e.inFile(file);
    throw e;
  }
  if (original === 0) throw new TopiaryError('E_DATA', `task ${task.name} has no items`, { file });
  const items = limit === undefined ? pool : pool.slice(0, limit);
  return { items, file, original, ...(all ? { pool } : {}) };
}

/** lm-eval's fewshot contexts: each item's requests with the sampled examples in front of their contexts. */
export function withFewshot(task: MultipleChoiceTask, items: readonly LoadedItem[], pool: readonly LoadedItem[], n: number, seed = 1234): LoadedItem[] {
  if (n <= 0) return [...items];
  const excludes = task.fewshotExcludesEval ?? true;
  const need = excludes ? n + 1 : n;
  if (pool.length < need) throw new TopiaryError('E_USAGE', `task ${task.name} has ${pool.length} documents, too few for ${n} few-shot examples`, { where: '--num-fewshot' });
  const rnd = new PyRandom(seed);
  const key = (d: LoadedItem) => JSON.stringify(d.doc);
  return items.map((item) => {
    let shots = rnd.sample(pool, need);
    if (excludes) {
      const self = key(item);
      shots = shots.filter((d) => key(d) !== self).slice(0, n);
    }
    const prefix = shots.map((d) => `${exampleText(d)}\n\n`).join('');
    return { ...item, requests: item.requests.map((r) => ({ context: prefix + r.context, continuation: r.continuation })) };
  });
}

function exampleText(item: McItem): string {
  if (item.fewshotExample !== undefined) return item.fewshotExample;
  const gold = item.requests[item.label]!;
  return gold.context + gold.continuation;
}

export async function evaluateTask(model: CausalLM, tokenizer: Tokenizer, task: MultipleChoiceTask, ctx: EvalContext, options: TaskRunOptions = {}): Promise<TaskReport> {
  const numFewshot = options.numFewshot ?? 0;
  const fewshotSeed = options.fewshotSeed ?? 1234;
  const loaded = await loadTaskItems(task, ctx.limit, options);
  const items = withFewshot(task, loaded.items, loaded.pool ?? [], numFewshot, fewshotSeed);
  const output = task.output ?? 'multiple_choice';
  const metrics = task.metrics ?? (output === 'loglikelihood' ? (['perplexity', 'acc'] as const) : (['acc', 'acc_norm'] as const));
  const flat: EncodedRequest[] = [];
  for (const item of items) for (const r of item.requests) flat.push(encodeRequest(tokenizer, r, options.bos ?? true));
  const scored = await scoreRequestsGreedy(model, flat, ctx, `eval:${task.name}`);
  let k = 0;
  const results: ItemResult[] = items.map((item) => {
    const ll = item.requests.map(() => scored.logLiks[k++]!);
    const greedy = scored.greedy.slice(k - ll.length, k);
    return {
      label: item.label,
      pred: output === 'loglikelihood' ? (greedy[0] ? 0 : -1) : argmax(ll),
      predNorm: output === 'loglikelihood' ? (greedy[0] ? 0 : -1) : argmax(ll.map((l, i) => l / Math.max(1, item.normLengths[i]!))),
      logLiks: ll,
      greedy,
      docId: item.docId,
      doc: item.doc,
      requests: item.requests,
      ...(item.target !== undefined ? { target: item.target } : { target: item.label }),
    };
  });
  const acc = meanStderr(results.map((r) => (r.pred === r.label ? 1 : 0)));
  const accNorm = meanStderr(results.map((r) => (r.predNorm === r.label ? 1 : 0)));
  let perplexity: number | undefined;
  let perplexityStderr: number | undefined;
  if (output === 'loglikelihood') {
    const lls = results.map((r) => r.logLiks[0]!);
    const meanOf = (xs: ArrayLike<number>) => {
      let s = 0;
      for (let i = 0; i < xs.length; i++) s += xs[i]!;
      return s / xs.length;
    };
    perplexity = Math.exp(-meanOf(lls));
    const iters = options.bootstrapIters ?? 100000;
    perplexityStderr = iters > 0 && lls.length > 1 ? bootstrapStderr((xs) => Math.exp(-meanOf(xs)), lls, iters) : Number.NaN;
    ctx.events.metric(`eval/${task.name}/perplexity`, perplexity);
  }
  ctx.events.metric(`eval/${task.name}/acc`, acc.mean);
  if (metrics.includes('acc_norm')) ctx.events.metric(`eval/${task.name}/acc_norm`, accNorm.mean);
  return {
    kind: 'task',
    task: task.name,
    acc: acc.mean,
    accStderr: acc.stderr,
    accNorm: accNorm.mean,
    accNormStderr: accNorm.stderr,
    n: results.length,
    predictions: results.map((r) => r.pred),
    predictionsNorm: results.map((r) => r.predNorm),
    items: results,
    dataFile: loaded.file,
    output,
    metrics,
    ...(perplexity !== undefined ? { perplexity, perplexityStderr: perplexityStderr! } : {}),
    original: loaded.original,
    numFewshot,
    fewshotSeed,
    definition: task,
  };
}
