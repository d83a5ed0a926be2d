/**
 * Disk full and unwritable output folders. A 1 MiB tmpfs fills up during checkpointing (skipped, with the reason
 * printed, where mounting is not allowed); a folder whose parent is a file stands in for "permission denied" (tests
 * run as root here, so permission bits are ignored).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { writeFileAtomic } from '@topiary/files';
import { loadModel, saveModel } from '@topiary/model-llama';
import { loadCheckpoint } from '@topiary/trainer';
import { cliBin, stories260K, tempDir, topiaryError } from './helpers.js';
// @ts-expect-error plain ESM shared with the stress scripts
import { auditCheckpoints, runTrain, writeRecipe } from './resume-lib.mjs';

const lastError = (stderr: string) => JSON.parse(stderr.trim().split('\n').pop()!).error as { code: string; message: string; where?: string; hint?: string };

const base = tempDir();
const small = join(base, 'tmpfs');
let mounted = false;
let whyNot = '';
try {
  mkdirSync(small);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small], { stdio: 'pipe' });
  mounted = true;
} catch (e) {
  whyNot = String((e as { stderr?: Buffer }).stderr ?? e).trim();
  console.log(`skipping the disk-full tests: cannot mount a 1 MiB tmpfs here (${whyNot})`);
}
const haveCli = existsSync(cliBin);
if (!haveCli) console.log(`skipping CLI disk tests: ${cliBin} is not built`);

beforeAll(async () => {
  await tf.setBackend('cpu');
});
afterAll(() => {
  if (mounted) execFileSync('umount', [small]);
});

describe('disk full', () => {
  test.skipIf(!mounted || !haveCli)('training into a full disk: E_IO naming the path, earlier checkpoints intact and resumable', async () => {
    const recipe = writeRecipe(base, { steps: 10, checkpointEvery: 1, keep: 10 });
    const out = join(small, 'run');
    const r = (await runTrain(recipe, out)) as { code: number; stderr: string };
    expect(r.code).toBe(1);
    const err = lastError(r.stderr);
    expect(err.code).toBe('E_IO');
    expect(err.message).toMatch(/no space left on device/);
    expect(err.where).toContain(join(out, 'checkpoints'));
    expect(err.hint).toMatch(/earlier checkpoints were left intact/);
    const audit = auditCheckpoints(out) as { complete: number[]; broken: string[]; leftovers: string[] };
    expect(audit.broken).toEqual([]);
    expect(audit.leftovers).toEqual([]); // the half-written temp folder was removed
    expect(audit.complete.length).toBeGreaterThanOrEqual(1);
    const newest = loadCheckpoint(join(out, 'checkpoints', `step-${String(audit.complete.at(-1)).padStart(8, '0')}`));
    expect(newest.step).toBe(audit.complete.at(-1));
  });

  test.skipIf(!mounted)('saveModel into a full disk: E_IO naming the file, no temp file left, the earlier model intact', async () => {
    const model = await loadModel(stories260K);
    const dir = join(small, 'model');
    writeFileSync(join(small, 'filler'), Buffer.alloc(1)); // make sure the folder exists on the small disk
    mkdirSync(dir, { recursive: true });
    writeFileAtomic(join(dir, 'config.json'), '{"earlier": true}\n');
    const err = await topiaryError(() => saveModel(model, dir));
    model.dispose();
    expect(err.code).toBe('E_IO');
    expect(err.where).toBe(join(dir, 'model.safetensors'));
    expect(readdirSync(dir).sort()).toEqual(['config.json']);
  });
});

describe('unwritable output folder (a parent that is a file)', () => {
  test('saveModel: E_IO naming the folder', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'file'), 'x');
    const model = await loadModel(stories260K);
    const err = await topiaryError(() => saveModel(model, join(dir, 'file', 'model')));
    model.dispose();
    expect(err.code).toBe('E_IO');
    expect(err.where).toBe(join(dir, 'file', 'model'));
    expect(err.message).toMatch(/a parent is not a directory/);
  });

  test.skipIf(!haveCli)('topiary train --out under a file: E_IO naming the path (exit 1)', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'file'), 'x');
    const r = (await runTrain(writeRecipe(dir, { steps: 3 }), join(dir, 'file', 'run'))) as { code: number; stderr: string };
    expect(r.code).toBe(1);
    const e = lastError(r.stderr) as { code: string; message: string; where?: string };
    expect(`${e.where ?? ''} ${e.message}`).toContain(join(dir, 'file', 'run'));
    expect(e.code).toBe('E_IO');
  });
});
