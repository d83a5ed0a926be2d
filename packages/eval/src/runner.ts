/** One call that runs perplexity files and tasks for a model and returns an EvalReport. */
import type { CausalLM, EvalContext, Tokenizer } from '@topiary/kernel';
import { evaluatePerplexity } from './perplexity.js';
import { evaluateTask, type TaskRunOptions } from './mc.js';
import type { EvalReport } from './results.js';
import { defaultTaskRegistry, type TaskRegistry } from './tasks.js';

export interface EvaluationSpec {
  /** Text files to compute perplexity on. */
  perplexity?: readonly string[];
  /** Task names (from `registry`). */
  tasks?: readonly string[];
  /** Window length for perplexity; default the model's maxSeqLen. */
  seqLen?: number;
  /** Sliding-window stride; default non-overlapping windows. */
  stride?: number;
  /** Put one BOS in front of each perplexity text; default false. */
  bos?: boolean;
  registry?: TaskRegistry;
  /** Label in the report. */
  model?: string;
  task?: TaskRunOptions;
}

export async function runEvaluation(model: CausalLM, tokenizer: Tokenizer, spec: EvaluationSpec, ctx: EvalContext): Promise<EvalReport> {
  const registry = spec.registry ?? defaultTaskRegistry();
  // Resolve every task name first: an unknown one fails before any compute.
  const tasks = (spec.tasks ?? []).map((n) => registry.get(n));
  const report: EvalReport = { ...(spec.model !== undefined ? { model: spec.model } : {}), perplexity: {}, tasks: {} };
  for (const file of spec.perplexity ?? []) {
    report.perplexity[file] = await evaluatePerplexity(model, tokenizer, { file, seqLen: spec.seqLen, stride: spec.stride, bos: spec.bos }, ctx);
  }
  for (const task of tasks) report.tasks[task.name] = await evaluateTask(model, tokenizer, task, ctx, spec.task);
  return report;
}
