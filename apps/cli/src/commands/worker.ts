/**
 * `topiary worker --queue URL`: take the runs of sweeps from a BullMQ/Redis queue and run each in a process of its
 * own, until Ctrl-C. Any number of workers, on any machines that see the same model, data and sweep folder paths.
 */
import type { Command } from 'commander';
import { runWorker, type WorkerEvent } from '@topiary/sweep';
import { pluginSearchRoots, type GlobalOptions } from '../context.js';
import { metricsLine, positiveInteger } from './sweep.js';

interface WorkerFlags {
  queue: string;
  concurrency: number;
  lockSeconds: number;
}

/** One line per event on stderr (JSON lines with --json); a queue error repeated while Redis is away is said once. */
function workerPrinter(g: GlobalOptions): (event: WorkerEvent) => void {
  let lastError = '';
  return (event) => {
    if (event.type === 'error') {
      if (event.message === lastError) return;
      lastError = event.message;
    } else {
      lastError = '';
    }
    if (g.json) {
      const { job, type, ...rest } = event as WorkerEvent & { job?: { id: string; sweep: string } };
      process.stderr.write(`${JSON.stringify({ type: `worker/${type}`, ...(job ? { run: job.id, sweep: job.sweep } : {}), ...rest })}\n`);
      return;
    }
    const failed = event.type === 'finished' && event.outcome.status !== 'completed';
    if (g.quiet && event.type !== 'error' && !failed) return;
    let line: string;
    switch (event.type) {
      case 'ready':
        line = `worker ${event.name} waiting for runs on ${event.url} (Ctrl-C to stop)`;
        break;
      case 'started':
        line = `started ${event.job.id} (attempt ${event.attempt}) → ${event.job.runDir}`;
        break;
      case 'finished':
        line = failed ? `${event.outcome.status} ${event.job.id}: ${event.outcome.error?.message ?? ''}` : `completed ${event.job.id}${event.outcome.skipped ? ' (complete before)' : ''} · ${metricsLine(event.outcome.metrics)}`;
        break;
      case 'stalled':
        line = `job ${event.jobId} was abandoned by its worker: back in the queue`;
        break;
      case 'stopping':
        line = event.message;
        break;
      case 'error':
        line = `queue error: ${event.message}`;
        break;
    }
    process.stderr.write(`${line}\n`);
  };
}

export function registerWorker(program: Command, globals: () => GlobalOptions): void {
  program
    .command('worker')
    .description('Run the runs of sweeps queued on BullMQ/Redis (topiary sweep --queue URL), each in a process of its own, until Ctrl-C')
    .requiredOption('--queue <url>', 'the queue: redis://host:port')
    .option('--concurrency <n>', 'runs at a time on this machine', positiveInteger, 1)
    .option('--lock-seconds <s>', "how long a run stays claimed without this worker's heartbeat: a run whose worker died is re-run by another within about twice this", positiveInteger, 30)
    .addHelpText(
      'after',
      `
Plugins come from this machine's install (as for topiary run); the model, data and sweep folder paths in the jobs
must be valid here too (a shared folder). A failed run is retried by the queue up to the sweep's --retries; a usage
error (a method not installed here) is not retried. Ctrl-C (or SIGTERM) takes no new runs and lets the running ones
finish; a second Ctrl-C stops them at once, and other workers resume them when their claim lapses.

Examples:
  $ topiary worker --queue redis://127.0.0.1:6379
  $ topiary worker --queue redis://queue.lab:6379 --concurrency 2`,
    )
    .action(async (flags: WorkerFlags) => {
      const g = globals();
      await runWorker({
        url: flags.queue,
        host: { pluginRoots: pluginSearchRoots(), plugin: g.plugin, allowPluginPath: g.allowPluginPath },
        concurrency: flags.concurrency,
        lockSeconds: flags.lockSeconds,
        onEvent: workerPrinter(g),
      });
    });
}
