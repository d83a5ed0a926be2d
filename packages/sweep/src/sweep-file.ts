/**
 * `sweep.json`: one record per run of a sweep — its axis values, its folder, where it stands, what it measured —
 * written atomically by the process that drives the sweep (with `report.html` beside it), and rebuilt by
 * `topiary sweep --status` from the run folders, the attempts log and the queue.
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { TopiaryError } from '@topiary/kernel';
import { writeJsonAtomic } from '@topiary/files';
import type { SweepAxis, SweepPlan } from './grid.js';
import { metricsOf, readAttempts, runFolderState, type PointMetrics, type PointOutcome, type PointStatus } from './outcome.js';
import type { QueuedJobState } from './queue.js';

export const SWEEP_FILE = 'sweep.json';

export interface SweepPointRecord {
  id: string;
  /** Axis name → this run's value. */
  values: Record<string, unknown>;
  runDir: string;
  status: PointStatus;
  /** The process that ran it last (`host:pid`). */
  worker?: string;
  /** Why it failed (the last attempt's error). */
  error?: string;
  metrics?: PointMetrics;
}

export interface SweepFile {
  name: string;
  /** The grid file. */
  grid: string;
  /** The sweep folder. */
  dir: string;
  /** Names the sweep's jobs on a shared queue. */
  id: string;
  /** The queue it was last run on (password hidden), when distributed. */
  queue?: string;
  updated: string;
  axes: SweepAxis[];
  counts: Partial<Record<PointStatus, number>>;
  points: SweepPointRecord[];
}

function countsOf(points: readonly SweepPointRecord[]): Partial<Record<PointStatus, number>> {
  const counts: Partial<Record<PointStatus, number>> = {};
  for (const p of points) counts[p.status] = (counts[p.status] ?? 0) + 1;
  return counts;
}

/** A sweep file for `plan`, each run's state read from its folder (complete, unfinished, or not started). */
export function sweepFileOf(plan: SweepPlan, queue?: string): SweepFile {
  const points = plan.points.map((point): SweepPointRecord => {
    const { state, results } = runFolderState(point.runDir);
    const base = { id: point.id, values: point.values, runDir: point.runDir };
    if (state === 'completed') return { ...base, status: 'completed', metrics: metricsOf(results!) };
    return { ...base, status: state === 'partial' ? 'partial' : 'pending' };
  });
  return { name: plan.name, grid: plan.file, dir: plan.dir, id: plan.id, ...(queue ? { queue } : {}), updated: new Date().toISOString(), axes: plan.axes, counts: countsOf(points), points };
}

/** Record what a run came to. */
export function applyOutcome(sweep: SweepFile, outcome: PointOutcome): void {
  const record = sweep.points.find((p) => p.id === outcome.id);
  if (!record) return;
  record.status = outcome.status;
  if (outcome.worker) record.worker = outcome.worker;
  if (outcome.metrics) record.metrics = outcome.metrics;
  if (outcome.error) record.error = outcome.error.message;
  else delete record.error;
  sweep.counts = countsOf(sweep.points);
  sweep.updated = new Date().toISOString();
}

/** Mark a run as started (or queued) by `worker`. */
export function markPoint(sweep: SweepFile, id: string, status: PointStatus, worker?: string): void {
  const record = sweep.points.find((p) => p.id === id);
  if (!record) return;
  record.status = status;
  if (worker) record.worker = worker;
  sweep.counts = countsOf(sweep.points);
  sweep.updated = new Date().toISOString();
}

export function writeSweepFile(sweep: SweepFile): string {
  const path = join(sweep.dir, SWEEP_FILE);
  writeJsonAtomic(path, sweep);
  return path;
}

export function readSweepFile(dir: string): SweepFile {
  const path = join(dir, SWEEP_FILE);
  if (!existsSync(path)) throw new TopiaryError('E_USAGE', 'not a sweep folder (no sweep.json)', { where: dir, hint: 'pass the folder `topiary sweep GRID` wrote, or the grid file itself' });
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as SweepFile;
  } catch (e) {
    throw new TopiaryError('E_FORMAT', `sweep.json is unreadable: ${(e as Error).message}`, { file: path });
  }
}

/** Whether a process of this machine is alive (a process of another machine is taken to be). */
function alive(host: string, pid: number): boolean {
  if (host !== hostname()) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A sweep's state now, from what is on disk and (given) the queue: a complete run folder is completed; else the
 * queue's word (completed, failed, active → running, waiting/delayed → queued); else the attempts log (an attempt
 * started by a process still alive → running); else an unfinished folder is `partial`.
 */
export function refreshSweep(sweep: SweepFile, jobs?: ReadonlyMap<string, QueuedJobState>): SweepFile {
  const attempts = readAttempts(sweep.dir);
  const points = sweep.points.map((record): SweepPointRecord => {
    const { state, results } = runFolderState(record.runDir);
    const base: SweepPointRecord = { id: record.id, values: record.values, runDir: record.runDir, status: record.status, ...(record.worker ? { worker: record.worker } : {}) };
    if (state === 'completed') return { ...base, status: 'completed', metrics: metricsOf(results!) };
    const job = jobs?.get(record.id);
    if (job) {
      const worker = job.worker ? { worker: job.worker } : {};
      if (job.state === 'completed' && job.outcome) return { ...base, ...worker, status: 'completed', ...(job.outcome.metrics ? { metrics: job.outcome.metrics } : {}) };
      if (job.state === 'failed') return { ...base, ...worker, status: 'failed', ...(job.failedReason ? { error: job.failedReason } : {}) };
      if (job.state === 'active') return { ...base, ...worker, status: 'running' };
      return { ...base, status: 'queued' };
    }
    const last = attempts.filter((a) => a.id === record.id).pop();
    if (last?.event === 'started' && alive(last.host, last.pid)) return { ...base, status: 'running', worker: last.worker };
    if (last?.event === 'failed') return { ...base, status: 'failed', ...(last.error ? { error: last.error } : {}) };
    if (last?.event === 'interrupted') return { ...base, status: 'interrupted' };
    return { ...base, status: state === 'partial' ? 'partial' : 'pending' };
  });
  return { ...sweep, updated: new Date().toISOString(), counts: countsOf(points), points };
}
