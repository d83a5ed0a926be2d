/**
 * Kill -9 and resume, the fast subset (the stress script test/stress/resume.mjs runs ≥ 20 trials): `topiary train`
 * is SIGKILLed at a random point, every checkpoint folder left on disk must verify against its manifest, and the
 * run resumed by the same command must reproduce the uninterrupted run's losses within 1e-6.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { cliBin, tempDir } from './helpers.js';
// @ts-expect-error plain ESM shared with the stress scripts
import { killResumeTrial, rng, runTrain, trainLosses, writeRecipe } from './resume-lib.mjs';

const haveCli = existsSync(cliBin);
if (!haveCli) console.log(`skipping kill -9 resume trials: ${cliBin} is not built (run pnpm build)`);

describe.skipIf(!haveCli)('resume after kill -9', () => {
  test('2 trials: checkpoints complete or absent after every kill; resumed loss curve equals the uninterrupted one', async () => {
    const dir = tempDir();
    // keep every checkpoint: deleting old ones (pruneOldCheckpoints: a plain recursive rm) is not atomic, and a kill
    // inside it leaves a step folder without its manifest — the stress script (keep 3) exercises and reports that
    const recipe = writeRecipe(dir, { steps: 10, checkpointEvery: 1, keep: 100 });
    const ref = (await runTrain(recipe, join(dir, 'reference'))) as { code: number; ms: number; stderr: string };
    expect(ref.code, ref.stderr).toBe(0);
    const reference = trainLosses(join(dir, 'reference')) as Map<number, number>;
    expect(reference.size).toBe(10);
    const random = rng(Date.now() % 100000);
    for (let trial = 0; trial < 2; trial++) {
      const out = join(dir, `trial-${trial}`);
      // 1.2 s ≈ process start-up; kills land in training and checkpoint writes
      const r = await killResumeTrial({ recipe, out, reference, random, minMs: 1200, maxMs: ref.ms * 0.95, maxKills: 1, mode: 'checkpoint' });
      console.log(`trial ${trial}: kills ${JSON.stringify(r.kills)} resumedFrom ${r.resumedFrom} max |Δloss| ${r.maxLossDiff}`);
      expect(r.reason).toBe('');
      expect(r.ok).toBe(true);
      expect(r.maxLossDiff).toBeLessThanOrEqual(1e-6);
      rmSync(out, { recursive: true, force: true });
    }
  });
});
