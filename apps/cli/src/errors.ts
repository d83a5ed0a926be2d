/** How the CLI turns failures into messages and exit codes (0 ok, 1 runtime failure, 2 usage/config error). */
import { isTopiaryError, TopiaryError } from '@topiary/kernel';

export interface ReportOptions {
  debug: boolean;
  json: boolean;
}

export function exitCodeOf(error: unknown): number {
  return isTopiaryError(error) ? error.exitCode : 1;
}

/** Print an error for a person (or as one JSON object with --json); a stack only with --debug. */
export function reportError(error: unknown, options: ReportOptions, err: NodeJS.WritableStream = process.stderr): number {
  const code = exitCodeOf(error);
  if (options.json) {
    const body = isTopiaryError(error)
      ? (error as TopiaryError).toJSON()
      : { code: 'E_INTERNAL', message: error instanceof Error ? error.message : String(error) };
    err.write(`${JSON.stringify({ error: body })}\n`);
  } else if (isTopiaryError(error)) {
    err.write(`topiary: ${(error as TopiaryError).describe()}\n`);
  } else {
    const message = error instanceof Error ? error.message : String(error);
    err.write(`topiary: internal error: ${message}\n  hint: rerun with --debug for the stack trace, and report it\n`);
  }
  if (options.debug && error instanceof Error && error.stack) err.write(`${error.stack}\n`);
  return code;
}
