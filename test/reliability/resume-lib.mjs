// @ts-check
/**
 * Kill -9 / resume trials through the real CLI (`topiary train RECIPE`, which resumes from the newest complete
 * checkpoint when run again). Shared by the stress script (test/stress/resume.mjs, ≥ 20 trials) and the fast
 * subset in the normal suite (test/reliability/resume.test.ts). Plain ESM so it runs under bare Node too.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint } from '@topiary/trainer';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliBin = join(repoRoot, 'apps', 'cli', 'dist', 'bin.js');

/** A tiny pretraining recipe (37k parameters, one checkpoint per step so kills often land inside a write). */
export function writeRecipe(dir, { steps = 30, checkpointEvery = 1, keep = 3, seed = 3, extra = {} } = {}) {
  const corpus = join(dir, 'corpus.txt');
  if (!existsSync(corpus)) writeFileSync(corpus, readFileSync(join(repoRoot, 'assets', 'data', 'tinystories_val_head.txt'), 'utf8').slice(0, 24_000));
  const tok = join(dir, 'tok512.bin');
  if (!existsSync(tok)) copyFileSync(join(repoRoot, 'assets', 'models', 'stories260K', 'tok512.bin'), tok);
  const recipe = {
    seed,
    backend: 'wasm',
    stages: [
      {
        train: {
          model: { vocabSize: 512, dim: 32, nLayers: 2, nHeads: 4, hiddenDim: 64, maxSeqLen: 64 },
          data: { train: corpus, tokenizer: tok, seqLen: 16, validFraction: 0.1 },
          batchSize: 4,
          steps,
          lr: { schedule: 'cosine', lr: 1e-2, warmup: 2 },
          eval: { every: 10, batches: 2 },
          checkpoint: { every: checkpointEvery, keep },
          ...extra,
        },
      },
    ],
  };
  const path = join(dir, 'recipe.json');
  writeFileSync(path, JSON.stringify(recipe, null, 2));
  return path;
}

/**
 * Run `topiary --out OUT train RECIPE --json`; with `killAfterMs`, SIGKILL it then (if still running).
 * @returns {Promise<{ code: number | null, signal: string | null, killed: boolean, stdout: string, stderr: string, ms: number }>}
 */
export function runTrain(recipe, out, { killAfterMs, killAfterCheckpoint, extraArgs = [] } = {}) {
  return new Promise((resolveRun) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [cliBin, '--out', out, 'train', recipe, '--json', ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    let killed = false;
    let armed = false;
    child.stderr.on('data', (d) => {
      stderr += d;
      // kill a random delay after the run reports checkpoint `step` (lands in training steps and checkpoint writes)
      if (killAfterCheckpoint && !armed) {
        const m = [...stderr.matchAll(/"type":"checkpoint"[^\n]*"step":(\d+)/g)];
        if (m.some((x) => Number(x[1]) >= killAfterCheckpoint.step)) {
          armed = true;
          setTimeout(() => {
            killed = child.kill('SIGKILL');
          }, killAfterCheckpoint.delayMs);
        }
      }
    });
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => {
      killed = child.kill('SIGKILL');
    }, killAfterMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolveRun({ code, signal, killed: killed && signal === 'SIGKILL', stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/**
 * Check one checkpoint folder against its manifest on our own (not through the trainer's reader): manifest.json
 * names the format and the folder's step, and lists every file with its byte length and sha256. Returns the
 * problem, or '' when the folder verifies.
 */
export function verifyCheckpointFolder(dir, step) {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  } catch (e) {
    return `no readable manifest.json (${e instanceof Error ? e.message : String(e)})`;
  }
  if (manifest.format !== 'topiary-checkpoint' || manifest.step !== step || !manifest.files) return `manifest.json is not a topiary-checkpoint manifest of step ${step}`;
  for (const name of ['weights.bin', 'optimizer.bin', 'state.json']) if (!manifest.files[name]) return `manifest.json lists no ${name}`;
  for (const [name, entry] of Object.entries(manifest.files)) {
    const file = join(dir, name);
    if (!existsSync(file)) return `${name} is missing`;
    if (statSync(file).size !== entry.bytes) return `${name} holds ${statSync(file).size} bytes, the manifest says ${entry.bytes}`;
    if (createHash('sha256').update(readFileSync(file)).digest('hex') !== entry.sha256) return `${name} does not match its sha256`;
  }
  return '';
}

/**
 * Every `step-NNNNNNNN` folder must verify (manifest present, every file's length and sha256 match; checked here and
 * by the trainer's own reader) — a checkpoint is complete or absent. Leftovers of interrupted writes (`.step-*.tmp`,
 * `*.old`) are listed, not counted as checkpoints. `newest` is the step a resumed run must start from (null: none).
 */
export function auditCheckpoints(out) {
  const root = join(out, 'checkpoints');
  const result = { complete: [], broken: [], leftovers: [], newest: null };
  if (!existsSync(root)) return result;
  for (const name of readdirSync(root)) {
    if (/^step-\d{8}$/.test(name)) {
      const step = Number(name.slice(5));
      let problem = verifyCheckpointFolder(join(root, name), step);
      if (!problem) {
        try {
          if (loadCheckpoint(join(root, name)).step !== step) problem = 'the trainer reads another step';
        } catch (e) {
          problem = `verifies, but the trainer cannot read it: ${e instanceof Error ? e.message : String(e)}`;
        }
      }
      if (problem) result.broken.push(`${name}: ${problem} (holds: ${readdirSync(join(root, name)).join(', ') || 'nothing'})`);
      else result.complete.push(step);
    } else result.leftovers.push(name);
  }
  result.complete.sort((a, b) => a - b);
  result.newest = result.complete.length ? result.complete[result.complete.length - 1] : null;
  return result;
}

/** step → loss of the `train` records in metrics.jsonl. */
export function trainLosses(out) {
  const losses = new Map();
  for (const line of readFileSync(join(out, 'metrics.jsonl'), 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line);
    if (r.type === 'train') {
      if (losses.has(r.step)) throw new Error(`metrics.jsonl has step ${r.step} twice`);
      losses.set(r.step, r.loss);
    }
  }
  return losses;
}

/** Largest |a - b| over the steps of `ref`; Infinity when a step is missing or extra. */
export function maxLossDiff(ref, got) {
  if (ref.size !== got.size) return Infinity;
  let worst = 0;
  for (const [step, loss] of ref) {
    const other = got.get(step);
    if (other === undefined) return Infinity;
    worst = Math.max(worst, Math.abs(loss - other));
  }
  return worst;
}

/** mulberry32: kill times reproducible from a seed (the machine's speed still varies). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The step of the first checkpoint a run announced (a `checkpoint` event on stderr), or null. */
export function firstCheckpointEvent(stderr) {
  const m = /"type":"checkpoint"[^\n]*"step":(\d+)/.exec(stderr);
  return m ? Number(m[1]) : null;
}

/**
 * Whether a run's first checkpoint (`first`) fits a resume from step `from` (null: a fresh start) with a checkpoint
 * every `every` steps: the run trains on from `from`, so its first checkpoint is after `from` and at most `every`
 * steps later. (`--json` keeps the "resumed from" log line off stderr; a run killed before its summary tells where
 * it resumed only through this.)
 */
export function firstCheckpointFits(first, from, every) {
  return first > (from ?? 0) && first <= (from ?? 0) + every;
}

/**
 * One trial: run, SIGKILL at random points (up to `maxKills` times), audit the checkpoints after every kill, then
 * run to completion and compare the loss curve with the uninterrupted reference.
 *
 * Checked: at least one SIGKILL landed while the process was running (it died of the signal; a kill timed after the
 * process had already finished is retried with an earlier time, from scratch when no kill has landed yet — up to
 * `retries` times, then the trial fails); every checkpoint folder left by a kill verifies; each run after a kill
 * resumed from the newest verifying checkpoint on disk at that kill (`resumes`: expected/got, null = started fresh);
 * and the final loss curve equals the reference within `tolerance`.
 */
export async function killResumeTrial({ recipe, out, reference, random, minMs, maxMs, maxKills = 3, tolerance = 1e-6, mode = 'mixed', retries = 6 }) {
  const steps = reference.size;
  const every = JSON.parse(readFileSync(recipe, 'utf8')).stages[0].train.checkpoint.every;
  const kills = [];
  const audits = [];
  const resumes = [];
  const misses = [];
  let expected = null; // the newest verifying checkpoint at the last kill: where the next run must resume
  let finished = null;
  let finishedStderr = '';
  const fail = (reason) => ({ ok: false, reason, kills, resumes, misses });
  rmSync(out, { recursive: true, force: true });
  for (let k = 0; k < maxKills && !finished; k++) {
    // 'time': anywhere from process start-up on; 'checkpoint': 0-250 ms after a random checkpoint event
    const byTime = mode === 'time' || (mode === 'mixed' && random() < 0.5);
    let killAfterMs = byTime ? Math.round(minMs + random() * (maxMs - minMs)) : undefined;
    let killAfterCheckpoint = byTime ? undefined : { step: 1 + Math.floor(random() * (steps - 2)), delayMs: Math.round(random() * 250) };
    let landed = false;
    for (let attempt = 0; attempt <= retries && !landed; attempt++) {
      if (attempt > 0) {
        // the previous kill came too late: try again, earlier
        if (killAfterMs !== undefined) killAfterMs = Math.round(killAfterMs / 2);
        else killAfterCheckpoint = { step: Math.max(1, Math.floor(killAfterCheckpoint.step / 2)), delayMs: Math.floor(killAfterCheckpoint.delayMs / 4) };
      }
      const at = killAfterMs !== undefined ? killAfterMs : `ckpt${killAfterCheckpoint.step}+${killAfterCheckpoint.delayMs}ms`;
      const r = await runTrain(recipe, out, { killAfterMs, killAfterCheckpoint });
      const first = firstCheckpointEvent(r.stderr);
      if (r.killed) {
        if (r.signal !== 'SIGKILL' || r.code !== null) return fail(`kill at ${at}: the process ended with code ${r.code}, signal ${r.signal}, not by SIGKILL`);
        // a resumed run that got as far as its first checkpoint must have trained on from the right one
        if (k > 0 && first !== null) resumes.push({ expected, got: firstCheckpointFits(first, expected, every) ? expected : `not ${expected}: its first checkpoint was step ${first}`, run: `killed run ${k + 1}` });
        const audit = auditCheckpoints(out);
        kills.push({ atMs: at, signal: r.signal, afterCheckpoint: killAfterCheckpoint?.step, checkpoints: audit.complete, newest: audit.newest, leftovers: audit.leftovers.length });
        audits.push(audit);
        expected = audit.newest;
        landed = true;
      } else if (r.code === 0) {
        misses.push(at);
        if (k === 0) {
          // finished before the kill fired: not a trial yet; start over with an earlier kill time
          rmSync(out, { recursive: true, force: true });
          continue;
        }
        // a resumed run outran its kill: it is the final run (at least one kill has landed)
        finished = JSON.parse(r.stdout.trim().split('\n').pop());
        finishedStderr = r.stderr;
        landed = true;
      } else return fail(`run exited ${r.code} (signal ${r.signal}): ${r.stderr.split('\n').filter((l) => l.includes('error')).join(' | ').slice(0, 500)}`);
    }
    if (!landed) return fail(`no SIGKILL landed while the process ran: ${retries + 1} kill times (${misses.join(', ')}) all came after it had finished`);
  }
  if (kills.length === 0) return fail('no SIGKILL landed');
  if (!finished) {
    const r = await runTrain(recipe, out);
    if (r.code !== 0) return fail(`the resumed run exited ${r.code} (signal ${r.signal}): ${r.stderr.slice(-500)}`);
    finished = JSON.parse(r.stdout.trim().split('\n').pop());
    finishedStderr = r.stderr;
  }
  resumes.push({ expected, got: finished.resumedFrom ?? null, run: 'final run' });
  const first = firstCheckpointEvent(finishedStderr);
  // (a run resumed from the last step has nothing left to train and writes no checkpoint)
  const done = (finished.resumedFrom ?? 0) >= steps;
  if (done ? first !== null : first === null || !firstCheckpointFits(first, finished.resumedFrom ?? null, every)) {
    return fail(`the final run says it resumed from ${finished.resumedFrom}, but its first checkpoint was step ${first}`);
  }
  const broken = audits.flatMap((a) => a.broken);
  const final = auditCheckpoints(out);
  const diff = maxLossDiff(reference, trainLosses(out));
  const wrongResume = resumes.filter((x) => x.got !== x.expected);
  // a checkpoint the run announced before it was killed must be on disk (or a newer one)
  const lost = kills.filter((x) => x.afterCheckpoint !== undefined && (x.newest === null || x.newest < x.afterCheckpoint));
  const ok = broken.length === 0 && final.broken.length === 0 && wrongResume.length === 0 && lost.length === 0 && diff <= tolerance;
  const reason = ok
    ? ''
    : [
        broken.length || final.broken.length ? `broken ${JSON.stringify([...broken, ...final.broken])}` : '',
        wrongResume.map((x) => `${x.run} resumed from ${x.got}, the newest complete checkpoint at the kill was ${x.expected}`).join('; '),
        lost.map((x) => `killed after checkpoint ${x.afterCheckpoint} was announced, but the newest complete one on disk was ${x.newest}`).join('; '),
        diff > tolerance ? `max loss diff ${diff}` : '',
      ].filter(Boolean).join('; ');
  return { ok, reason, kills, resumes, misses, resumedFrom: finished.resumedFrom, maxLossDiff: diff };
}
