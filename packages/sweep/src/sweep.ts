/**
 * Running a sweep: refuse run folders that hold another recipe, check the queue answers (when there is one), write
 * sweep.json and the report, run what is not complete — on this machine (`runEmbedded`) or on the queue's workers
 * (`runOnQueue`) — and record each outcome as it comes. `sweepStatus` rebuilds the same file later, from anywhere.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ioError, type TopiaryError } from '@topiary/kernel';
import { throwAll } from '@topiary/pipeline';
import type { SweepPlan } from './grid.js';
import { runEmbedded, type SweepEvent } from './embedded.js';
import type { ExecutorHost } from './execute-point.js';
import { foreignRunError } from './outcome.js';
import { checkQueue, queueStatus, runOnQueue, shownUrl } from './queue.js';
import { applyOutcome, markPoint, readSweepFile, refreshSweep, sweepFileOf, writeSweepFile, type SweepFile } from './sweep-file.js';
import { writeSweepReport } from './report.js';

export interface RunSweepOptions {
  host: Omit<ExecutorHost, 'worker'>;
  /** Runs at a time on this machine (embedded; default 1). */
  parallel?: number;
  /** `redis://host:port`: queue the runs for `topiary worker`s instead of running them here. */
  queue?: string;
  /** Attempts after a failed one, on the queue (default 2). */
  retries?: number;
  /** How often the queue is read while waiting (default 1 s). */
  pollMs?: number;
  /** Aborting it is a Ctrl-C. */
  signal?: AbortSignal;
  onEvent?: (event: SweepEvent) => void;
}

export interface SweepOutcome {
  sweep: SweepFile;
  /** 0 every run completed, 1 some failed, 130 stopped before the end (rerun to continue). */
  code: number;
  report: string;
  /** Runs that were complete before this call (skipped). */
  skipped: number;
}

function exitCodeOf(sweep: SweepFile): number {
  if (sweep.points.every((p) => p.status === 'completed')) return 0;
  if (sweep.points.some((p) => p.status === 'failed')) return 1;
  return 130;
}

export async function runSweep(plan: SweepPlan, options: RunSweepOptions): Promise<SweepOutcome> {
  throwAll(plan.points.map((p) => foreignRunError(p, plan.file)).filter((e): e is TopiaryError => e !== undefined));
  const queue = options.queue === undefined ? undefined : shownUrl(await checkQueue(options.queue));
  try {
    mkdirSync(plan.dir, { recursive: true });
  } catch (e) {
    throw ioError(e, plan.dir, 'create the sweep folder');
  }
  const sweep = sweepFileOf(plan, queue);
  const save = () => {
    writeSweepFile(sweep);
    writeSweepReport(sweep);
  };
  save();
  const todo = plan.points.filter((p) => sweep.points.find((r) => r.id === p.id)!.status !== 'completed');
  const onEvent = (event: SweepEvent) => {
    if (event.type === 'started') markPoint(sweep, event.point.id, 'running', event.worker);
    else if (event.type === 'queued') markPoint(sweep, event.point.id, 'queued');
    else if (event.type === 'finished') applyOutcome(sweep, event.outcome);
    if (event.type === 'started' || event.type === 'finished') save();
    options.onEvent?.(event);
  };
  if (options.queue === undefined) {
    await runEmbedded(plan, todo, { parallel: options.parallel ?? 1, host: options.host, onEvent, ...(options.signal ? { signal: options.signal } : {}) });
  } else {
    // Ctrl-C stops the waiting only: the jobs are the queue's now, and workers go on with them
    const abort = new AbortController();
    const onSigint = () => {
      options.onEvent?.({ type: 'stopping', message: 'stopped waiting: the runs stay queued and the workers go on; `topiary sweep --status` shows progress, running the sweep again waits again' });
      abort.abort();
    };
    process.on('SIGINT', onSigint);
    options.signal?.addEventListener('abort', onSigint, { once: true });
    try {
      await runOnQueue(plan, todo, { url: options.queue, signal: abort.signal, onEvent, ...(options.retries !== undefined ? { retries: options.retries } : {}), ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}) });
    } finally {
      process.off('SIGINT', onSigint);
      options.signal?.removeEventListener('abort', onSigint);
    }
  }
  save();
  return { sweep, code: exitCodeOf(sweep), report: join(plan.dir, 'report.html'), skipped: plan.points.length - todo.length };
}

/**
 * Where a sweep stands: its sweep.json brought up to date from the run folders, the attempts log and (with
 * `queue`) the queue's jobs; sweep.json and report.html are rewritten. `sweep` is the file to start from (else the
 * folder's sweep.json).
 */
export async function sweepStatus(
  dir: string,
  options: { queue?: string; sweep?: SweepFile } = {},
): Promise<{ sweep: SweepFile; report: string; queue?: { counts: Record<string, number>; workers: string[] } }> {
  const before = options.sweep ?? readSweepFile(dir);
  const seen = options.queue === undefined ? undefined : await queueStatus(options.queue, before.id, before.points.map((p) => p.id));
  const sweep = refreshSweep(before, seen?.jobs);
  try {
    mkdirSync(sweep.dir, { recursive: true });
  } catch (e) {
    throw ioError(e, sweep.dir, 'create the sweep folder');
  }
  writeSweepFile(sweep);
  return { sweep, report: writeSweepReport(sweep), ...(seen ? { queue: { counts: seen.counts, workers: seen.workers } } : {}) };
}
