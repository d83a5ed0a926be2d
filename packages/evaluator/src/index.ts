/**
 * @topiary/evaluator — the thin composition behind `topiary eval`: load each model and its tokenizer, run the
 * perplexity files and tasks of @topiary/eval on each, and put the reports side by side.
 */
import type { CausalLM, EvalContext, Tokenizer } from '@topiary/kernel';
import { loadTokenizer } from '@topiary/corpus';
import { compareMarkdown, reportToJson, reportToMarkdown, runEvaluation, type EvalJson, type EvalReport, type EvaluationSpec } from '@topiary/eval';
import { checkTokenizer, loadModel } from '@topiary/model-llama';

export interface ModelEntry {
  /** Label in reports (default: the path). */
  name?: string;
  /** A loaded model, or a path for `loadModel`. */
  model: CausalLM | string;
  /** A loaded tokenizer, or a path for `loadTokenizer`. */
  tokenizer: Tokenizer | string;
}

export interface ComparisonResult {
  reports: EvalReport[];
  /** One JSON object per model (the CLI shape). */
  json: EvalJson[];
  /** Per-model Markdown tables. */
  markdown: string;
  /** Side-by-side table (metric rows, model columns, Δ last − first); empty for a single model. */
  comparison: string;
}

/** Evaluate one model; loads it (and disposes it afterwards) when given a path. */
export async function evaluateModel(entry: ModelEntry, spec: EvaluationSpec, ctx: EvalContext): Promise<EvalReport> {
  const tokenizer = typeof entry.tokenizer === 'string' ? await loadTokenizer(entry.tokenizer) : entry.tokenizer;
  const owned = typeof entry.model === 'string';
  const model = typeof entry.model === 'string' ? await loadModel(entry.model) : entry.model;
  try {
    checkTokenizer(model, tokenizer, typeof entry.model === 'string' ? entry.model : (entry.name ?? 'model'), typeof entry.tokenizer === 'string' ? entry.tokenizer : undefined);
    const name = entry.name ?? (typeof entry.model === 'string' ? entry.model : undefined);
    return await runEvaluation(model, tokenizer, { ...spec, ...(name !== undefined ? { model: name } : {}) }, ctx);
  } finally {
    if (owned) model.dispose();
  }
}

/** Evaluate several models one after another (one in memory at a time) and compare them. */
export async function evaluateModels(entries: readonly ModelEntry[], spec: EvaluationSpec, ctx: EvalContext): Promise<ComparisonResult> {
  const reports: EvalReport[] = [];
  for (const [i, entry] of entries.entries()) {
    ctx.events.log('info', `evaluating ${entry.name ?? (typeof entry.model === 'string' ? entry.model : `model ${i + 1}`)}`);
    reports.push(await evaluateModel(entry, spec, ctx));
  }
  return {
    reports,
    json: reports.map((r) => reportToJson(r)),
    markdown: reports.map(reportToMarkdown).join('\n'),
    comparison: reports.length > 1 ? compareMarkdown(reports) : '',
  };
}
