/** Reading evaluation text and locating task data files. */
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readTextChunks } from '@topiary/corpus';
import { TopiaryError } from '@topiary/kernel';

/** The folder of task subsets shipped with this package. */
export const shippedDataDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'data');

/**
 * Where task data files are looked for, in order: `$TOPIARY_EVAL_DATA`, the subsets shipped in this package, then
 * `shared/data/eval` beside the working directory's project and beside this checkout.
 */
export function evalDataDirs(cwd = process.cwd()): string[] {
  const dirs = [
    process.env.TOPIARY_EVAL_DATA,
    shippedDataDir,
    resolve(cwd, '..', 'shared', 'data', 'eval'),
    resolve(cwd, 'shared', 'data', 'eval'),
    resolve(shippedDataDir, '..', '..', '..', '..', 'shared', 'data', 'eval'),
  ];
  return [...new Set(dirs.filter((d): d is string => typeof d === 'string' && d !== ''))];
}

export function resolveDataFile(file: string, task: string, dirs = evalDataDirs()): string {
  if (isAbsolute(file)) {
    if (existsSync(file)) return file;
  } else {
    for (const d of dirs) if (existsSync(join(d, file))) return join(d, file);
  }
  throw new TopiaryError('E_IO', `data file ${file} of task "${task}" not found`, {
    where: `--tasks ${task}`,
    hint: `looked in ${dirs.join(', ')}; set TOPIARY_EVAL_DATA to the folder holding it`,
  });
}

/** A whole UTF-8 text file (streamed; non-UTF-8 bytes → E_DATA with the byte offset); CRLF → LF. */
export async function readText(path: string): Promise<string> {
  let text = '';
  for await (const chunk of readTextChunks(path)) text += chunk;
  return text.replace(/\r\n/g, '\n');
}
