/**
 * Resume stress: ≥ 20 trials of `topiary train` killed with SIGKILL at random points (up to 3 kills per trial),
 * resumed by running the same command again. After every kill each checkpoint folder on disk must verify against
 * its manifest (complete or absent); each resumed run must start from the newest complete checkpoint at the kill
 * before it; the finished run's loss curve must equal an uninterrupted run's within 1e-6.
 *
 *   node test/stress/resume.mjs [--trials 20] [--steps 30] [--seed 1]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { killResumeTrial, rng, runTrain, trainLosses, writeRecipe } from '../reliability/resume-lib.mjs';

const { values: args } = parseArgs({ options: { trials: { type: 'string', default: '20' }, steps: { type: 'string', default: '30' }, seed: { type: 'string', default: '1' }, report: { type: 'string' } } });
const TRIALS = Number(args.trials);
const root = mkdtempSync(join(tmpdir(), 'topiary-resume-'));
const recipe = writeRecipe(root, { steps: Number(args.steps) });

const t0 = Date.now();
const ref = await runTrain(recipe, join(root, 'reference'));
if (ref.code !== 0) throw new Error(`reference run failed: ${ref.stderr.slice(-1000)}`);
const reference = trainLosses(join(root, 'reference'));
console.log(`reference: ${reference.size} steps in ${ref.ms} ms`);
// kills land anywhere from process start-up to the end of a run
const random = rng(Number(args.seed));
const results = [];
for (let i = 0; i < TRIALS; i++) {
  const out = join(root, `trial-${i}`);
  const r = await killResumeTrial({ recipe, out, reference, random, minMs: 300, maxMs: ref.ms * 0.95 });
  results.push(r);
  console.log(`trial ${String(i).padStart(2)}: ${r.ok ? 'ok  ' : 'FAIL'} kills at ${r.kills.map((k) => `${typeof k.atMs === 'number' ? `${k.atMs}ms` : k.atMs}→ckpts[${k.checkpoints.join(',')}]${k.leftovers ? `+${k.leftovers} tmp` : ''}`).join(' ')} resumedFrom ${r.resumedFrom} (newest complete at the last kill: ${r.kills.at(-1)?.newest ?? 'none'})${r.misses?.length ? `, ${r.misses.length} kill(s) came after the run had finished` : ''} maxΔloss ${r.maxLossDiff} ${r.reason}`);
  rmSync(out, { recursive: true, force: true });
}
const kills = results.reduce((n, r) => n + r.kills.length, 0);
const failed = results.filter((r) => !r.ok).length;
const summary = { trials: TRIALS, kills, killsWithLeftovers: results.reduce((n, r) => n + r.kills.filter((k) => k.leftovers > 0).length, 0), failed, maxLossDiff: Math.max(...results.map((r) => r.maxLossDiff ?? Infinity)), seconds: (Date.now() - t0) / 1000 };
writeFileSync(args.report ?? join(tmpdir(), 'topiary-resume-report.json'), JSON.stringify({ summary, results }, null, 1));
console.log(`resume: ${TRIALS} trials, ${kills} SIGKILLs (${summary.killsWithLeftovers} left an interrupted write behind), ${failed} failed, max |Δloss| ${summary.maxLossDiff}, ${summary.seconds.toFixed(0)} s`);
rmSync(root, { recursive: true, force: true });
process.exitCode = failed > 0 ? 1 : 0;
