/**
 * Where test data lives. Tiny real files ship in the repo (`assets/`); larger real data is read from the shared
 * folder beside the checkout (`../shared/data`), and tests that need it skip with a printed reason when absent.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const assets = join(repoRoot, 'assets');
export const sharedData = process.env.TOPIARY_SHARED_DATA ?? resolve(repoRoot, '..', 'shared', 'data');
export const hasSharedData = existsSync(join(sharedData, 'MANIFEST.md'));

/** A reason to print when shared data is missing (use with `describe.skipIf(!hasSharedData)`). */
export function sharedDataSkipReason(what: string): string {
  const reason = `skipped: ${what} needs ${sharedData} (the shared data folder beside the checkout), which is absent`;
  if (!hasSharedData) console.log(reason);
  return reason;
}
