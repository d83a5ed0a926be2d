/**
 * The embedded runner on stories260K: a grid's runs in 2 processes, each an ordinary run folder; Ctrl-C (the
 * runner's signal) stops them cleanly; running the sweep again skips what is complete and resumes the rest — nothing
 * runs twice to completion. Uses the built run process (packages/sweep/dist/child.js).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRun, type RunContext } from '@topiary/pipeline';
import { expandGrid, readAttempts, readGrid, readSweepFile, runSweep, type SweepEvent } from '../src/index.js';
import { repo, writeGrid } from './helpers.js';

const built = existsSync(join(repo, 'packages/sweep/dist/child.js'));
if (!built) console.log('skipped: the embedded sweep runs packages/sweep/dist/child.js, which is not built (run pnpm build)');

let run: RunContext;
beforeAll(async () => {
  run = await openRun({ backend: 'wasm', seed: 0, plugin: [], allowPluginPath: false }, [repo]);
});
afterAll(() => run.close());

const host = { pluginRoots: [repo], plugin: [], allowPluginPath: false };

describe.skipIf(!built)('the embedded runner', () => {
  it('runs a grid in parallel processes, stops cleanly on Ctrl-C, and a rerun skips complete runs and resumes the rest', async () => {
    const { file } = writeGrid('matrix:\n  stages[1].prune.method: [magnitude, wanda, sparsegpt]');
    const plan = expandGrid(run, readGrid(file));
    const started = performance.now();

    // "Ctrl-C" as soon as a run is under way (its folder exists): no new runs start, the running ones stop after
    // their current step
    const abort = new AbortController();
    const poll = setInterval(() => {
      if (plan.points.some((p) => existsSync(join(p.runDir, 'state.json')))) abort.abort();
    }, 20);
    const events: SweepEvent[] = [];
    const first = await runSweep(plan, { host, parallel: 2, signal: abort.signal, onEvent: (e) => events.push(e) }).finally(() => clearInterval(poll));
    expect(first.code).toBe(130);
    expect(events.filter((e) => e.type === 'started')).toHaveLength(2); // the third never started
    const after = readSweepFile(plan.dir);
    expect(after.points.every((p) => p.status !== 'failed')).toBe(true);
    expect(after.points[2]!.status).toBe('pending');
    expect(existsSync(plan.points[2]!.runDir)).toBe(false);
    // the run under way stopped with a consistent folder (to be resumed); a run stopped before it began left none
    const begun = plan.points.slice(0, 2).filter((p) => existsSync(join(p.runDir, 'state.json')));
    expect(begun.length).toBeGreaterThanOrEqual(1);
    for (const p of begun) {
      const file = join(p.runDir, 'results.json');
      if (existsSync(file)) expect(['interrupted', 'completed']).toContain((JSON.parse(readFileSync(file, 'utf8')) as { status: string }).status);
    }
    expect(after.points.filter((p) => p.status === 'interrupted').length).toBeGreaterThanOrEqual(1);
    const completedBefore = after.points.filter((p) => p.status === 'completed').map((p) => p.id);

    // again: complete runs are skipped, interrupted ones resume, the rest run
    const second = await runSweep(plan, { host, parallel: 2 });
    expect(second.code).toBe(0);
    expect(second.skipped).toBe(completedBefore.length);
    const sweep = readSweepFile(plan.dir);
    expect(sweep.counts).toEqual({ completed: 3 });
    const attempts = readAttempts(plan.dir);
    for (const p of plan.points) {
      // nothing ran twice to completion; what was complete was not started again
      expect(attempts.filter((a) => a.id === p.id && a.event === 'completed'), p.id).toHaveLength(1);
      if (completedBefore.includes(p.id)) expect(attempts.filter((a) => a.id === p.id && a.event === 'started')).toHaveLength(1);
    }
    const resumed = attempts.filter((a) => a.event === 'started' && a.resumed).map((a) => a.id).sort();
    expect(resumed).toEqual(begun.map((p) => p.id).filter((id) => !completedBefore.includes(id)).sort());
    expect(resumed.length).toBeGreaterThanOrEqual(1);

    // the numbers: pruning half of a 260K model costs perplexity; SparseGPT's weight updates cost least
    const ppl = Object.fromEntries(sweep.points.map((p) => [p.metrics!.method, Object.values(p.metrics!.perplexity)[0]!]));
    const dense = Object.values(sweep.points[0]!.metrics!.baseline!)[0]!;
    for (const method of ['magnitude', 'wanda', 'sparsegpt']) expect(ppl[method]!, method).toBeGreaterThan(dense);
    expect(ppl.sparsegpt!).toBeLessThan(ppl.magnitude!);
    for (const p of sweep.points) expect(p.metrics!.sparsity!).toBeGreaterThan(0.45);
    const html = readFileSync(second.report, 'utf8');
    expect(html).toContain('Perplexity (tinystories-40k.txt) vs sparsity');
    expect(html).toContain(`href="runs/${plan.points[0]!.id}/report.html"`);
    console.log(`embedded sweep: 3 runs (${completedBefore.length} complete before Ctrl-C, ${resumed.length} resumed), in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  });
});
