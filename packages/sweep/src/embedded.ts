/**
 * The embedded runner: a sweep's runs as `parallel` processes on this machine. Complete run folders are skipped,
 * unfinished ones resume; Ctrl-C stops starting runs and lets the running ones stop after their current step
 * (their folders consistent, `interrupted`), a second Ctrl-C ends them at once — a rerun continues either way.
 */
import { availableParallelism, hostname } from 'node:os';
import type { SweepPlan, SweepPoint } from './grid.js';
import { childEntry, startPointChild, type PointChild } from './child-process.js';
import type { ExecutorHost, PointJob } from './execute-point.js';
import type { PointOutcome } from './outcome.js';

/** What a runner reports as it goes (the CLI prints it). */
export type SweepEvent =
  | { type: 'started'; point: SweepPoint; worker?: string }
  | { type: 'finished'; point: SweepPoint; outcome: PointOutcome }
  | { type: 'queued'; point: SweepPoint }
  | { type: 'retrying'; point: SweepPoint; attempts: number; error: string }
  | { type: 'stopping'; message: string };

export interface EmbeddedOptions {
  /** Runs at a time (processes). */
  parallel: number;
  host: Omit<ExecutorHost, 'worker'>;
  /** Aborting it is a Ctrl-C. */
  signal?: AbortSignal;
  onEvent?: (event: SweepEvent) => void;
  /** Handle SIGINT (Ctrl-C) itself; default true. `signal` works either way. */
  installSigint?: boolean;
}

/** A job for one point of a plan. */
export function jobOf(plan: SweepPlan, point: SweepPoint): PointJob {
  return { sweep: plan.id, sweepDir: plan.dir, file: plan.file, id: point.id, runDir: point.runDir, document: point.document };
}

/**
 * Each run's share of the cores for its matrix products (the wasm backend's threads), unless the environment says:
 * N runs each using every core would fight over them.
 */
export function threadsEnv(parallel: number): NodeJS.ProcessEnv {
  if (process.env.TOPIARY_WASM_THREADS !== undefined) return {};
  return { TOPIARY_WASM_THREADS: String(Math.max(1, Math.floor(availableParallelism() / parallel))) };
}

/** Run `points` (of `plan`), `parallel` at a time; resolves with every outcome once nothing is running. */
export async function runEmbedded(plan: SweepPlan, points: readonly SweepPoint[], options: EmbeddedOptions): Promise<Map<string, PointOutcome>> {
  childEntry(); // not built: said now, not from inside the first run
  const parallel = Math.max(1, Math.floor(options.parallel));
  const worker = `${hostname()}:${process.pid}`;
  const host: ExecutorHost = { ...options.host, worker };
  const env = threadsEnv(parallel);
  const outcomes = new Map<string, PointOutcome>();
  const running = new Set<PointChild>();
  const queue = [...points];
  let stopping = false;
  let interrupts = 0;

  const stop = (hard: boolean) => {
    stopping = true;
    for (const child of running) (hard ? child.kill() : child.interrupt());
  };
  const onSigint = () => {
    interrupts += 1;
    const hard = interrupts > 1;
    options.onEvent?.({
      type: 'stopping',
      message: hard ? 'stopping now: the runs end where they are (their folders resume)' : 'interrupted: no new runs; running ones stop after their current step (Ctrl-C again to stop now); rerun the sweep to continue',
    });
    stop(hard);
  };
  if (options.installSigint !== false) process.on('SIGINT', onSigint);
  const onAbort = () => onSigint();
  options.signal?.addEventListener('abort', onAbort, { once: true });

  try {
    await new Promise<void>((done) => {
      const next = () => {
        if (running.size === 0 && (stopping || queue.length === 0)) return done();
        while (!stopping && running.size < parallel && queue.length > 0) {
          const point = queue.shift()!;
          const child = startPointChild(jobOf(plan, point), host, { env });
          running.add(child);
          options.onEvent?.({ type: 'started', point });
          void child.outcome.then((outcome) => {
            running.delete(child);
            outcomes.set(point.id, outcome);
            options.onEvent?.({ type: 'finished', point, outcome });
            next();
          });
        }
      };
      next();
    });
  } finally {
    process.off('SIGINT', onSigint);
    options.signal?.removeEventListener('abort', onAbort);
  }
  return outcomes;
}
