/**
 * Kill -9 and resume, the fast subset (the stress script test/stress/resume.mjs runs ≥ 20 trials): `topiary train`
 * is SIGKILLed while it runs, every checkpoint folder left on disk must verify against its manifest, the run
 * resumed by the same command must start from the newest checkpoint that verified at the moment of the kill, and
 * it must reproduce the uninterrupted run's losses within 1e-6.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { cliBin, tempDir } from './helpers.js';
// @ts-expect-error plain ESM shared with the stress scripts
import { killResumeTrial, rng, runTrain, trainLosses, writeRecipe } from './resume-lib.mjs';

interface Kill { atMs: number | string; signal: string; afterCheckpoint?: number; checkpoints: number[]; newest: number | null; leftovers: number }
interface Trial { ok: boolean; reason: string; kills: Kill[]; resumes: { expected: number | null; got: number | null; run: string }[]; misses: (number | string)[]; resumedFrom: number | null; maxLossDiff: number }

const haveCli = existsSync(cliBin);
if (!haveCli) console.log(`skipping kill -9 resume trials: ${cliBin} is not built (run pnpm build)`);

describe.skipIf(!haveCli)('resume after kill -9', () => {
  test('2 trials: a SIGKILL lands mid-run; checkpoints complete or absent; resumed from the newest complete one; same loss curve', async () => {
    const dir = tempDir();
    // keep every checkpoint: deleting old ones (pruneOldCheckpoints: a plain recursive rm) is not atomic, and a kill
    // inside it leaves a step folder without its manifest — the stress script (keep 3) exercises and reports that
    const recipe = writeRecipe(dir, { steps: 10, checkpointEvery: 1, keep: 100 });
    const ref = (await runTrain(recipe, join(dir, 'reference'))) as { code: number; ms: number; stderr: string };
    expect(ref.code, ref.stderr).toBe(0);
    const reference = trainLosses(join(dir, 'reference')) as Map<number, number>;
    expect(reference.size).toBe(10);
    const random = rng(Date.now() % 100000);
    // trial 0: one kill 0-250 ms after a random checkpoint (≥ 1) was announced, so the resume is from a step > 0;
    // trial 1: two kills, each after a checkpoint or at a random time (1.2 s ≈ process start-up), so a resumed run
    // is killed again
    const plans = [
      { maxKills: 1, mode: 'checkpoint' },
      { maxKills: 2, mode: 'mixed' },
    ];
    for (const [trial, plan] of plans.entries()) {
      const out = join(dir, `trial-${trial}`);
      const r = (await killResumeTrial({ recipe, out, reference, random, minMs: 1200, maxMs: ref.ms * 0.95, ...plan })) as Trial;
      console.log(`trial ${trial}: kills ${JSON.stringify(r.kills)} missed ${JSON.stringify(r.misses)} resumes ${JSON.stringify(r.resumes)} max |Δloss| ${r.maxLossDiff}`);
      expect(r.reason).toBe('');
      expect(r.ok).toBe(true);
      // at least one SIGKILL landed while the process ran: it died of the signal
      expect(r.kills.length).toBeGreaterThanOrEqual(1);
      for (const k of r.kills) expect(k.signal).toBe('SIGKILL');
      // each resumed run started from the newest checkpoint that verified on disk at the kill before it
      expect(r.resumes.length).toBeGreaterThanOrEqual(1);
      for (const x of r.resumes) expect(x.got, x.run).toBe(x.expected);
      const last = r.kills[r.kills.length - 1]!;
      expect(r.resumedFrom).toBe(last.newest);
      if (last.newest !== null) expect(r.resumedFrom).toBeGreaterThan(0);
      if (last.afterCheckpoint !== undefined) expect(r.resumedFrom).toBeGreaterThanOrEqual(last.afterCheckpoint);
      expect(r.maxLossDiff).toBeLessThanOrEqual(1e-6);
      rmSync(out, { recursive: true, force: true });
    }
  }, 300_000);
});
