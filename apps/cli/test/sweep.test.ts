/**
 * `topiary sweep` and `topiary worker` end to end on stories260K: the grid checked before anything runs, an
 * unreachable queue said at once, a sweep killed with -9 and continued, and a real Redis (Debian's redis-server, on
 * a free loopback port) with two worker processes — one killed mid-run, its run finished by the other, nothing lost
 * or run twice to completion. Processes run the built CLI (apps/cli/dist), as a user runs it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkQueue, readAttempts, type SweepFile } from '@topiary/sweep';
import { runCli } from './helpers.js';

const repo = resolve(__dirname, '../../..');
const bin = join(repo, 'apps/cli/dist/bin.js');
const built = existsSync(bin) && existsSync(join(repo, 'packages/sweep/dist/child.js'));
if (!built) console.log('skipped: the sweep process tests run the built CLI (apps/cli/dist, packages/sweep/dist), which is not built (run pnpm build)');
const hasRedis = spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).status === 0;
if (!hasRedis) console.log('skipped: the distributed sweep test needs Debian redis-server (apt-get install redis-server), which is absent');

const model = join(repo, 'assets/models/stories260K-hf');

/** A grid of small runs (eval, prune, eval on 4 windows of 64 tokens of the first 40 KB of TinyStories). */
function grid(matrix: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'topiary-sweep-cli-'));
  const text = join(dir, 'text.txt');
  writeFileSync(text, readFileSync(join(repo, 'assets/data/tinystories_val_head.txt'), 'utf8').slice(0, 40_000));
  const evalStage = '  - eval: { perplexity: [text.txt], seqlen: 64, limit: 4 }';
  const file = join(dir, 'grid.yaml');
  writeFileSync(file, `name: cli sweep\nmodel: { from: ${model} }\ndata:\n  calibration: { path: text.txt, samples: 4, seqlen: 64 }\nstages:\n${evalStage}\n  - prune: { method: wanda, sparsity: 0.5 }\n${evalStage}\n${matrix}\noutput: ./sweep\n`);
  return { dir, file };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

async function until(what: string, check: () => boolean, seconds = 60, everyMs = 20): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const started: ChildProcess[] = [];
/** The built CLI as a process of its own (stopped after the tests if still running). */
function topiary(args: string[]): { child: ChildProcess; output: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [bin, ...args], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  started.push(child);
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  return { child, output: () => output, exit: new Promise((done) => child.on('close', (code) => done(code))) };
}
afterAll(() => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

describe('topiary sweep: the grid', () => {
  it('lists the runs of a grid without running them, and refuses a bad axis naming it (exit 2)', async () => {
    const { file, dir } = grid('matrix:\n  stages[1].prune.method: [magnitude, wanda]\n  sparsity: [0.3, 0.5]');
    const r = await runCli(['--json', 'sweep', file, '--dry-run']);
    expect(r.code).toBe(0);
    const listed = JSON.parse(r.stdout) as { sweep: string; runs: { id: string; values: Record<string, unknown> }[] };
    expect(listed.sweep).toBe(join(dir, 'sweep'));
    expect(listed.runs.map((x) => x.id)).toEqual(['method-magnitude_sparsity-0.3', 'method-magnitude_sparsity-0.5', 'method-wanda_sparsity-0.3', 'method-wanda_sparsity-0.5']);
    expect(existsSync(join(dir, 'sweep'))).toBe(false);

    const bad = grid('matrix:\n  stages[1].prune.sparsty: [0.3]\n  sparsity: []');
    const refused = await runCli(['sweep', bad.file]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`topiary: ${bad.file}: matrix.sparsity: an empty grid`);
    const typo = grid('matrix:\n  stages[1].prune.sparsty: [0.3]');
    const named = await runCli(['sweep', typo.file]);
    expect(named.code).toBe(2);
    expect(named.stderr).toContain('matrix.stages[1].prune.sparsty: names a field that does not exist: stages[1].prune.sparsty');
    expect(named.stderr).not.toMatch(/\n\s+at /); // no stack trace for a user's mistake
  });

  it('says at once that a queue cannot be reached, naming its URL (sweep and worker)', async () => {
    const { file } = grid('matrix:\n  sparsity: [0.3]');
    const url = `redis://127.0.0.1:${await freePort()}`;
    const t0 = performance.now();
    const sweep = await runCli(['sweep', file, '--queue', url]);
    expect(sweep.code).toBe(1);
    expect(sweep.stderr).toContain(`topiary: --queue: cannot reach the queue at ${url}`);
    const worker = await runCli(['worker', '--queue', url]);
    expect(worker.code).toBe(1);
    expect(worker.stderr).toContain(`cannot reach the queue at ${url}`);
    expect((performance.now() - t0) / 1000).toBeLessThan(15);
    expect((await runCli(['sweep', file, '--queue', url, '--parallel', '2'])).stderr).toContain('--parallel: is for runs on this machine');
  });
});

describe.skipIf(!built)('topiary sweep: on this machine', () => {
  it('continues a sweep killed with -9: complete runs are skipped, the rest run, nothing runs twice to completion', async () => {
    const { file, dir } = grid('matrix:\n  stages[1].prune.method: [magnitude, wanda]\n  sparsity: [0.3, 0.6]');
    const sweepDir = join(dir, 'sweep');
    const t0 = performance.now();
    const first = topiary(['sweep', file, '--parallel', '2']);
    await until('a first run to complete', () => readAttempts(sweepDir).some((a) => a.event === 'completed'));
    first.child.kill('SIGKILL');
    await first.exit;
    // its run processes notice their parent is gone and stop (they would otherwise race the next attempt)
    const pids = readAttempts(sweepDir).filter((a) => a.event === 'started').map((a) => a.pid);
    await until('the orphaned run processes to end', () => pids.every((pid) => !alive(pid)), 10);
    const completedBefore = readAttempts(sweepDir).filter((a) => a.event === 'completed').map((a) => a.id);

    const again = await runCli(['--json', 'sweep', file, '--parallel', '2']);
    expect(again.code).toBe(0);
    const summary = JSON.parse(again.stdout) as { counts: Record<string, number>; runs: SweepFile['points']; report: string };
    expect(summary.counts).toEqual({ completed: 4 });
    const attempts = readAttempts(sweepDir);
    for (const run of summary.runs) {
      expect(attempts.filter((a) => a.id === run.id && a.event === 'completed'), run.id).toHaveLength(1);
      if (completedBefore.includes(run.id)) expect(attempts.filter((a) => a.id === run.id && a.event === 'started'), run.id).toHaveLength(1);
      expect(JSON.parse(readFileSync(join(run.runDir, 'results.json'), 'utf8')).status).toBe('completed');
    }
    // the frontier: wanda at 60 % costs less perplexity than magnitude at 60 % on stories260K
    const ppl = (id: string) => Object.values(summary.runs.find((r) => r.id === id)!.metrics!.perplexity)[0]!;
    expect(ppl('method-wanda_sparsity-0.6')).toBeLessThan(ppl('method-magnitude_sparsity-0.6'));
    expect(ppl('method-wanda_sparsity-0.3')).toBeLessThan(ppl('method-wanda_sparsity-0.6'));
    expect(readFileSync(summary.report, 'utf8')).toContain('Perplexity (text.txt) vs parameters');
    const status = await runCli(['sweep', '--status', sweepDir]);
    expect(status.stdout).toContain('4 runs · 4 completed');
    console.log(`sweep kill -9 and continue: 4 runs in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });
});

describe.skipIf(!built || !hasRedis)('topiary sweep: on a Redis queue', () => {
  it('two workers finish a grid; one is killed mid-run and the other finishes its run; nothing lost or run twice', async () => {
    const port = await freePort();
    const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    started.push(redis);
    const url = `redis://127.0.0.1:${port}`;
    try {
      const t0 = performance.now();
      for (let i = 0; ; i++) {
        try {
          await checkQueue(url, 500);
          break;
        } catch (e) {
          if (i > 40) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      const { file, dir } = grid('matrix:\n  stages[1].prune.method: [magnitude, wanda]\n  sparsity: [0.3, 0.6]');
      const sweepDir = join(dir, 'sweep');
      // short claims, so the killed worker's run is found abandoned in seconds (the default is 30 s); long enough that
      // a live worker on a loaded machine keeps its claims
      const a = topiary(['worker', '--queue', url, '--lock-seconds', '4']);
      const b = topiary(['worker', '--queue', url, '--lock-seconds', '4']);
      await until('both workers to be ready', () => a.output().includes('waiting for runs') && b.output().includes('waiting for runs'));
      const coordinator = runCli(['--json', 'sweep', file, '--queue', url, '--retries', '1']);

      // kill worker A while one of its runs is under way (its run folder exists, not complete)
      const aName = `:${a.child.pid}`;
      let victim = '';
      await until('worker A to be under way on a run', () => {
        const mine = readAttempts(sweepDir).filter((x) => x.worker.endsWith(aName) && x.event === 'started');
        victim = mine.map((x) => x.id).find((id) => existsSync(join(sweepDir, 'runs', id, 'state.json'))) ?? '';
        return victim !== '';
      });
      a.child.kill('SIGKILL');
      await a.exit;
      expect(readAttempts(sweepDir).some((x) => x.id === victim && x.event === 'completed')).toBe(false);

      const r = await coordinator;
      expect(r.code).toBe(0);
      const summary = JSON.parse(r.stdout) as { counts: Record<string, number>; runs: SweepFile['points'] };
      expect(summary.counts).toEqual({ completed: 4 });
      const attempts = readAttempts(sweepDir);
      for (const run of summary.runs) {
        expect(attempts.filter((x) => x.id === run.id && x.event === 'completed'), run.id).toHaveLength(1); // nothing twice
        expect(run.metrics!.sparsity).toBeGreaterThan(0.25);
      }
      // the killed worker's run: started by A, resumed from its folder and completed by B
      const victimAttempts = attempts.filter((x) => x.id === victim);
      expect(victimAttempts[0]!.worker.endsWith(aName)).toBe(true);
      const finish = victimAttempts.find((x) => x.event === 'completed')!;
      expect(finish.worker.endsWith(`:${b.child.pid}`)).toBe(true);
      expect(victimAttempts.some((x) => x.event === 'started' && x.resumed && x.worker.endsWith(`:${b.child.pid}`))).toBe(true);
      expect(b.output()).toContain('was abandoned by its worker: back in the queue');
      console.log(`redis sweep: 4 runs on 2 workers, one killed mid-run, in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

      // the queue's view, from anywhere
      const status = await runCli(['sweep', file, '--status', '--queue', url]);
      expect(status.code).toBe(0);
      expect(status.stdout).toContain('4 runs · 4 completed');
      expect(status.stdout).toMatch(/4 completed, 0 failed.* · 1 worker \(/);

      // Ctrl-C stops the remaining worker cleanly
      b.child.kill('SIGINT');
      expect(await b.exit).toBe(0);
    } finally {
      redis.kill('SIGTERM');
    }
  });
});
