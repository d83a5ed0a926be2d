/**
 * Results in lm-evaluation-harness's shape (lm_eval/evaluator.py v0.4.8 `simple_evaluate` lines 335-361 and
 * `evaluate` lines 672-698; metric keys "<metric>,<filter>" with filter "none", stderr "<metric>_stderr,none",
 * "N/A" where lm-eval has no stderr), and per-document samples as lm-eval's --log_samples writes them (evaluate,
 * lines 565-595): doc_id, doc, target, arguments, resps, filtered_resps, filter, metrics, doc_hash, prompt_hash,
 * target_hash and the per-document metric values.
 *
 * Perplexity files are reported as loglikelihood_rolling tasks named after the file, with lm-eval's
 * word_perplexity, byte_perplexity and bits_per_byte (see perplexity.ts) beside our own window protocol's numbers.
 */
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import type { TaskReport } from './mc.js';
import type { PerplexityReport } from './perplexity.js';
import type { EvalReport } from './results.js';

export interface LmEvalRunInfo {
  /** lm-eval's `config.model` (we put "topiary"). */
  model?: string;
  /** lm-eval's `config.model_args` string, e.g. "pretrained=assets/models/stories260K-hf,tokenizer=…". */
  modelArgs: string;
  batchSize?: number;
  device?: string;
  limit?: number | null;
  bootstrapIters?: number;
  randomSeed?: number;
  fewshotSeed?: number;
  /** ISO date or seconds since the epoch (lm-eval writes time.time()). */
  date?: number;
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const hashString = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');
const num = (x: number | undefined): number | 'N/A' => (x !== undefined && Number.isFinite(x) ? x : 'N/A');

function taskResults(t: TaskReport): Record<string, Json> {
  const out: Record<string, Json> = { alias: t.task };
  for (const m of t.metrics) {
    if (m === 'acc') {
      out['acc,none'] = t.acc;
      out['acc_stderr,none'] = num(t.accStderr);
    } else if (m === 'acc_norm') {
      out['acc_norm,none'] = t.accNorm;
      out['acc_norm_stderr,none'] = num(t.accNormStderr);
    } else if (m === 'perplexity') {
      out['perplexity,none'] = num(t.perplexity);
      out['perplexity_stderr,none'] = num(t.perplexityStderr);
    }
  }
  return out;
}

const aggregation: Record<string, string> = { acc: 'mean', acc_norm: 'mean', perplexity: 'perplexity' };

function taskConfig(t: TaskReport): Record<string, Json> {
  const d = t.definition;
  const c = d.lmEval;
  return {
    task: t.task,
    dataset_path: t.dataFile,
    ...(c?.yaml ? { lm_eval_source: c.yaml } : {}),
    output_type: t.output,
    ...(c ? { doc_to_text: c.doc_to_text, doc_to_target: c.doc_to_target } : {}),
    ...(c?.doc_to_choice !== undefined ? { doc_to_choice: c.doc_to_choice } : {}),
    description: '',
    target_delimiter: ' ',
    fewshot_delimiter: '\n\n',
    fewshot_config: { sampler: 'default', split: 'the evaluated file', excludes_evaluated_doc: d.fewshotExcludesEval ?? true },
    num_fewshot: t.numFewshot,
    metric_list: t.metrics.map((m) => ({ metric: m, aggregation: aggregation[m]!, higher_is_better: m !== 'perplexity' })),
    metadata: { version: c?.version ?? 1.0 },
  };
}

function perplexityResults(p: PerplexityReport): Record<string, Json> {
  return {
    alias: basename(p.source),
    'word_perplexity,none': num(p.wordPerplexity),
    'word_perplexity_stderr,none': 'N/A',
    'byte_perplexity,none': num(p.bytePerplexity),
    'byte_perplexity_stderr,none': 'N/A',
    'bits_per_byte,none': num(p.bitsPerByte),
    'bits_per_byte_stderr,none': 'N/A',
    // ours, beside lm-eval's: the window protocol's token perplexity
    'token_perplexity,none': p.ppl,
    tokens_scored: p.tokens,
    all_tokens_scored: p.allTokensScored,
  };
}

/** The results.json lm-eval writes (without the environment fields: pretty_env_info, transformers_version, …). */
export function reportToLmEval(report: EvalReport, info: LmEvalRunInfo): Record<string, Json> {
  const results: Record<string, Json> = {};
  const configs: Record<string, Json> = {};
  const versions: Record<string, Json> = {};
  const nShot: Record<string, Json> = {};
  const higher: Record<string, Json> = {};
  const nSamples: Record<string, Json> = {};
  const subtasks: Record<string, Json> = {};
  for (const [name, t] of Object.entries(report.tasks)) {
    results[name] = taskResults(t);
    configs[name] = taskConfig(t);
    versions[name] = t.definition.lmEval?.version ?? 1.0;
    nShot[name] = t.numFewshot;
    higher[name] = Object.fromEntries(t.metrics.map((m) => [m, m !== 'perplexity']));
    nSamples[name] = { original: t.original, effective: t.n };
    subtasks[name] = [];
  }
  for (const [file, p] of Object.entries(report.perplexity)) {
    results[file] = perplexityResults(p);
    configs[file] = {
      task: file,
      dataset_path: file,
      output_type: 'loglikelihood_rolling',
      window: { seqlen: p.seqLen, stride: p.stride, mode: p.mode, bos: p.bos },
      metric_list: ['word_perplexity', 'byte_perplexity', 'bits_per_byte'].map((m) => ({ metric: m, aggregation: m === 'bits_per_byte' ? 'bits_per_byte' : 'weighted_perplexity', higher_is_better: false })),
      metadata: { version: 1.0 },
    };
    versions[file] = 1.0;
    nShot[file] = 0;
    higher[file] = { word_perplexity: false, byte_perplexity: false, bits_per_byte: false };
    nSamples[file] = { original: 1, effective: 1 };
    subtasks[file] = [];
  }
  const sorted = (o: Record<string, Json>) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return {
    results,
    group_subtasks: subtasks,
    configs: sorted(configs),
    versions: sorted(versions),
    'n-shot': sorted(nShot),
    higher_is_better: sorted(higher),
    'n-samples': nSamples,
    config: {
      model: info.model ?? 'topiary',
      model_args: info.modelArgs,
      batch_size: info.batchSize ?? null,
      batch_sizes: [],
      device: info.device ?? null,
      use_cache: null,
      limit: info.limit ?? null,
      bootstrap_iters: info.bootstrapIters ?? 100000,
      gen_kwargs: null,
      random_seed: info.randomSeed ?? 0,
      numpy_seed: 1234,
      torch_seed: 1234,
      fewshot_seed: info.fewshotSeed ?? 1234,
    },
    git_hash: null,
    date: info.date ?? Date.now() / 1000,
  };
}

/** lm-eval's logged samples of one task (one object per evaluated document, in document order). */
export function taskSamples(t: TaskReport): Record<string, Json>[] {
  return t.items.map((it) => {
    const args = it.requests.map((r) => [r.context, r.continuation] as Json);
    const resps = it.logLiks.map((ll, i) => [ll, it.greedy[i]!] as Json);
    const metricValues: Record<string, Json> = {};
    if (t.output === 'loglikelihood') {
      if (t.metrics.includes('perplexity')) metricValues.perplexity = it.logLiks[0]!;
      if (t.metrics.includes('acc')) metricValues.acc = it.greedy[0] ? 1 : 0;
    } else {
      if (t.metrics.includes('acc')) metricValues.acc = it.pred === it.label ? 1.0 : 0.0;
      if (t.metrics.includes('acc_norm')) metricValues.acc_norm = it.predNorm === it.label ? 1.0 : 0.0;
    }
    const target = it.target ?? it.label;
    return {
      doc_id: it.docId,
      doc: it.doc as Json,
      target,
      arguments: args,
      resps: resps.map((r) => [r]),
      filtered_resps: resps,
      filter: 'none',
      metrics: Object.keys(metricValues),
      doc_hash: hashString(JSON.stringify(it.doc, null, 2)),
      prompt_hash: hashString(it.requests[0]!.context),
      target_hash: hashString(String(target)),
      ...metricValues,
    };
  });
}

/** JSON lines of `taskSamples` (lm-eval's samples_<task>_<date>.jsonl). */
export function samplesJsonl(t: TaskReport): string {
  return taskSamples(t).map((s) => JSON.stringify(s)).join('\n') + '\n';
}
