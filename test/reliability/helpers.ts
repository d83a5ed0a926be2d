import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isTopiaryError, type TopiaryError } from '@topiary/kernel';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const assets = join(repoRoot, 'assets');
export const stories260K = join(assets, 'models', 'stories260K', 'stories260K.bin');
export const tok512 = join(assets, 'models', 'stories260K', 'tok512.bin');
export const hfDir = join(assets, 'models', 'stories260K-hf');
export const cliBin = join(repoRoot, 'apps', 'cli', 'dist', 'bin.js');

export function tempDir(prefix = 'topiary-rel-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Run `fn` and return the TopiaryError it throws (fails the test if it throws anything else or nothing). */
export async function topiaryError(fn: () => unknown): Promise<TopiaryError> {
  try {
    await fn();
  } catch (e) {
    if (isTopiaryError(e)) return e;
    throw new Error(`expected a TopiaryError, got: ${String((e as Error)?.stack ?? e)}`);
  }
  throw new Error('expected a TopiaryError, nothing was thrown');
}
