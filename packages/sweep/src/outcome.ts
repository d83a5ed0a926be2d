/**
 * What a sweep knows about one run: the state of its folder, what it measured (`PointMetrics`, the numbers the
 * table and the frontier plot need — small enough to travel back through a queue), and the attempts log every
 * process that runs a point appends to.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { ioError, TopiaryError } from '@topiary/kernel';
import { readResults, type RunResults } from '@topiary/report';
import type { SweepPoint } from './grid.js';

/**
 * Where a point stands: `pending` (nothing yet), `queued` (waiting on the queue), `running`, `partial` (its folder
 * holds an unfinished run: it resumes), `completed`, `interrupted` (stopped by Ctrl-C: it resumes), `failed`.
 */
export type PointStatus = 'pending' | 'queued' | 'running' | 'partial' | 'completed' | 'interrupted' | 'failed';

export interface PointMetrics {
  /** The prune methods in order (`depth+wanda`), or `none` for a recipe that prunes nothing. */
  method: string;
  /** Sparsity after the last stage that measured it (fraction of zeros over the pruned layers). */
  sparsity?: number;
  /** Parameters after the last stage that counted them (non-zero weights for element pruning). */
  parameters?: number;
  /** Parameters of the input model. */
  parametersBefore?: number;
  /** The last evaluation's perplexity, per file. */
  perplexity: Record<string, number>;
  /** The first evaluation's perplexity when it measured the input model (an eval before any change), per file. */
  baseline?: Record<string, number>;
  /** The last evaluation's accuracy, per task. */
  accuracy: Record<string, number>;
  /** Seconds over all stages. */
  seconds: number;
}

/** What running a point came to, as the process that ran it reports it (and a queue job returns). */
export interface PointOutcome {
  id: string;
  status: 'completed' | 'interrupted' | 'failed';
  metrics?: PointMetrics;
  error?: { code: string; message: string };
  /** The folder was already complete: nothing ran. */
  skipped?: boolean;
  /** It continued a run folder an earlier attempt left. */
  resumed?: boolean;
  /** Which process ran it (`host:pid`). */
  worker?: string;
}

/** The numbers of a run (its results.json) that a sweep compares. */
export function metricsOf(results: RunResults): PointMetrics {
  const stages = results.stages;
  const prunes = stages.filter((s) => s.kind === 'prune').map((s) => s.name);
  const evals = stages.filter((s) => s.eval);
  const last = evals[evals.length - 1];
  // the input model was measured when an eval came before the first stage that changed the model
  const firstChange = stages.findIndex((s) => s.kind !== 'eval');
  const inputEval = stages.slice(0, firstChange < 0 ? stages.length : firstChange).find((s) => s.eval);
  const ppl = (e: (typeof stages)[number] | undefined) => Object.fromEntries(Object.entries(e?.eval?.perplexity ?? {}).map(([f, p]) => [f, p.ppl]));
  const lastDefined = <K extends 'sparsity' | 'parametersAfter'>(key: K) => [...stages].reverse().find((s) => s[key] !== undefined)?.[key];
  return {
    method: prunes.length ? prunes.join('+') : 'none',
    ...(lastDefined('sparsity') !== undefined ? { sparsity: lastDefined('sparsity') } : {}),
    ...(lastDefined('parametersAfter') !== undefined ? { parameters: lastDefined('parametersAfter') } : {}),
    ...(stages.find((s) => s.parametersBefore !== undefined) ? { parametersBefore: stages.find((s) => s.parametersBefore !== undefined)!.parametersBefore } : {}),
    perplexity: ppl(last),
    ...(inputEval && inputEval !== last
      ? { baseline: ppl(inputEval) }
      : results.baseline
        ? { baseline: Object.fromEntries(Object.entries(results.baseline.perplexity).map(([f, p]) => [f, p.ppl])) }
        : {}),
    accuracy: Object.fromEntries(Object.entries(last?.eval?.tasks ?? {}).map(([t, r]) => [t, r.acc])),
    seconds: stages.reduce((s, x) => s + x.seconds, 0),
  };
}

/** What a run folder holds: nothing, an unfinished run (resumable), or a completed one (with its results). */
export function runFolderState(dir: string): { state: 'absent' | 'partial' | 'completed'; results?: RunResults } {
  if (!existsSync(join(dir, 'state.json'))) return { state: 'absent' };
  const file = join(dir, 'results.json');
  const results = existsSync(file) ? readResults(file) : undefined;
  return results?.status === 'completed' ? { state: 'completed', results } : { state: 'partial', ...(results ? { results } : {}) };
}

/** Plain data with its keys sorted, as one string: two recipes compare equal when they say the same. */
function canonical(value: unknown): string {
  const sort = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sort) : typeof v === 'object' && v !== null ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort((v as Record<string, unknown>)[k])])) : v;
  return JSON.stringify(sort(value));
}

/**
 * A run folder left by an earlier sweep with the same run name but another recipe (the grid was edited): resuming
 * it would mix two experiments, so it is refused, naming the folder.
 */
export function foreignRunError(point: SweepPoint, gridFile: string): TopiaryError | undefined {
  const file = join(point.runDir, 'recipe.resolved.yaml');
  if (!existsSync(file)) return undefined;
  const recorded: unknown = parseYaml(readFileSync(file, 'utf8'));
  const expected: unknown = parseYaml(stringifyYaml(point.document));
  if (canonical(recorded) === canonical(expected)) return undefined;
  return new TopiaryError('E_USAGE', `run folder ${point.runDir} holds a run of another recipe (the grid changed since it ran)`, {
    file: gridFile,
    where: point.id,
    hint: 'give the sweep another folder (--out), or delete that run folder to run it again',
  });
}

/** One line of `attempts.jsonl`: a process started or ended a run. Every attempt leaves its lines, whoever ran it. */
export interface AttemptEvent {
  id: string;
  event: 'started' | 'completed' | 'interrupted' | 'failed';
  /** The sweep or worker process that ran it (`host:pid`). */
  worker: string;
  /** The process that ran the stages. */
  pid: number;
  host: string;
  time: string;
  resumed?: boolean;
  error?: string;
}

export const ATTEMPTS_FILE = 'attempts.jsonl';

/** Append one attempt line (a short append: whole lines even from processes on other machines sharing the folder). */
export function appendAttempt(sweepDir: string, event: Omit<AttemptEvent, 'pid' | 'host' | 'time'>): void {
  const file = join(sweepDir, ATTEMPTS_FILE);
  const line = JSON.stringify({ ...event, pid: process.pid, host: hostname(), time: new Date().toISOString() });
  try {
    mkdirSync(sweepDir, { recursive: true });
    appendFileSync(file, `${line}\n`);
  } catch (e) {
    throw ioError(e, file, 'append to the attempts log');
  }
}

/** Every attempt line (a torn last line, from a killed process, is skipped). */
export function readAttempts(sweepDir: string): AttemptEvent[] {
  const file = join(sweepDir, ATTEMPTS_FILE);
  if (!existsSync(file)) return [];
  const out: AttemptEvent[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      out.push(JSON.parse(line) as AttemptEvent);
    } catch {
      /* a line cut by a kill */
    }
  }
  return out;
}
