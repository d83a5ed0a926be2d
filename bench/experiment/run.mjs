#!/usr/bin/env node
/**
 * The EfficientLLM experiment on a PRETRAINED source (issue 21): stories260K (260,032 parameters, pretrained on the
 * TinyStories train split) pruned to 50 % and 25 % of its parameters in several ways, every arm at equal training
 * tokens (steps × batch 16 × seqLen 64) on text the source never saw, 3 seeds; then one evaluation for all.
 *
 *   (a)   pruning-aware continued pretraining from the source           recipes/efficientllm-a-pruning-aware.yaml
 *   (akd) (a) + distillation from the unpruned source                   recipes/efficientllm-akd-pruning-aware-distill.yaml
 *   (b)   (a)'s final architecture from random init                      recipes/efficientllm-b-direct-auto-arch.yaml
 *   (c)   a uniform hand-designed architecture of the target size        recipes/efficientllm-c-uniform.yaml
 *   (d)   one-shot LLM-Pruner to the target, then continued pretraining  recipes/efficientllm-d-llm-pruner.yaml (topiary run)
 *   (e0)  the source, untrained (evaluation only)
 *   (e1)  the source continued-pretrained unpruned (the ceiling)         recipes/efficientllm-e1-continued.yaml
 *
 * Every arm is ONE CLI command (`topiary train <recipe>` or, for (d), `topiary run <recipe>`) on a copy of its
 * recipe written to <out>/recipes/ with the target, seed, steps and absolute paths filled in; the exact command is
 * printed and kept in <out>/runs/<...>/<arm>.run.json. Each model is then scored the same way (`topiary eval`):
 * perplexity of the held-out stories (whole file, windows of 64 tokens, no BOS), the next-word task built from
 * them (scored as lambada_openai) and the zero-shot suite (first --task-limit items per task).
 *
 * Usage (from the repository root, after `pnpm build`):
 *   node bench/experiment/run.mjs                                     # everything: 2 targets × 3 seeds
 *   node bench/experiment/run.mjs --steps 4 --seeds 0 --targets 0.5 --task-limit 20 --out /tmp/eff-smoke
 *   node bench/experiment/run.mjs --prepare-only                      # only the data split and the next-word task
 *   node bench/experiment/run.mjs --report-only                       # redo results.{json,md} and the plots
 * Options: --out DIR (default runs/efficientllm-pretrained), --steps N (default: the recipes' 600), --seeds 0,1,2,
 * --targets 0.5,0.25, --arms a,akd,b,c,d,e0,e1, --backend NAME (default wasm), --task-limit N (zero-shot items
 * per task, default 500), --tasks piqa,hellaswag,arc-easy,winogrande, --heldout-fraction F (default 0.1),
 * --eval-seqlen L (default 64), --force (redo runs that already finished; by default a finished run — one with
 * its <arm>.run.json — is kept and only what is missing is run).
 * A run that fails (e.g. (akd) before the trainer has `distill`) is recorded and the others go on.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSplit } from './split.mjs';
import { writeReport } from './report.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const YAML = createRequire(join(root, 'apps', 'cli', 'package.json'))('yaml');

// ---------------------------------------------------------------- options
const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
const out = resolve(flag('out', join(root, 'runs', 'efficientllm-pretrained')));
const steps = flag('steps', undefined);
const seeds = list(flag('seeds', '0,1,2')).map(Number);
const targets = list(flag('targets', '0.5,0.25')).map(Number);
const ARMS = ['a', 'akd', 'b', 'c', 'd', 'e0', 'e1'];
const arms = list(flag('arms', ARMS.join(',')));
const backend = flag('backend', 'wasm');
const taskLimit = flag('task-limit', '500');
const tasks = list(flag('tasks', 'piqa,hellaswag,arc-easy,winogrande'));
const heldoutFraction = Number(flag('heldout-fraction', '0.1'));
const evalSeqlen = flag('eval-seqlen', '64');
const reportOnly = args.includes('--report-only');
const prepareOnly = args.includes('--prepare-only');
const force = args.includes('--force');
for (const a of arms) if (!ARMS.includes(a)) throw new Error(`--arms: unknown arm "${a}" (known: ${ARMS.join(', ')})`);
for (const t of targets) if (!(t > 0 && t < 1)) throw new Error(`--targets: ${t} is not a fraction in (0, 1)`);

const cli = join(root, 'apps', 'cli', 'dist', 'bin.js');
const source = join(root, 'assets', 'models', 'stories260K', 'stories260K.bin');
const tokenizer = join(root, 'assets', 'models', 'stories260K', 'tok512.bin');
const corpus = resolve(root, '..', 'shared', 'data', 'text', 'tinystories_val_head.txt');
const dataDir = join(out, 'data');
const recipes = {
  a: 'efficientllm-a-pruning-aware.yaml',
  akd: 'efficientllm-akd-pruning-aware-distill.yaml',
  b: 'efficientllm-b-direct-auto-arch.yaml',
  c: 'efficientllm-c-uniform.yaml',
  d: 'efficientllm-d-llm-pruner.yaml',
  e1: 'efficientllm-e1-continued.yaml',
};

/** Where one run lives: per target and seed, except (e0) (once) and (e1) (per seed: no target). */
const tag = (t) => `t${Math.round(t * 100)}`;
const runDir = (arm, target, seed) => (arm === 'e0' ? join(out, 'runs', 'e0') : arm === 'e1' ? join(out, 'runs', 'e1', `s${seed}`) : join(out, 'runs', tag(target), `s${seed}`, arm));

// ---------------------------------------------------------------- the source's size and the uniform arm (c)
/** Parameters of a uniform LLaMA with tied embeddings (the source's layout): embedding, 5 blocks, final norm. */
export function uniformParams({ vocab = 512, layers = 5, dim, heads, kvHeads, headDim = 8, ffn }) {
  const attention = dim * heads * headDim * 2 + dim * kvHeads * headDim * 2;
  return vocab * dim + layers * (attention + 3 * dim * ffn + 2 * dim) + dim;
}
const SOURCE = { dim: 64, heads: 8, kvHeads: 4, ffn: 172 };
const sourceParams = uniformParams(SOURCE); // 260,032

/**
 * Arm (c): the source's depth, vocabulary, head size 8, GQA 2:1 and tied embeddings; hidden size a multiple of 16
 * (so heads = dim / 8 is even); of those, the one whose FFN/hidden ratio is closest to the source's (172/64) once
 * the FFN width is solved for the target.
 */
export function uniformArchitecture(target) {
  const want = Math.round(sourceParams * target);
  let best;
  for (let dim = 16; dim <= 128; dim += 16) {
    const heads = dim / 8;
    const kvHeads = heads / 2;
    const rest = uniformParams({ dim, heads, kvHeads, ffn: 0 });
    const ffn = Math.round((want - rest) / (5 * 3 * dim));
    if (ffn < 1) continue;
    const params = uniformParams({ dim, heads, kvHeads, ffn });
    const score = Math.abs(ffn / dim - SOURCE.ffn / SOURCE.dim);
    if (!best || score < best.score) best = { dim, heads, kvHeads, ffn, params, score };
  }
  const error = best.params / want - 1;
  if (Math.abs(error) > 0.02) throw new Error(`uniform architecture for target ${target}: ${best.params} params, ${(100 * error).toFixed(2)} % off ${want}`);
  return { ...best, want, error };
}

// ---------------------------------------------------------------- what the installed trainer accepts
function trainStageSchema() {
  const r = spawnSync(process.execPath, [cli, 'recipe-schema'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`topiary recipe-schema failed: ${r.stderr}`);
  const schema = JSON.parse(r.stdout);
  const stages = schema.properties?.stages?.items?.oneOf ?? schema.properties?.stages?.items?.anyOf ?? [];
  for (const s of stages) if (s.properties?.train) return s.properties.train;
  return {};
}

// ---------------------------------------------------------------- recipes: one copy per run, absolute paths
function armRecipe(arm, target, seed, support) {
  const template = join(root, 'recipes', recipes[arm]);
  const recipe = YAML.parse(readFileSync(template, 'utf8'));
  const dir = runDir(arm, target, seed);
  recipe.seed = seed;
  recipe.output = dir;
  if (recipe.model?.from) recipe.model = { from: source, tokenizer };
  if (recipe.data?.calibration) recipe.data.calibration = { ...recipe.data.calibration, path: join(dataDir, 'train.txt'), seed };
  const stage = recipe.stages.find((s) => s.train).train;
  stage.data = { ...stage.data, train: join(dataDir, 'train.txt'), valid: join(dataDir, 'heldout.txt'), tokenizer };
  if (!support.valid) {
    // the trainer has no `data.valid` yet: its curve comes from the tail of the training split instead (the
    // final held-out numbers, from `topiary eval`, are on the held-out split either way)
    delete stage.data.valid;
    stage.data.validFraction = 0.05;
  }
  if (steps !== undefined) stage.steps = Number(steps);
  if (stage.model?.from) stage.model = { from: source };
  if (stage.prune) stage.prune.targetRatio = target;
  if (arm === 'b') stage.model = { architecture: join(runDir('a', target, seed), 'model') };
  if (arm === 'c') {
    const u = uniformArchitecture(target);
    stage.model = { ...stage.model, dim: u.dim, nHeads: u.heads, nKvHeads: u.kvHeads, hiddenDim: u.ffn };
  }
  for (const s of recipe.stages) if (s.prune) s.prune.ratio = Number((1 - target).toFixed(6));
  const file = join(out, 'recipes', arm === 'e1' ? `e1-s${seed}.yaml` : `${arm}-${tag(target)}-s${seed}.yaml`);
  mkdirSync(dirname(file), { recursive: true });
  const head = `# generated by bench/experiment/run.mjs from recipes/${recipes[arm]} (target ${target}, seed ${seed})\n`;
  writeFileSync(file, head + YAML.stringify(recipe));
  return file;
}

/** What a failed command said: its TopiaryErrors (`--json` prints them as one object), else the end of stderr. */
function failure(r) {
  for (const line of `${r.stdout}\n${r.stderr}`.split('\n')) {
    try {
      const j = JSON.parse(line);
      const errors = j.errors ?? (j.error ? [j.error] : []);
      if (errors.length) return errors.map((e) => `${e.code}: ${e.where ? `${e.where}: ` : ''}${e.message}${e.hint ? ` (${e.hint})` : ''}`).join('\n');
    } catch {
      // not JSON
    }
  }
  return (r.stderr.trim().split('\n').slice(-12).join('\n') || r.stdout.trim().slice(-2000)).trim();
}

/** Run a command under /usr/bin/time -v (peak RSS of the child) when it exists; wall time measured here. */
function timed(argv, log) {
  const timeFile = `${log}.time`;
  const useTime = existsSync('/usr/bin/time');
  const cmd = useTime ? '/usr/bin/time' : process.execPath;
  const cmdArgs = useTime ? ['-v', '-o', timeFile, process.execPath, ...argv] : argv;
  const t0 = Date.now();
  const r = spawnSync(cmd, cmdArgs, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
  const seconds = (Date.now() - t0) / 1000;
  writeFileSync(log, `$ node ${argv.join(' ')}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  let peakRssKiB = null;
  if (useTime && existsSync(timeFile)) {
    const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(readFileSync(timeFile, 'utf8'));
    if (m) peakRssKiB = Number(m[1]);
  }
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, seconds, peakRssKiB };
}

function runArm(arm, target, seed, support) {
  const dir = runDir(arm, target, seed);
  const info = `${dir}.run.json`;
  if (existsSync(info) && !force) {
    const prev = JSON.parse(readFileSync(info, 'utf8'));
    if (prev.status === 0) return prev;
  }
  if (arm === 'b' && !existsSync(join(runDir('a', target, seed), 'model', 'config.json'))) {
    const r = { arm, target, seed, status: null, error: `arm (a) of target ${target}, seed ${seed} has no model: run (a) first` };
    process.stderr.write(`skip ${arm} ${tag(target)} s${seed}: ${r.error}\n`);
    return r;
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dirname(dir), { recursive: true });
  let argv;
  if (arm === 'e0') {
    mkdirSync(dir, { recursive: true });
    argv = null; // evaluation only
  } else {
    const recipe = armRecipe(arm, target, seed, support);
    argv = arm === 'd' ? [cli, '--backend', backend, '--json', '--out', dir, 'run', recipe] : [cli, '--backend', backend, '--json', '--out', dir, 'train', recipe, '--no-resume'];
  }
  const record = { arm, target: arm.startsWith('e') ? 1 : target, seed: arm === 'e0' ? null : seed, dir, command: argv ? `node ${argv.map((a) => a.replace(`${root}/`, '')).join(' ')}` : null };
  if (!argv) {
    process.stderr.write('e0: the source, evaluation only\n');
    Object.assign(record, { status: 0, seconds: null, peakRssKiB: null, model: source });
  } else {
    process.stderr.write(`${arm} ${arm.startsWith('e') ? '' : `${tag(target)} `}s${seed}: ${record.command}\n`);
    const r = timed(argv, `${dir}.log`);
    Object.assign(record, { status: r.status, seconds: r.seconds, peakRssKiB: r.peakRssKiB, model: join(dir, 'model') });
    if (r.status !== 0) {
      record.error = failure(r);
      process.stderr.write(`${arm} failed (exit ${r.status}); log ${dir}.log\n${record.error}\n`);
    } else process.stderr.write(`  done in ${r.seconds.toFixed(1)} s, peak RSS ${r.peakRssKiB ? `${(r.peakRssKiB / 1024).toFixed(0)} MiB` : '?'}\n`);
  }
  writeFileSync(info, `${JSON.stringify(record, null, 2)}\n`);
  return record;
}

/** `topiary --json eval` prints its result object as the first line that parses with a `model` field. */
function evalJson(stdout) {
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const j = JSON.parse(line);
      if ('model' in j && ('tasks' in j || 'perplexity' in j)) return j;
    } catch {
      // progress lines
    }
  }
  throw new Error('no result object in the eval output');
}

/** The same evaluation for every model: held-out perplexity + next-word task (all items), then the zero-shot suite. */
function evaluate(record) {
  const dir = record.dir;
  const model = record.model;
  const heldFile = `${dir}.heldout.json`;
  const zeroFile = `${dir}.zeroshot.json`;
  const common = [cli, '--backend', backend, '--json', 'eval', '--model', model, '--tokenizer', tokenizer];
  if (!existsSync(heldFile) || force) {
    const argv = [...common, '--perplexity', join(dataDir, 'heldout.txt'), '--seqlen', evalSeqlen, '--tasks', join(dataDir, 'nextword.jsonl')];
    const r = timed(argv, `${dir}.heldout.log`);
    if (r.status === 0) writeFileSync(heldFile, `${JSON.stringify({ command: `node ${argv.join(' ')}`, seconds: r.seconds, ...evalJson(r.stdout) }, null, 2)}\n`);
    else process.stderr.write(`held-out evaluation of ${dir} failed (exit ${r.status}); log ${dir}.heldout.log\n`);
  }
  if (tasks.length && (!existsSync(zeroFile) || force)) {
    const argv = [...common, '--tasks', ...tasks, '--limit', taskLimit];
    const r = timed(argv, `${dir}.zeroshot.log`);
    if (r.status === 0) writeFileSync(zeroFile, `${JSON.stringify({ command: `node ${argv.join(' ')}`, limit: Number(taskLimit), seconds: r.seconds, ...evalJson(r.stdout) }, null, 2)}\n`);
    else process.stderr.write(`zero-shot evaluation of ${dir} failed (exit ${r.status}); log ${dir}.zeroshot.log\n`);
  }
}

// ---------------------------------------------------------------- main
mkdirSync(out, { recursive: true });
if (!reportOnly) {
  const split = writeSplit(corpus, dataDir, heldoutFraction);
  process.stderr.write(
    `data: ${split.trainSegments} training segments (${split.trainBytes} bytes), ${split.heldoutSegments} held-out (${split.heldoutBytes} bytes), ` +
      `${split.nextWordItems} next-word items → ${dataDir}\n`,
  );
}
if (!reportOnly && !prepareOnly) {
  const train = trainStageSchema();
  const support = { valid: Boolean(train.properties?.data?.properties?.valid), distill: Boolean(train.properties?.distill) };
  if (!support.valid) process.stderr.write('note: this trainer has no `data.valid` yet — the trainer curves use the tail (5 %) of the training split; final held-out numbers are unaffected\n');
  if (!support.distill && arms.includes('akd')) process.stderr.write('note: this trainer has no `distill` yet — arm (akd) will fail validation\n');
  writeFileSync(join(out, 'settings.json'), `${JSON.stringify({ steps: steps ?? 'recipes', seeds, targets, arms, backend, taskLimit: Number(taskLimit), tasks, heldoutFraction, evalSeqlen: Number(evalSeqlen), trainerSupports: support, sourceParams, uniform: Object.fromEntries(targets.map((t) => [t, uniformArchitecture(t)])) }, null, 2)}\n`);
  const order = ['e0', 'e1', 'a', 'akd', 'b', 'c', 'd'].filter((a) => arms.includes(a));
  for (const arm of order) {
    const armTargets = arm.startsWith('e') ? [1] : targets;
    const armSeeds = arm === 'e0' ? [0] : seeds;
    for (const target of armTargets) {
      for (const seed of armSeeds) {
        const record = runArm(arm, target, seed, support);
        if (record.status === 0) evaluate(record);
      }
    }
  }
}
if (!prepareOnly) {
  const { table } = writeReport(out);
  process.stdout.write(`${table}\n\nwritten: ${join(out, 'results.md')}, results.json, ppl-vs-tokens.svg, architecture-evolution.svg\n`);
}
