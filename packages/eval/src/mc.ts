/**
 * Zero-shot multiple choice, lm-eval-harness style. For each request (context, continuation):
 * - trailing spaces of the context move to the front of the continuation, then
 *   `whole = encode(context + continuation)`, `ctx = encode(context)`, `cont = whole[len(ctx):]`
 *   (lm-eval's `_encode_pair`); both encodings start with BOS when `bos` is on (default — what lm-eval did for
 *   Llama tokenizers that add BOS; an empty context is then just [BOS]);
 * - the sequence `ctx + cont` keeps its last maxSeqLen + 1 tokens (left truncation, as lm-eval);
 * - loglik = Σ log p(cont tokens | everything before).
 * acc: the choice with the highest loglik is right (first on ties, like numpy's argmax); acc_norm: highest
 * loglik / character length of the choice (lm-eval). Standard errors: sample standard deviation (n − 1) of the
 * per-item 0/1 scores over √n (lm-eval's `mean_stderr`).
 */
import { TopiaryError, type CausalLM, type EvalContext, type TaskResult, type Tokenizer } from '@topiary/kernel';
import { readJsonLines } from '@topiary/corpus';
import { resolveDataFile } from './data.js';
import { nextTokenLogProbs } from './scoring.js';
import type { McItem, McRequest, MultipleChoiceTask } from './tasks.js';

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
}

export interface TaskReport extends TaskResult {
  predictions: number[];
  predictionsNorm: number[];
  items: ItemResult[];
  dataFile: string;
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
  const maxLen = model.config.maxSeqLen + 1;
  const seqs = encoded.map((r) => [...r.context, ...r.continuation].slice(-maxLen));
  const order = seqs.map((_, i) => i).sort((a, b) => seqs[b]!.length - seqs[a]!.length || a - b);
  const out = new Array<number>(encoded.length).fill(0);
  const batchSize = Math.max(1, ctx.batchSize ?? 16);
  ctx.events.progress(task, 0, order.length, undefined, 'requests');
  for (let i = 0; i < order.length; i += batchSize) {
    if (ctx.signal?.aborted) throw new TopiaryError('E_INTERNAL', 'evaluation aborted');
    const idx = order.slice(i, i + batchSize).filter((k) => encoded[k]!.continuation.length > 0 && seqs[k]!.length >= 2);
    const { logProbs } = nextTokenLogProbs(model, idx.map((k) => seqs[k]!));
    idx.forEach((k, j) => {
      const lp = logProbs[j]!;
      const contLen = Math.min(encoded[k]!.continuation.length, seqs[k]!.length - 1);
      let sum = 0;
      for (let q = lp.length - contLen; q < lp.length; q++) sum += lp[q]!;
      out[k] = sum;
    });
    ctx.events.progress(task, Math.min(order.length, i + batchSize), order.length, undefined, 'requests');
    await new Promise((r) => setImmediate(r));
  }
  return out;
}

export interface TaskRunOptions {
  /** Prepend BOS to contexts. Default true. */
  bos?: boolean;
  /** Read items from this file instead of the task's own (same schema). */
  dataFile?: string;
  /** Folders to look for the task's data file in (default `evalDataDirs()`). */
  dataDirs?: string[];
}

export async function loadTaskItems(task: MultipleChoiceTask, limit?: number, options: TaskRunOptions = {}): Promise<{ items: McItem[]; file: string }> {
  const file = options.dataFile ?? resolveDataFile(task.dataFile, task.name, options.dataDirs);
  const items: McItem[] = [];
  try {
    for await (const { value, line } of readJsonLines(file)) {
      if (limit !== undefined && items.length >= limit) break;
      items.push(task.toItem(value, line));
    }
  } catch (e) {
    if (e instanceof TopiaryError && e.file === undefined) throw e.inFile(file);
    throw e;
  }
  if (items.length === 0) throw new TopiaryError('E_DATA', `task ${task.name} has no items`, { file });
  return { items, file };
}

export async function evaluateTask(model: CausalLM, tokenizer: Tokenizer, task: MultipleChoiceTask, ctx: EvalContext, options: TaskRunOptions = {}): Promise<TaskReport> {
  const { items, file } = await loadTaskItems(task, ctx.limit, options);
  const flat: EncodedRequest[] = [];
  for (const item of items) for (const r of item.requests) flat.push(encodeRequest(tokenizer, r, options.bos ?? true));
  const logLiks = await scoreRequests(model, flat, ctx, `eval:${task.name}`);
  let k = 0;
  const results: ItemResult[] = items.map((item) => {
    const ll = item.requests.map(() => logLiks[k++]!);
    return {
      label: item.label,
      pred: argmax(ll),
      predNorm: argmax(ll.map((l, i) => l / Math.max(1, item.normLengths[i]!))),
      logLiks: ll,
    };
  });
  const acc = meanStderr(results.map((r) => (r.pred === r.label ? 1 : 0)));
  const accNorm = meanStderr(results.map((r) => (r.predNorm === r.label ? 1 : 0)));
  ctx.events.metric(`eval/${task.name}/acc`, acc.mean);
  ctx.events.metric(`eval/${task.name}/acc_norm`, accNorm.mean);
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
    dataFile: file,
  };
}
