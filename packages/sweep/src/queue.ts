/**
 * Sweeps on a shared job queue: BullMQ on Redis. `topiary sweep --queue URL` adds one job per run (its id made of
 * the sweep's and the run's, so adding it again is a no-op) and waits for them; `topiary worker --queue URL`, on any
 * number of machines that see the same model and data paths, takes jobs and runs each in a process of its own
 * (`startPointChild`). What the queue engine does for us — nothing of it is re-implemented here:
 * - a failed run is retried up to `retries` times with exponential backoff (`attempts`, `backoff`);
 * - a worker that dies mid-run stops renewing its job's lock; another worker's stalled-job check puts the job back
 *   and it is run again — resuming the run folder the dead worker left (`lockDuration`, `maxStalledCount`);
 * - results land in one place: every job's outcome (the run's numbers) is kept in Redis as its return value, and
 *   the run folders are written where the job says (the sweep folder, shared between machines).
 */
import { hostname } from 'node:os';
// BullMQ and ioredis load when a queue is used: importing them costs ~90 ms, which every `topiary` command would pay
import type { Job } from 'bullmq';
import type { RedisOptions } from 'ioredis';
import { TopiaryError } from '@topiary/kernel';
import type { SweepPlan, SweepPoint } from './grid.js';
import { childEntry, startPointChild, type PointChild } from './child-process.js';
import { jobOf, threadsEnv, type SweepEvent } from './embedded.js';
import type { ExecutorHost, PointJob } from './execute-point.js';
import type { PointOutcome } from './outcome.js';

/** The one queue sweeps and workers meet on (jobs of different sweeps are told apart by their ids). */
export const QUEUE_NAME = 'topiary-sweep';

export interface QueueAddress {
  url: string;
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
}

/** The URL as it may be printed: without its password. */
export function shownUrl(address: Pick<QueueAddress, 'url' | 'password'>): string {
  return address.password ? address.url.replace(`:${encodeURIComponent(address.password)}@`, ':***@').replace(`:${address.password}@`, ':***@') : address.url;
}

/** `redis://[user:password@]host[:port][/db]` (or `rediss://` for TLS); anything else is refused naming `--queue`. */
export function parseQueueUrl(url: string): QueueAddress {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TopiaryError('E_USAGE', `is not a queue URL: "${url}"`, { where: '--queue', hint: 'redis://host:port, e.g. redis://127.0.0.1:6379' });
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new TopiaryError('E_USAGE', `${parsed.protocol.replace(/:$/, '')}:// queues are not supported: sweeps run on BullMQ with Redis`, { where: '--queue', hint: 'redis://host:port (or rediss:// for TLS)' });
  }
  const db = parsed.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw new TopiaryError('E_USAGE', `the database in "${url}" must be a number`, { where: '--queue', hint: 'redis://host:port/0' });
  return {
    url,
    host: parsed.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 6379,
    db: db === '' ? 0 : Number(db),
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    tls: parsed.protocol === 'rediss:',
  };
}

function redisOptions(address: QueueAddress): RedisOptions {
  return {
    host: address.host,
    port: address.port,
    db: address.db,
    ...(address.username ? { username: address.username } : {}),
    ...(address.password ? { password: address.password } : {}),
    ...(address.tls ? { tls: {} } : {}),
  };
}

/**
 * Whether the queue answers: one connection and a PING within `timeoutMs` (default 3 s), no retries — so a wrong
 * host or a Redis that is down is said at once, naming the URL, instead of a client reconnecting forever.
 */
export async function checkQueue(url: string, timeoutMs = 3000): Promise<QueueAddress> {
  const address = parseQueueUrl(url);
  const { Redis } = await import('ioredis');
  const client = new Redis({ ...redisOptions(address), lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  let lastError: Error | undefined;
  client.on('error', (e: Error) => {
    lastError = e;
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${(timeoutMs / 1000).toFixed(0)} s`)), timeoutMs + 500);
    });
    await Promise.race([client.connect().then(() => client.ping()), timeout]);
  } catch (e) {
    const reason = (lastError ?? (e as Error)).message;
    throw new TopiaryError('E_IO', `cannot reach the queue at ${shownUrl(address)}: ${reason}`, {
      where: '--queue',
      hint: 'is redis-server running there and reachable from this machine? (e.g. `redis-server --port 6379`); the sweep and its workers must name the same URL',
    });
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
  return address;
}

/** A run's job id: the sweep's id and the run's (BullMQ ids may not contain `:`). */
export function jobIdOf(plan: Pick<SweepPlan, 'id'>, point: Pick<SweepPoint, 'id'>): string {
  return `${plan.id}__${point.id}`;
}

/** Usage errors (a method this worker lacks, a bad recipe) fail the same way on every retry: they are not retried. */
const NOT_RETRIED = new Set(['E_USAGE', 'E_RECIPE', 'E_CONFIG', 'E_PLUGIN_UNKNOWN', 'E_PLUGIN_VERSION', 'E_PLUGIN_DUPLICATE']);

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((done) => {
    const wake = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', wake);
      done();
    };
    const timer = setTimeout(wake, ms);
    signal?.addEventListener('abort', wake, { once: true });
  });
}

export interface QueueSweepOptions {
  url: string;
  /** Attempts after a failed one (default 2). */
  retries?: number;
  /** How often the jobs' states are read (default 1 s). */
  pollMs?: number;
  /** Stop waiting (the jobs stay queued; workers go on). */
  signal?: AbortSignal;
  onEvent?: (event: SweepEvent) => void;
}

/**
 * Queue `points` of `plan` (jobs already there are left as they are; a failed one is retried) and wait until each
 * has completed or failed for good. Resolves with the outcomes known when it stopped.
 */
export async function runOnQueue(plan: SweepPlan, points: readonly SweepPoint[], options: QueueSweepOptions): Promise<Map<string, PointOutcome>> {
  const address = await checkQueue(options.url);
  const { Queue } = await import('bullmq');
  const queue = new Queue<PointJob, PointOutcome>(QUEUE_NAME, { connection: redisOptions(address) });
  queue.on('error', () => undefined); // a lost connection shows as jobs not moving; the client reconnects
  const outcomes = new Map<string, PointOutcome>();
  const retries = options.retries ?? 2;
  try {
    for (const point of points) {
      const jobId = jobIdOf(plan, point);
      const existing = await queue.getJob(jobId);
      if (existing) {
        // a rerun of the sweep gives what failed for good another round of attempts; anything else is left alone
        if ((await existing.getState()) === 'failed') await existing.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
      } else {
        await queue.add('run', jobOf(plan, point), { jobId, attempts: retries + 1, backoff: { type: 'exponential', delay: 2000 }, removeOnComplete: false, removeOnFail: false });
      }
      options.onEvent?.({ type: 'queued', point });
    }
    const pending = new Map(points.map((p) => [p.id, p]));
    const seen = new Map<string, string>(); // what was last said about a job, so each change is said once
    while (pending.size > 0 && !options.signal?.aborted) {
      for (const [id, point] of pending) {
        const job = (await queue.getJob(jobIdOf(plan, point))) as Job<PointJob, PointOutcome> | undefined;
        if (!job) {
          pending.delete(id);
          const outcome: PointOutcome = { id, status: 'failed', error: { code: 'E_IO', message: 'its job was removed from the queue' } };
          outcomes.set(id, outcome);
          options.onEvent?.({ type: 'finished', point, outcome });
          continue;
        }
        const state = await job.getState();
        if (state === 'completed' || state === 'failed') {
          pending.delete(id);
          const outcome: PointOutcome =
            state === 'completed'
              ? job.returnvalue
              : { id, status: 'failed', error: { code: 'E_RUN', message: `${job.failedReason} (after ${job.attemptsMade} attempt${job.attemptsMade === 1 ? '' : 's'})` }, ...(job.processedBy ? { worker: job.processedBy } : {}) };
          outcomes.set(id, outcome);
          options.onEvent?.({ type: 'finished', point, outcome });
          continue;
        }
        const said = `${state}:${job.attemptsStarted}:${job.attemptsMade}`;
        if (seen.get(id) !== said) {
          seen.set(id, said);
          if (state === 'active') options.onEvent?.({ type: 'started', point, ...(job.processedBy ? { worker: job.processedBy } : {}) });
          else if (state === 'delayed' && job.attemptsMade > 0) options.onEvent?.({ type: 'retrying', point, attempts: job.attemptsMade, error: job.failedReason });
        }
      }
      if (pending.size > 0) await sleep(options.pollMs ?? 1000, options.signal);
    }
  } finally {
    await queue.close();
  }
  return outcomes;
}

/** Where one job stands on the queue. */
export interface QueuedJobState {
  state: string;
  outcome?: PointOutcome;
  failedReason?: string;
  worker?: string;
  attempts: number;
}

/** The queue's view of a sweep's jobs (absent ids were never queued), and the queue's counts and workers. */
export async function queueStatus(
  url: string,
  sweepId: string,
  pointIds: readonly string[],
): Promise<{ jobs: Map<string, QueuedJobState>; counts: Record<string, number>; workers: string[] }> {
  const address = await checkQueue(url);
  const { Queue } = await import('bullmq');
  const queue = new Queue<PointJob, PointOutcome>(QUEUE_NAME, { connection: redisOptions(address) });
  queue.on('error', () => undefined);
  try {
    const jobs = new Map<string, QueuedJobState>();
    for (const id of pointIds) {
      const job = (await queue.getJob(jobIdOf({ id: sweepId }, { id }))) as Job<PointJob, PointOutcome> | undefined;
      if (!job) continue;
      const state = await job.getState();
      jobs.set(id, {
        state,
        attempts: job.attemptsMade,
        ...(state === 'completed' ? { outcome: job.returnvalue } : {}),
        ...(job.failedReason ? { failedReason: job.failedReason } : {}),
        ...(job.processedBy ? { worker: job.processedBy } : {}),
      });
    }
    const counts = (await queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed')) as Record<string, number>;
    // a worker's Redis client is named `<queue>:w:<worker name>`
    const workers = (await queue.getWorkers()).map((w) => String(w.rawname ?? '').split(':w:').slice(1).join(':w:') || 'unnamed');
    return { jobs, counts, workers };
  } finally {
    await queue.close();
  }
}

/** What a worker reports as it goes. */
export type WorkerEvent =
  | { type: 'ready'; name: string; url: string }
  | { type: 'started'; job: PointJob; attempt: number }
  | { type: 'finished'; job: PointJob; outcome: PointOutcome }
  | { type: 'stalled'; jobId: string }
  | { type: 'stopping'; message: string }
  | { type: 'error'; message: string };

export interface WorkerOptions {
  url: string;
  host: Omit<ExecutorHost, 'worker'>;
  /** Runs at a time on this worker (default 1). */
  concurrency?: number;
  /**
   * Seconds a job stays claimed without its worker renewing the claim (default 30). A worker that dies mid-run
   * leaves its job to be found and re-run by another worker within about twice this.
   */
  lockSeconds?: number;
  /** How often a job may be abandoned by a dying worker before it is failed (default 3). */
  maxStalls?: number;
  /** Aborting it is a Ctrl-C. */
  signal?: AbortSignal;
  /** Handle SIGINT/SIGTERM itself (default true). */
  installSignals?: boolean;
  onEvent?: (event: WorkerEvent) => void;
}

/**
 * Take jobs from the queue until stopped: the first Ctrl-C (or SIGTERM) takes no new jobs and lets the running
 * ones finish; a second ends them now — their jobs' claims lapse and other workers resume them.
 */
export async function runWorker(options: WorkerOptions): Promise<void> {
  childEntry(); // not built: said before taking a job
  const address = await checkQueue(options.url);
  const { UnrecoverableError, Worker } = await import('bullmq');
  const name = `${hostname()}:${process.pid}`;
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 1));
  const lockDuration = Math.max(1, options.lockSeconds ?? 30) * 1000;
  const host: ExecutorHost = { ...options.host, worker: name };
  const env = threadsEnv(concurrency);
  const running = new Set<PointChild>();
  let hardStop = false;

  const processor = async (job: Job<PointJob, PointOutcome>): Promise<PointOutcome> => {
    options.onEvent?.({ type: 'started', job: job.data, attempt: job.attemptsMade + 1 });
    const child = startPointChild(job.data, host, { env });
    running.add(child);
    const outcome = await child.outcome.finally(() => running.delete(child));
    // stopped now on purpose: leave the job claimed-but-abandoned, so its lock lapses and another worker resumes it
    if (hardStop) return new Promise<never>(() => undefined);
    options.onEvent?.({ type: 'finished', job: job.data, outcome });
    if (outcome.status === 'completed') return outcome;
    const error = outcome.error ?? { code: 'E_INTERNAL', message: outcome.status };
    throw NOT_RETRIED.has(error.code) ? new UnrecoverableError(error.message) : new Error(error.message);
  };
  const worker = new Worker<PointJob, PointOutcome>(QUEUE_NAME, processor, {
    connection: { ...redisOptions(address), maxRetriesPerRequest: null },
    name,
    concurrency,
    lockDuration,
    // a lapsed claim is noticed within one interval; half the lock keeps re-runs prompt without busy checking
    stalledInterval: Math.max(1000, lockDuration / 2),
    maxStalledCount: options.maxStalls ?? 3,
    autorun: false,
  });
  worker.on('error', (e: Error) => options.onEvent?.({ type: 'error', message: e.message }));
  worker.on('stalled', (jobId: string) => options.onEvent?.({ type: 'stalled', jobId }));

  let stops = 0;
  let closing: Promise<void> | undefined;
  const stop = () => {
    stops += 1;
    if (stops === 1) {
      options.onEvent?.({ type: 'stopping', message: 'stopping: no new jobs; the running ones finish (Ctrl-C again to stop now — other workers resume them)' });
      closing = worker.close();
      return;
    }
    if (hardStop) return;
    hardStop = true;
    options.onEvent?.({ type: 'stopping', message: 'stopping now: the running jobs are left to other workers' });
    for (const child of running) child.kill();
    closing = worker.close(true);
  };
  const install = options.installSignals !== false;
  if (install) {
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  }
  options.signal?.addEventListener('abort', stop, { once: true });
  try {
    await worker.waitUntilReady();
    options.onEvent?.({ type: 'ready', name, url: shownUrl(address) });
    await worker.run();
    await closing;
  } finally {
    if (install) {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
    options.signal?.removeEventListener('abort', stop);
  }
}
