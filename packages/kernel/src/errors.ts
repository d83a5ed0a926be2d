/**
 * One error family for everything a user can get wrong or a run can hit. Apps print `message` (plus `where` and
 * `hint`), never a stack, unless --debug. `exitCode` follows the CLI's contract: 2 for usage/config, 1 otherwise.
 */
export type TopiaryErrorCode =
  | 'E_USAGE' // a bad flag or argument
  | 'E_RECIPE' // a recipe that does not validate
  | 'E_CONFIG' // a model/config file that does not make sense
  | 'E_FORMAT' // a file whose bytes do not match its format
  | 'E_DATA' // a corpus/task/calibration file that cannot serve the request
  | 'E_PLUGIN_UNKNOWN'
  | 'E_PLUGIN_VERSION'
  | 'E_PLUGIN_DUPLICATE'
  | 'E_PLUGIN_INVALID'
  | 'E_BACKEND' // a tensor backend that cannot load here
  | 'E_NUMERIC' // NaN/Inf or a factorisation that failed
  | 'E_IO' // disk full, permission denied, missing file
  | 'E_INTERNAL';

const usageCodes: ReadonlySet<TopiaryErrorCode> = new Set([
  'E_USAGE',
  'E_RECIPE',
  'E_CONFIG',
  'E_PLUGIN_UNKNOWN',
  'E_PLUGIN_VERSION',
  'E_PLUGIN_DUPLICATE',
]);

export interface TopiaryErrorOptions {
  /** The file the fault is in, when it is in a file (recipe, checkpoint, data file). */
  file?: string;
  /** The file, field (`stages[2].prune.sparsity`) or flag (`--sparsity`) at fault. */
  where?: string;
  /** What the user can do about it. */
  hint?: string;
  cause?: unknown;
}

export class TopiaryError extends Error {
  readonly code: TopiaryErrorCode;
  readonly file?: string;
  readonly where?: string;
  readonly hint?: string;

  constructor(code: TopiaryErrorCode, message: string, options: TopiaryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TopiaryError';
    this.code = code;
    if (options.file !== undefined) this.file = options.file;
    if (options.where !== undefined) this.where = options.where;
    if (options.hint !== undefined) this.hint = options.hint;
  }

  get exitCode(): 1 | 2 {
    return usageCodes.has(this.code) ? 2 : 1;
  }

  /** The text a person reads: `where: message` and the hint on its own line. */
  describe(): string {
    const place = [this.file, this.where].filter((p) => p !== undefined && p !== '').join(': ');
    const head = place ? `${place}: ${this.message}` : this.message;
    return this.hint ? `${head}\n  hint: ${this.hint}` : head;
  }

  /** The same error located in a file (recipes and data files validate fields, then say which file). */
  inFile(file: string): TopiaryError {
    return new TopiaryError(this.code, this.message, { file, where: this.where, hint: this.hint, cause: this.cause });
  }

  toJSON(): { code: TopiaryErrorCode; message: string; file?: string; where?: string; hint?: string } {
    return { code: this.code, message: this.message, file: this.file, where: this.where, hint: this.hint };
  }
}

export function isTopiaryError(e: unknown): e is TopiaryError {
  return e instanceof TopiaryError || (typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'TopiaryError');
}

/** Turn a Node fs error into a TopiaryError that names the path and says what to do. */
export function ioError(err: unknown, path: string, action: string): TopiaryError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const reasons: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    ENOSPC: 'no space left on device',
    EROFS: 'read-only file system',
    EISDIR: 'is a directory',
    ENOTDIR: 'a parent is not a directory',
    EDQUOT: 'disk quota exceeded',
  };
  const reason = (code && reasons[code]) ?? (err instanceof Error ? err.message : String(err));
  const hint =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'free some space or choose another --out folder; earlier checkpoints were left intact'
      : code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
        ? 'choose a folder you can write to (--out)'
        : undefined;
  return new TopiaryError('E_IO', `cannot ${action}: ${reason}`, { where: path, hint, cause: err });
}
