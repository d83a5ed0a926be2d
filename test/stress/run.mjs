/**
 * `pnpm stress` (after `pnpm build`): the reliability stress scripts, not part of the normal suite.
 *   1. fuzz.mjs    — 1000 mutated inputs per format (7 formats), per-case timeout, heap cap, RSS check
 *   2. resume.mjs  — 20 kill -9 / resume trials of `topiary train`, loss curves equal within 1e-6
 *   3. perf-leaks  — 1000 training steps: tensor count, tfjs bytes and RSS stay flat
 * Extra arguments go to the first two (e.g. `pnpm stress -- --seed 2`). Exits 1 when any finds a failure.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2).filter((a) => a !== '--');
let failed = false;
for (const script of ['fuzz.mjs', 'resume.mjs']) {
  console.log(`\n== ${script} ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [fileURLToPath(new URL(script, import.meta.url)), ...args], { stdio: 'inherit' });
  if (r.status !== 0) failed = true;
}
console.log('\n== perf-leaks (1000 training steps)');
const leaks = spawnSync('npx', ['vitest', 'run', '--config', 'stress/perf-leaks.vitest.config.ts'], {
  cwd: fileURLToPath(new URL('..', import.meta.url)),
  stdio: 'inherit',
});
if (leaks.status !== 0) failed = true;
process.exitCode = failed ? 1 : 0;
