/** One call that runs perplexity files and tasks for a model and returns an EvalReport. */
import type { CausalLM, EvalContext, Tokenizer } from '@topiary/kernel';
import { evaluatePerplexity } from './perplexity.js';
import { evaluateTask, type TaskRunOptions } from './mc.js';
import type { EvalReport } from './results.js';
import { isTaskPath, taskFromFile } from './schemas.js';
import { defaultTaskRegistry, type MultipleChoiceTask, type TaskRegistry } from './tasks.js';

export interface EvaluationSpec {
  /** Text files to compute perplexity on. */
  perplexity?: readonly string[];
  /**
   * Task names or aliases (from `registry`), comma lists (`piqa,hellaswag`), or task files by path
   * (`./mytask.jsonl`; see `taskFromFile`).
   */
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

/** `--tasks` entries split on commas, blanks dropped, duplicates removed (first kept). */
export function splitTaskList(specs: readonly string[]): string[] {
  return [...new Set(specs.flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== ''))];
}

/**
 * Resolve every `--tasks` entry before any compute: registered names and aliases (to the task's canonical lm-eval
 * name), and task files by path (schema detected from the first record). Unknown names and files that match no
 * schema fail here.
 */
export async function resolveTasks(specs: readonly string[], registry: TaskRegistry = defaultTaskRegistry(), cwd = process.cwd()): Promise<MultipleChoiceTask[]> {
  const tasks: MultipleChoiceTask[] = [];
  for (const spec of splitTaskList(specs)) {
    const task = isTaskPath(spec) ? await taskFromFile(spec, cwd) : registry.get(spec);
    if (!tasks.some((t) => t.name === task.name)) tasks.push(task);
  }
  return tasks;
}

export async function runEvaluation(model: CausalLM, tokenizer: Tokenizer, spec: EvaluationSpec, ctx: EvalContext): Promise<EvalReport> {
  const registry = spec.registry ?? defaultTaskRegistry();
  // Resolve every task first: an unknown one fails before any compute.
  const tasks = await resolveTasks(spec.tasks ?? [], registry);
  const report: EvalReport = { ...(spec.model !== undefined ? { model: spec.model } : {}), perplexity: {}, tasks: {} };
  for (const file of spec.perplexity ?? []) {
    report.perplexity[file] = await evaluatePerplexity(model, tokenizer, { file, seqLen: spec.seqLen, stride: spec.stride, bos: spec.bos }, ctx);
  }
  for (const task of tasks) report.tasks[task.name] = await evaluateTask(model, tokenizer, task, ctx, spec.task);
  return report;
}
