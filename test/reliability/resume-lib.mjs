// @ts-check
/**
 * Kill -9 / resume trials through the real CLI (`topiary train RECIPE`, which resumes from the newest complete
 * checkpoint when run again). Shared by the stress script (test/stress/resume.mjs, ≥ 20 trials) and the fast
 * subset in the normal suite (test/reliability/resume.test.ts). Plain ESM so it runs under bare Node too.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
 * Every `step-NNNNNNNN` folder must verify (manifest present, every file's length and sha256 match) — a checkpoint is
 * complete or absent. Leftovers of interrupted writes (`.step-*.tmp`, `*.old`) are listed, not counted as checkpoints.
 */
export function auditCheckpoints(out) {
  const root = join(out, 'checkpoints');
  const result = { complete: [], broken: [], leftovers: [] };
  if (!existsSync(root)) return result;
  for (const name of readdirSync(root)) {
    if (/^step-\d{8}$/.test(name)) {
      try {
        const ck = loadCheckpoint(join(root, name));
        result.complete.push(ck.step);
      } catch (e) {
        result.broken.push(`${name}: ${e instanceof Error ? e.message : String(e)} (holds: ${readdirSync(join(root, name)).join(', ') || 'nothing'})`);
      }
    } else result.leftovers.push(name);
  }
  result.complete.sort((a, b) => a - b);
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

/**
 * One trial: run, SIGKILL at random points (up to `maxKills` times), audit the checkpoints after every kill, then
 * run to completion and compare the loss curve with the uninterrupted reference.
 */
export async function killResumeTrial({ recipe, out, reference, random, minMs, maxMs, maxKills = 3, tolerance = 1e-6, mode = 'mixed' }) {
  const steps = reference.size;
  const kills = [];
  const audits = [];
  let finished = null;
  for (let attempt = 0; attempt <= maxKills + 4 && !finished; attempt++) {
    const kill = attempt < maxKills;
    // 'time': anywhere from process start-up on; 'checkpoint': 0-250 ms after a random checkpoint event
    const byTime = kill && (mode === 'time' || (mode === 'mixed' && random() < 0.5));
    const killAfterMs = byTime ? Math.round(minMs + random() * (maxMs - minMs)) : undefined;
    const killAfterCheckpoint = kill && !byTime ? { step: 1 + Math.floor(random() * (steps - 2)), delayMs: Math.round(random() * 250) } : undefined;
    const r = await runTrain(recipe, out, { killAfterMs, killAfterCheckpoint });
    if (r.killed) {
      const audit = auditCheckpoints(out);
      kills.push({ atMs: killAfterMs ?? `ckpt${killAfterCheckpoint.step}+${killAfterCheckpoint.delayMs}ms`, checkpoints: audit.complete, leftovers: audit.leftovers.length });
      audits.push(audit);
      continue;
    }
    if (r.code === 0 && kills.length === 0 && attempt < maxKills) {
      // finished before the kill fired: not a trial yet; start over with another kill time
      rmSync(out, { recursive: true, force: true });
      continue;
    }
    if (r.code !== 0) return { ok: false, reason: `run exited ${r.code}: ${r.stderr.split('\n').filter((l) => l.includes('error')).join(' | ').slice(0, 500)}`, kills };
    finished = JSON.parse(r.stdout.trim().split('\n').pop());
  }
  if (!finished) return { ok: false, reason: 'never finished', kills };
  const broken = audits.flatMap((a) => a.broken);
  const final = auditCheckpoints(out);
  const diff = maxLossDiff(reference, trainLosses(out));
  const ok = broken.length === 0 && final.broken.length === 0 && diff <= tolerance;
  return { ok, reason: ok ? '' : `broken ${JSON.stringify([...broken, ...final.broken])}, max loss diff ${diff}`, kills, resumedFrom: finished.resumedFrom, maxLossDiff: diff };
}
