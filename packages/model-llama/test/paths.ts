/** Paths of the shipped assets and this package's reference fixtures (made by bench/reference/model_reference.py). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '..', '..', '..');
export const fixtures = join(here, 'fixtures');
export const stories260KBin = join(repoRoot, 'assets', 'models', 'stories260K', 'stories260K.bin');
export const stories260KHf = join(repoRoot, 'assets', 'models', 'stories260K-hf');
export const goldenFile = join(repoRoot, 'assets', 'models', 'stories260K', 'stories260K.golden.json');
export const sharedData = process.env.TOPIARY_SHARED_DATA ?? resolve(repoRoot, '..', 'shared', 'data');
export const hasSharedData = existsSync(join(sharedData, 'MANIFEST.md'));

export function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
