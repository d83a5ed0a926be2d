/**
 * The process one run of a sweep executes in (`node dist/child.js`, started by `startPointChild`): it receives a
 * job over IPC, runs it with the pipeline, sends back the outcome and exits. A run that crashes or leaks takes this
 * process down, never the sweep or the worker that started it.
 */
import { TopiaryError } from '@topiary/kernel';
import { executePoint } from './execute-point.js';
import type { PointOutcome } from './outcome.js';
import type { ChildReply, ChildRequest } from './child-process.js';

/** Exit code of a child whose parent went away (a worker killed with -9): the run is left for another attempt. */
const EXIT_ORPHANED = 75;

// Without its parent nobody holds this run any more (a worker's queue lock lapses, and another worker will resume
// the folder): stop at once rather than race that worker. The folder is consistent at every moment.
process.on('disconnect', () => process.exit(EXIT_ORPHANED));

const abort = new AbortController();

/**
 * The pipeline's run listens for SIGINT itself once its model is loaded, and hears an abort signal only if it was
 * not aborted before the run subscribed to it: a stop that comes in between is passed on again once it listens.
 */
function passOnOnceHeard(): void {
  const timer = setInterval(() => {
    if (process.listenerCount('SIGINT') > 1) {
      clearInterval(timer);
      process.kill(process.pid, 'SIGINT');
    }
  }, 50);
  timer.unref();
}

// Ctrl-C passed on by the parent, or SIGTERM (a service manager stopping a worker): stop after the current step
// with the folder consistent. Handled from the start, so one arriving before the run is under way is not fatal.
const stop = () => {
  if (abort.signal.aborted) return;
  abort.abort();
  if (process.listenerCount('SIGINT') === 1) passOnOnceHeard();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

process.once('message', (request: ChildRequest) => {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  void executePoint(request.job, request.host, log, abort.signal)
    // a sweep folder that cannot be written (the attempts log): reported like any failed run
    .catch((error: unknown): PointOutcome => {
      const message = error instanceof TopiaryError ? error.describe() : String(error);
      log(`error ${message}`);
      return { id: request.job.id, status: 'failed', worker: request.host.worker, error: { code: error instanceof TopiaryError ? error.code : 'E_INTERNAL', message } };
    })
    .then((outcome) => {
      const reply: ChildReply = { outcome };
      process.send?.(reply, () => process.exit(0));
    });
});
