/** The eval stage: perplexity files and zero-shot tasks, in the shape results.json and the report use. */
import { runEvaluation, reportToJson, type EvalJson } from '@topiary/eval';
import { checkNumber, checkString, isRecord, rejectUnknownKeys, TopiaryError, type CausalLM, type Raw } from '@topiary/kernel';
import type { EvalSummary } from '@topiary/report';
import type { StageEnv } from './env.js';

export interface EvalStageInput {
  perplexity: string[];
  tasks: string[];
  limit?: number;
  seqLen?: number;
  stride?: number;
  /** Put one BOS in front of each perplexity text (default: none). */
  bos?: boolean;
}

export const EVAL_KEYS = ['perplexity', 'tasks', 'limit', 'seqlen', 'stride', 'bos'] as const;

function stringList(value: unknown, where: string): string[] {
  if (value === undefined) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list)) throw new TopiaryError('E_RECIPE', 'must be a file name or a list of them', { where });
  return list.map((v, i) => checkString(v, `${where}[${i}]`));
}

/** Validate an eval stage's options from a recipe. */
export function validateEvalStage(raw: Raw, where: string): EvalStageInput {
  if (!isRecord(raw)) throw new TopiaryError('E_RECIPE', 'must be a mapping', { where });
  rejectUnknownKeys(raw, where, EVAL_KEYS);
  const input: EvalStageInput = { perplexity: stringList(raw.perplexity, `${where}.perplexity`), tasks: stringList(raw.tasks, `${where}.tasks`) };
  if (input.perplexity.length === 0 && input.tasks.length === 0) {
    throw new TopiaryError('E_RECIPE', 'an eval stage needs perplexity files or tasks', { where });
  }
  if (raw.limit !== undefined) input.limit = checkNumber(raw.limit, `${where}.limit`, { integer: true, min: 1 });
  if (raw.seqlen !== undefined) input.seqLen = checkNumber(raw.seqlen, `${where}.seqlen`, { integer: true, min: 2 });
  if (raw.stride !== undefined) input.stride = checkNumber(raw.stride, `${where}.stride`, { integer: true, min: 1 });
  if (raw.bos !== undefined) {
    if (typeof raw.bos !== 'boolean') throw new TopiaryError('E_RECIPE', `must be true or false, got ${JSON.stringify(raw.bos)}`, { where: `${where}.bos` });
    input.bos = raw.bos;
  }
  return input;
}

export function toSummary(json: EvalJson): EvalSummary {
  const summary: EvalSummary = { perplexity: {}, tasks: {} };
  for (const [file, p] of Object.entries(json.perplexity)) summary.perplexity[file] = { ppl: p.ppl, tokens: p.tokens };
  for (const [name, t] of Object.entries(json.tasks)) {
    summary.tasks[name] = {
      acc: t.acc,
      acc_norm: t.acc_norm,
      n: t.n,
      ...(t.acc_stderr !== null ? { acc_stderr: t.acc_stderr } : {}),
      ...(t.acc_norm_stderr !== null ? { acc_norm_stderr: t.acc_norm_stderr } : {}),
    };
  }
  return summary;
}

export async function runEvalStage(env: StageEnv, model: CausalLM, input: EvalStageInput): Promise<{ json: EvalJson; summary: EvalSummary }> {
  const report = await runEvaluation(
    model,
    env.tokenizer,
    { perplexity: input.perplexity, tasks: input.tasks, seqLen: input.seqLen, stride: input.stride, bos: input.bos },
    { events: env.run.events, limit: input.limit },
  );
  const json = reportToJson(report);
  return { json, summary: toSummary(json) };
}
