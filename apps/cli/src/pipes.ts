/**
 * A reader that leaves early (`topiary plugins | head -1`): writing to the closed pipe fails with EPIPE, which Node
 * raises as an 'error' event on process.stdout / process.stderr — unhandled, that is a stack trace and exit 1.
 * A well-kept Unix filter ends quietly instead:
 *   - stdout (results) closed: stop at once, say nothing, exit with status 0 — the reader chose to stop reading,
 *     nothing failed. Traditional C tools die of SIGPIPE (a shell shows 141); Node ignores SIGPIPE, and a status 0
 *     keeps `set -o pipefail` scripts from failing on `topiary … | head`.
 *   - stderr (events, messages) closed: nothing more can be said there, but the work goes on and the command's own
 *     exit status stands — a prune whose progress reader left still saves its model, and a usage error still exits 2.
 * Any other stream error is thrown as before.
 */

export interface ErrorEmitter {
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** The errors of a write whose reader has gone. */
export function isClosedPipe(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED';
}

/** Install the handlers: a closed `stdout` ends the process with status 0; a closed `stderr` is ignored. */
export function handleClosedPipes(
  streams: { stdout: ErrorEmitter; stderr: ErrorEmitter } = { stdout: process.stdout, stderr: process.stderr },
  exit: (code: number) => void = (code) => process.exit(code),
): void {
  streams.stdout.on('error', (error) => {
    if (isClosedPipe(error)) exit(0);
    else throw error;
  });
  streams.stderr.on('error', (error) => {
    if (!isClosedPipe(error)) throw error;
  });
}
