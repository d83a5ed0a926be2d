/**
 * The shape of a run folder's `results.json`, written by `topiary run` (and the single-stage commands) and read
 * by the report. Metrics over time live beside it in `metrics.jsonl` (one kernel MetricEvent per line).
 */
import { existsSync, readFileSync } from 'node:fs';
import { TopiaryError, type MetricEvent } from '@topiary/kernel';

export interface LayerWidths {
  nHeads: number;
  nKvHeads: number;
  hiddenDim: number;
}

export interface ArchitectureSnapshot {
  dim: number;
  parameters: number;
  /** Per block; a removed block is absent. */
  layers: readonly LayerWidths[];
}

export interface EvalSummary {
  perplexity: Record<string, { ppl: number; tokens: number }>;
  tasks: Record<string, { acc: number; acc_norm: number; n: number; acc_stderr?: number; acc_norm_stderr?: number }>;
}

export interface StageResult {
  index: number;
  kind: 'prune' | 'finetune' | 'train' | 'eval';
  /** Method for prune stages, else the kind. */
  name: string;
  seconds: number;
  parametersBefore?: number;
  parametersAfter?: number;
  /** Fraction of zeros over the pruned linear layers. */
  sparsity?: number;
  /** Per linear layer sparsity after the stage. */
  layers?: readonly { param: string; layer: number; sparsity: number }[];
  architectureBefore?: ArchitectureSnapshot;
  architectureAfter?: ArchitectureSnapshot;
  /**
   * Group saliency scores by group kind (a sample), for histograms. The prune stage fills it from the pruner's
   * `details.groupScores` (or `details.saliency` when that is such a record); the report also reads
   * `details.groupScores` itself.
   */
  saliency?: Record<string, readonly number[]>;
  eval?: EvalSummary;
  details?: Record<string, unknown>;
}

export interface RunResults {
  /** The run folder's name (what `topiary run` writes); the report's title falls back to it. */
  name?: string;
  /** The recipe's own `name` (recipeEnvelope.name), when the writer records it; the report's title. */
  recipeName?: string;
  /** The recipe file the run was started from. */
  recipe?: string;
  model?: string;
  backend?: string;
  started: string;
  finished?: string;
  status: 'running' | 'completed' | 'interrupted' | 'failed';
  /** The evaluation of the input model, when the recipe evaluates before changing it. */
  baseline?: EvalSummary;
  stages: StageResult[];
  error?: { code: string; message: string };
}

export function readResults(path: string): RunResults {
  if (!existsSync(path)) throw new TopiaryError('E_IO', 'no results.json in the run folder', { where: path, hint: 'is this a run folder written by topiary run?' });
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as RunResults;
  } catch (e) {
    throw new TopiaryError('E_FORMAT', `results.json is not valid JSON: ${(e as Error).message}`, { file: path });
  }
}

/** Metric events from a metrics.jsonl file; a torn last line (a killed run) is skipped, others are errors. */
export function readMetrics(path: string): MetricEvent[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8').split('\n');
  const out: MetricEvent[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      const e = JSON.parse(line) as MetricEvent;
      if (e.type === 'metric' && typeof e.name === 'string' && typeof e.value === 'number') out.push(e);
    } catch {
      if (i < lines.length - 2) throw new TopiaryError('E_FORMAT', 'malformed JSON line', { file: path, where: `line ${i + 1}` });
    }
  });
  return out;
}
