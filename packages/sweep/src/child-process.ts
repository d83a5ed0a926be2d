/**
 * Starting the process a run executes in, from the side that starts it (a sweep, or a queue worker): one process per
 * run, in its own process group (a terminal's Ctrl-C reaches the sweep only, which passes it on once), its output
 * appended to `<sweep>/logs/<id>.log`. Each run gets a fresh process: tensor memory and backend state never carry
 * from one run to the next, and a worker's event loop stays free to renew its queue locks while a run computes.
 */
import { fork } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TopiaryError } from '@topiary/kernel';
import type { ExecutorHost, PointJob } from './execute-point.js';
import type { PointOutcome } from './outcome.js';

/** What the parent sends a run's process, and what it answers. */
export interface ChildRequest {
  job: PointJob;
  host: ExecutorHost;
}

export interface ChildReply {
  outcome: PointOutcome;
}

/** The built entry of a run's process (`dist/child.js`; from the sources, as tests run them, the built one too). */
export function childEntry(): string {
  const here = fileURLToPath(import.meta.url);
  // a plain `node` cannot run the TypeScript sources, so from src/ the child is still the built file
  const entry = here.endsWith('.ts') ? join(dirname(here), '..', 'dist', 'child.js') : join(dirname(here), 'child.js');
  if (!existsSync(entry)) {
    throw new TopiaryError('E_INTERNAL', `the sweep's run process is not built (${entry})`, { hint: 'run pnpm build (or pnpm --filter @topiary/sweep build)' });
  }
  return entry;
}

/** The log file of a point: `<sweep>/logs/<id>.log`. */
export function logFileOf(job: Pick<PointJob, 'sweepDir' | 'id'>): string {
  return join(job.sweepDir, 'logs', `${job.id}.log`);
}

export interface PointChild {
  /** Resolves when the process has ended: its outcome, or a failure saying how it ended and where its log is. */
  outcome: Promise<PointOutcome>;
  /** Ctrl-C for this run: it stops after the current step with its folder consistent; a second stops it at once. */
  interrupt(): void;
  /** End it now (SIGKILL): its folder is consistent at every moment, and the next attempt resumes it. */
  kill(): void;
  readonly pid: number | undefined;
}

/** Start one run's process. `env` is added to this process's environment. */
export function startPointChild(job: PointJob, host: ExecutorHost, options: { env?: NodeJS.ProcessEnv } = {}): PointChild {
  const log = logFileOf(job);
  let fd: number | 'inherit' = 'inherit';
  try {
    mkdirSync(dirname(log), { recursive: true });
    fd = openSync(log, 'a');
  } catch {
    // a worker on a machine without the sweep folder: its own stderr is the log
  }
  const child = fork(childEntry(), [], {
    detached: true,
    stdio: ['ignore', fd, fd, 'ipc'],
    env: { ...process.env, ...options.env },
    // the parent's flags (a test runner's loaders) are not the run's
    execArgv: [],
  });
  if (typeof fd === 'number') closeSync(fd); // the child holds its own copy
  let reply: PointOutcome | undefined;
  child.on('message', (message: ChildReply) => {
    reply = message.outcome;
  });
  const outcome = new Promise<PointOutcome>((resolvePromise) => {
    let spawnError: Error | undefined;
    child.on('error', (e) => {
      spawnError = e;
    });
    child.on('close', (code, signal) => {
      if (reply) return resolvePromise(reply);
      const how = spawnError ? spawnError.message : signal ? `was stopped by ${signal}` : `exited with code ${code}`;
      resolvePromise({
        id: job.id,
        worker: host.worker,
        status: signal === 'SIGINT' || code === 130 ? 'interrupted' : 'failed',
        error: { code: 'E_INTERNAL', message: `the run's process ${how} before it reported; its log: ${typeof fd === 'number' ? log : 'stderr'}` },
      });
    });
  });
  const request: ChildRequest = { job, host };
  child.send(request);
  return {
    outcome,
    interrupt: () => void child.kill('SIGINT'),
    kill: () => void child.kill('SIGKILL'),
    get pid() {
      return child.pid;
    },
  };
}
