/**
 * Running one point of a sweep: the ordinary pipeline (`openRun` + `executeRecipe`) on the point's recipe, into its
 * run folder — resumed when an earlier attempt left it unfinished, skipped when it is complete. This runs inside the
 * child process a sweep or a worker starts for each run (`child.ts`), so a crash costs that run only.
 */
import { EventBus, TopiaryError, validateRecipe } from '@topiary/kernel';
import { executeRecipe, openRun, RunFolder } from '@topiary/pipeline';
import { appendAttempt, metricsOf, runFolderState, type PointOutcome } from './outcome.js';

/** One run of a sweep, as it travels to a child process or through a queue: plain JSON. */
export interface PointJob {
  /** The sweep's id (names its jobs on a shared queue). */
  sweep: string;
  /** The sweep folder (the attempts log, logs/). */
  sweepDir: string;
  /** The grid file, for messages. */
  file: string;
  id: string;
  runDir: string;
  /** The run's recipe, paths absolute (`SweepPoint.document`). */
  document: Record<string, unknown>;
}

/** What the process that runs points brings of its own: where its plugins are installed, and who it is. */
export interface ExecutorHost {
  /** Where installed plugins are looked for (the CLI's: the working directory and its own install). */
  pluginRoots: string[];
  /** Extra plugin paths (--plugin), loaded only with allowPluginPath. */
  plugin: string[];
  allowPluginPath: boolean;
  /** The sweep or worker process handing out the runs (`host:pid`), recorded in the attempts log. */
  worker: string;
}

function describe(error: unknown): { code: string; message: string } {
  if (error instanceof TopiaryError) return { code: error.code, message: error.describe() };
  return { code: 'E_INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

/**
 * Run (or resume, or skip) one point. `log` receives the run's log lines (info and up). Never throws for a run
 * that fails: the outcome says so, with the error as a person reads it.
 */
export async function executePoint(job: PointJob, host: ExecutorHost, log: (line: string) => void, signal?: AbortSignal): Promise<PointOutcome> {
  const base = { id: job.id, worker: host.worker };
  const before = runFolderState(job.runDir);
  if (before.state === 'completed') return { ...base, status: 'completed', skipped: true, metrics: metricsOf(before.results!) };
  const resumed = before.state === 'partial';
  appendAttempt(job.sweepDir, { id: job.id, event: 'started', worker: host.worker, resumed });
  const events = new EventBus();
  events.on('log', (e) => {
    if (e.level !== 'debug') log(`${new Date().toISOString()} ${e.level} ${e.message}`);
  });
  let outcome: PointOutcome = { ...base, status: 'interrupted', resumed };
  try {
    // a Ctrl-C that came before the run began stops it here (a signal already aborted would not reach the run)
    if (!signal?.aborted) {
      const recipe = validateRecipe(job.document, job.file);
      const run = await openRun({ backend: recipe.backend, seed: recipe.seed, plugin: host.plugin, allowPluginPath: host.allowPluginPath }, host.pluginRoots, {
        required: recipe.plugins,
        events,
      });
      try {
        if (!signal?.aborted) {
          const done = await executeRecipe(run, recipe, new RunFolder(job.runDir), resumed, { ...(signal ? { signal } : {}) });
          outcome = { ...base, status: done.code === 0 ? 'completed' : 'interrupted', metrics: metricsOf(done.results), resumed };
        }
      } finally {
        run.close();
      }
    }
  } catch (error) {
    outcome = { ...base, status: 'failed', error: describe(error), resumed };
    log(`${new Date().toISOString()} error ${outcome.error!.message}`);
  }
  appendAttempt(job.sweepDir, { id: job.id, event: outcome.status, worker: host.worker, resumed, ...(outcome.error ? { error: outcome.error.message } : {}) });
  return outcome;
}
