/** How the CLI turns failures into messages and exit codes (0 ok, 1 runtime failure, 2 usage/config error). */
import { isTopiaryError, TopiaryError } from '@topiary/kernel';
import { errorsOf } from '@topiary/pipeline';

export interface ReportOptions {
  debug: boolean;
  json: boolean;
}

export function exitCodeOf(error: unknown): number {
  return isTopiaryError(error) ? error.exitCode : 1;
}

function bodyOf(error: unknown): Record<string, unknown> {
  return isTopiaryError(error)
    ? (error as TopiaryError).toJSON()
    : { code: 'E_INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

/**
 * Print an error for a person (or as one JSON object with --json); a stack only with --debug. Several errors found
 * at once (a recipe) print one `topiary:` line each; with --json, `error` is the first and `errors` lists them all.
 */
export function reportError(error: unknown, options: ReportOptions, err: NodeJS.WritableStream = process.stderr): number {
  const code = exitCodeOf(error);
  const all = errorsOf(error);
  if (options.json) {
    err.write(`${JSON.stringify({ error: bodyOf(all[0]), errors: all.map(bodyOf) })}\n`);
  } else {
    for (const one of all) {
      if (isTopiaryError(one)) {
        err.write(`topiary: ${(one as TopiaryError).describe()}\n`);
      } else {
        const message = one instanceof Error ? one.message : String(one);
        err.write(`topiary: internal error: ${message}\n  hint: rerun with --debug for the stack trace, and report it\n`);
      }
    }
  }
  if (options.debug && error instanceof Error && error.stack) err.write(`${error.stack}\n`);
  return code;
}
