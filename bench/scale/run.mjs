#!/usr/bin/env node
// Block-streaming pruning at real model sizes (issue 19): Topiary (default wasm backend and native) next to a
// PyTorch block-by-block reference (bench/scale/torch_blockwise.py) on seeded random LLaMAs with the real shapes
// (bench/scale/shapes.mjs), same calibration ids (128 × 128 by default).
//
//   node bench/scale/run.mjs [--shapes smollm-135m,smollm-360m,tinyllama-1.1b,llama-2-7b] [--methods wanda]
//        [--backends wasm,native] [--skip-torch] [--samples 128] [--seqlen 128] [--blocks K] [--threads N]
//        [--probe-blocks 2] [--batch 8] [--topiary-batch 0] [--kernels a,b] [--seed 0] [--dtype bf16] [--shard-mb 2000]
//        [--models-dir bench/out/scale-models] [--timeout-min M] [--topiary-script PATH]
//   node bench/scale/run.mjs --from bench/out/scale-<time>.json   (the tables again from a saved run, no measuring)
//
// Per shape: the model is generated once (bench/scale/generate.mjs; cached in bench/out/scale-models/, git-ignored);
// then per method, each measurement in a fresh process:
//   - PyTorch: the OpenBLAS kernel is chosen as the other benches do (bench/lib/openblas.mjs: every kernel the CPU
//     runs, fresh process each, kernel checked with openblas_get_corename) on a probe of the first --probe-blocks
//     blocks (seconds per block; the whole model under five kernels would take hours at 7B); the full run then goes
//     under the fastest kernel;
//   - Topiary: `node bench/scale/topiary_run.mjs --model DIR --method M --ids FILE --backend B --json OUT
//     --samples S --seqlen L --batch B [--blocks K]`, which prints/writes {blocks: [{index, seconds}], totalSeconds,
//     peakRssBytes, backend}; while that script does not exist the column says "topiary_run.mjs not present".
// Peak RSS is measured from outside too (GNU time's %M — the kernel's max RSS of the child — or, without
// /usr/bin/time, VmHWM of /proc/PID/status polled every 100 ms) next to what the process reports itself.
//
// Memory budget per shape (issue 19): one block in float32 + the calibration hidden states (samples × seqlen × dim ×
// 4 bytes) + the method's statistics (Wanda: Σ in-features × 8 bytes over the block's 7 linear layers; SparseGPT:
// the largest layer's float64 Hessian, in² × 8). A process's runtime itself (Node + wasm, Python + torch) is not in
// the budget; its size is printed ("runtime RSS") so small shapes can be read.
// With --blocks K only the first K blocks run; whole-model seconds are then extrapolated (the run's seconds + the
// mean time of the blocks after the first × the blocks not run) and labelled "extrapolated"; s/block is whole / blocks. Writes bench/out/scale-<time>.json.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeMeasurement, describeCandidates, describeCpu, fastestKernel, kernelCandidates, kernelJson, kernelSummary, PYTHON, pythonEnv, topiaryEnv } from '../lib/openblas.mjs';
import { fitExponent } from '../train/driver.mjs';
import { memoryBudget, parameterCounts, shapeConfig } from './shapes.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const argv = process.argv.slice(2);
const arg = (flag, dflt) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : dflt);
const log = (s) => process.stderr.write(`${s}\n`);

// --from FILE: no measuring; the tables again from a saved bench/out/scale-*.json (with this script's summary rules)
const saved = arg('--from') ? JSON.parse(readFileSync(arg('--from'), 'utf8')) : null;
const shapes = saved?.shapes ?? arg('--shapes', 'smollm-135m,smollm-360m,tinyllama-1.1b,llama-2-7b').split(',').map((s) => shapeConfig(s).name);
const methods = saved?.methods ?? arg('--methods', 'wanda').split(',');
const backends = saved?.backends ?? arg('--backends', 'wasm,native').split(',').filter(Boolean);
const skipTorch = argv.includes('--skip-torch') || (saved !== null && saved.openblas === null);
const samples = saved?.samples ?? Number(arg('--samples', '128'));
const seqlen = saved?.seqlen ?? Number(arg('--seqlen', '128'));
const blocksArg = saved ? saved.blocks : arg('--blocks') ? Number(arg('--blocks')) : null;
const threads = saved?.threads ?? Number(arg('--threads', String(availableParallelism())));
const probeBlocks = Number(arg('--probe-blocks', '2'));
const batch = arg('--batch', '8'); // PyTorch's samples per forward call
// Topiary's windows per forward call: 0 is its default (8, fewer when one block's temporaries would pass 64 MiB)
const topiaryBatch = arg('--topiary-batch', '0');
const seed = Number(arg('--seed', '0'));
const dtype = saved?.dtype ?? arg('--dtype', 'bf16');
const shardMb = arg('--shard-mb', '2000');
const modelsDir = resolve(arg('--models-dir', join(root, 'bench', 'out', 'scale-models')));
const timeoutMs = arg('--timeout-min') ? Number(arg('--timeout-min')) * 60e3 : undefined;
for (const m of methods) if (!['wanda', 'sparsegpt'].includes(m)) throw new Error(`--methods: wanda or sparsegpt (got ${m})`);

const TORCH_SCRIPT = join(here, 'torch_blockwise.py');
const TOPIARY_SCRIPT = resolve(arg('--topiary-script', join(here, 'topiary_run.mjs'))); // another path: for testing the harness
const OPENBLAS_RUNNER = join(root, 'bench', 'lib', 'openblas_run.py');
const GNU_TIME = '/usr/bin/time';
const work = mkdtempSync(join(tmpdir(), 'topiary-bench-scale-'));

// ------------------------------------------------------------------------------------------ measuring a process

/** Whether GNU time's %M works here (prints a positive number of kB). */
const timeWorks = (() => {
  if (!existsSync(GNU_TIME)) return false;
  const f = join(work, 'time-probe');
  const r = spawnSync(GNU_TIME, ['-f', '%M', '-o', f, 'true']);
  try {
    return r.status === 0 && Number(readFileSync(f, 'utf8').trim().split('\n').pop()) > 0;
  } catch {
    return false;
  }
})();

function vmHwm(pid) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmHWM:\s+(\d+) kB/m);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/**
 * Run cmd args in a fresh process (stderr shown live, stdout captured): { code, signal, stdout, stderrTail, wallSeconds,
 * outsidePeakRssBytes, outsideHow, timedOut }.
 */
function measured(cmd, args, { env = process.env, cwd = root } = {}) {
  return new Promise((done) => {
    const timeFile = join(work, `time-${Date.now()}-${Math.random().toString(36).slice(2)}`);
    const [c, a] = timeWorks ? [GNU_TIME, ['-f', '%M', '-o', timeFile, cmd, ...args]] : [cmd, args];
    const t0 = performance.now();
    const child = spawn(c, a, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderrTail = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      process.stderr.write(d);
      stderrTail = (stderrTail + d).slice(-8000);
    });
    let polled = null;
    const poll = timeWorks ? null : setInterval(() => (polled = Math.max(polled ?? 0, vmHwm(child.pid) ?? 0)), 100);
    let timedOut = false;
    const timer = timeoutMs ? setTimeout(() => ((timedOut = true), child.kill('SIGKILL')), timeoutMs) : null;
    child.on('close', (code, signal) => {
      if (poll) clearInterval(poll);
      if (timer) clearTimeout(timer);
      let outside = polled;
      if (timeWorks) {
        try {
          const lines = readFileSync(timeFile, 'utf8').trim().split('\n');
          outside = Number(lines.pop()) * 1024;
        } catch {}
        rmSync(timeFile, { force: true });
      }
      done({ code, signal, stdout, stderrTail, wallSeconds: (performance.now() - t0) / 1000, outsidePeakRssBytes: outside || null, outsideHow: timeWorks ? 'GNU time %M' : 'VmHWM polled', timedOut });
    });
  });
}

const lastJson = (stdout) => {
  const lines = stdout.trim().split('\n').filter((l) => l.trim().startsWith('{'));
  try {
    return lines.length ? JSON.parse(lines.pop()) : null;
  } catch {
    return null;
  }
};

/** "exit 1: <the error line of its stderr>". */
function failure(r) {
  const lines = (r.stderrTail ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  const err = lines.find((l) => /^(\w*Error|SystemExit|Traceback)|Error:/.test(l) && !l.startsWith('Traceback')) ?? lines.at(-1) ?? '';
  return `exit ${r.code ?? r.signal}${err ? `: ${err.slice(0, 300)}` : ''}`;
}

/** The runtime's own RSS (nothing loaded): node, and Python after `import torch`. */
async function runtimeRss() {
  const node = await measured(process.execPath, ['-e', '']);
  const py = await measured(PYTHON, ['-c', 'import torch']);
  return { node: node.outsidePeakRssBytes, torch: py.outsidePeakRssBytes };
}

// --------------------------------------------------------------------------------------------- summary of a run

/**
 * Whole-model seconds (extrapolated when not every block ran) and seconds per block = whole / blocks. The blocks not
 * run are extrapolated at the mean of the blocks after the first when two or more ran: the first block carries the
 * run's one-time costs (embedding the calibration, first touches of memory, thread start-up) on either side. The
 * whole model has one such last block too, so the blocks run (the short last one included) stay in the sum.
 */
function summarize(json, nLayers) {
  const blocks = json?.blocks ?? [];
  if (!blocks.length || !Number.isFinite(json.totalSeconds)) return null;
  const secs = blocks.map((b) => b.seconds);
  // Topiary does not forward the last pruned block again (nothing reads its output; the original code does, and so
  // does the PyTorch reference): with --blocks K that block is short, so it is no steady block either (K ≥ 3)
  const shortLast = json.lastBlockReforwards === false && secs.length >= 3 && blocks.length < nLayers;
  const steady = secs.length >= 2 ? secs.slice(1, shortLast ? -1 : undefined) : secs;
  const mean = steady.reduce((a, b) => a + b, 0) / steady.length;
  const ran = blocks.length;
  const whole = ran >= nLayers ? json.totalSeconds : json.totalSeconds + mean * (nLayers - ran);
  return { blocksRun: ran, secondsPerBlock: whole / nLayers, steadyBlockSeconds: mean, minBlockSeconds: Math.min(...secs), maxBlockSeconds: Math.max(...secs), wholeSeconds: whole, extrapolated: ran < nLayers, totalSeconds: json.totalSeconds };
}

// --------------------------------------------------------------------------------------------------- the runs

async function generateShape(shape) {
  const dir = join(modelsDir, `${shape}-s${seed}-${dtype}`);
  const dflt = samples === 128 && seqlen === 128;
  const ids = join(dir, dflt ? 'calibration-ids.bin' : `calibration-ids-${samples}x${seqlen}.bin`);
  beforeMeasurement(`${shape}: generate`);
  const r = await measured(process.execPath, [join(here, 'generate.mjs'), '--shape', shape, '--out', dir, '--seed', seed, '--dtype', dtype, '--shard-mb', shardMb, '--samples', samples, '--seqlen', seqlen, '--ids-out', ids].map(String));
  const j = lastJson(r.stdout);
  if (r.code !== 0 || !j) throw new Error(`generate.mjs failed for ${shape} (exit ${r.code ?? r.signal})`);
  return { dir, ids, generated: j, generatePeakRssBytes: r.outsidePeakRssBytes };
}

async function torchRun({ shape, dir, ids, method, nLayers, candidates }) {
  const base = ['--model', dir, '--ids', ids, '--method', method, '--samples', samples, '--seqlen', seqlen, '--threads', threads, '--batch', batch, '--shape', shape].map(String);
  const blocks = blocksArg ?? nLayers;
  // Kernel choice on a probe of the first blocks (the full run under every kernel only when it is that short anyway).
  const probeK = Math.min(probeBlocks, blocks);
  let choice = null;
  let kernel = 'default';
  let expected = null;
  if (candidates.candidates.length > 1) {
    choice = fastestKernel({
      label: `${shape} ${method}: PyTorch, first ${probeK} block(s)`, script: TORCH_SCRIPT, args: [...base, '--blocks', String(probeK)], threads, candidates,
      value: (j) => j.blocks.reduce((s, b) => s + b.seconds, 0) / j.blocks.length, better: 'lower', unit: 's/block', cwd: root,
    });
    const best = choice.runs.find((r) => r.label === choice.chosen);
    if (best) ({ kernel, expected } = best);
  } else if (candidates.candidates.length === 1) ({ kernel, core: expected } = candidates.candidates[0]);
  beforeMeasurement(`${shape} ${method}: PyTorch (OpenBLAS ${kernel === 'default' ? `default${expected ? ` = ${expected}` : ''}` : kernel}), ${blocks} block(s)`);
  const report = join(work, `openblas-${shape}-${method}.json`);
  const args = [OPENBLAS_RUNNER, report, TORCH_SCRIPT, ...base, ...(blocksArg ? ['--blocks', String(blocksArg)] : [])];
  const r = await measured(PYTHON, args, { env: pythonEnv(threads, kernel) });
  let core = null;
  try {
    core = JSON.parse(readFileSync(report, 'utf8')).corename ?? null;
  } catch {}
  const json = lastJson(r.stdout);
  const ok = r.code === 0 && json && (!expected || core === expected);
  return {
    ok, reason: ok ? null : r.timedOut ? `stopped after ${(timeoutMs / 60e3).toFixed(0)} min` : core !== expected && json ? `ran OpenBLAS ${core}, not ${expected}` : failure(r),
    kernel: core ?? kernel, json, wallSeconds: r.wallSeconds, outsidePeakRssBytes: r.outsidePeakRssBytes, insidePeakRssBytes: json?.peakRssBytes ?? null,
    peakRssBytes: Math.max(r.outsidePeakRssBytes ?? 0, json?.peakRssBytes ?? 0) || null, summary: summarize(json, nLayers), choice,
  };
}

async function topiaryRun({ shape, dir, ids, method, backend, nLayers, torchKernel }) {
  if (!existsSync(TOPIARY_SCRIPT)) return { ok: false, absent: true, reason: 'topiary_run.mjs not present' };
  const out = join(work, `topiary-${shape}-${method}-${backend}.json`);
  const env = topiaryEnv(backend, torchKernel);
  const coretype = backend === 'native' ? (env.OPENBLAS_CORETYPE ?? "the addon's pick from the CPU flags") : null;
  beforeMeasurement(`${shape} ${method}: Topiary ${backend}${coretype ? ` (OpenBLAS ${coretype})` : ''}`);
  const args = [TOPIARY_SCRIPT, '--model', dir, '--method', method, '--ids', ids, '--backend', backend, '--json', out, '--samples', samples, '--seqlen', seqlen, '--batch', topiaryBatch, ...(blocksArg ? ['--blocks', blocksArg] : [])].map(String);
  const r = await measured(process.execPath, args, { env });
  let json = null;
  try {
    json = JSON.parse(readFileSync(out, 'utf8'));
  } catch {
    json = lastJson(r.stdout);
  }
  const ok = r.code === 0 && !!json && !json.unavailable;
  return {
    ok, reason: ok ? null : r.timedOut ? `stopped after ${(timeoutMs / 60e3).toFixed(0)} min` : json?.unavailable ?? failure(r),
    json, wallSeconds: r.wallSeconds, outsidePeakRssBytes: r.outsidePeakRssBytes, insidePeakRssBytes: json?.peakRssBytes ?? null,
    peakRssBytes: Math.max(r.outsidePeakRssBytes ?? 0, json?.peakRssBytes ?? 0) || null, summary: ok ? summarize(json, nLayers) : null,
    openblasCoretype: coretype,
  };
}

// ------------------------------------------------------------------------------------------------------- main

const candidates = skipTorch || saved ? { candidates: [], skipped: [], cpuLine: describeCpu(), openblas: '(PyTorch skipped)', defaultCore: null, cpu: null } : kernelCandidates(threads);
if (saved) log(`tables from ${arg('--from')} (measured ${saved.table?.[0]?.split('; ').at(-1) ?? '?'})`);
else if (!skipTorch) for (const l of describeCandidates(candidates, threads)) log(l);
else log(`CPU: ${describeCpu()}`);
log(`peak RSS from outside: ${timeWorks ? 'GNU time %M' : 'VmHWM of /proc/PID/status, polled every 100 ms'}; shapes ${shapes.join(', ')}; methods ${methods.join(', ')}; backends ${backends.join(', ') || 'none'}; calibration ${samples} × ${seqlen}${blocksArg ? `; first ${blocksArg} block(s) only (whole-model time extrapolated)` : ''}`);
const runtime = saved ? saved.runtimeRss : await runtimeRss();
log(`runtime RSS (nothing loaded): node ${mb(runtime.node)}, python + torch ${mb(runtime.torch)}`);

const results = [];
// a saved run: its rows, each summary recomputed from the per-block times it kept
if (saved) {
  const again = (x, nLayers) => (x?.ok ? { ...x, summary: summarize(x.json, nLayers) } : x);
  for (const r of saved.rows) results.push({ ...r, torch: again(r.torch, r.nLayers), topiary: Object.fromEntries(Object.entries(r.topiary).map(([b, x]) => [b, again(x, r.nLayers)])) });
}
for (const shape of saved ? [] : shapes) {
  const { config } = shapeConfig(shape);
  const nLayers = config.num_hidden_layers;
  const params = parameterCounts(config);
  const gen = await generateShape(shape);
  for (const method of methods) {
    const budget = memoryBudget(config, { samples, seqlen, method });
    const row = { shape, method, params: params.total, blockParams: params.block, nLayers, budget, model: gen.dir, ids: gen.ids, generate: { seconds: gen.generated.seconds, skipped: gen.generated.skipped, bytes: gen.generated.bytes, peakRssBytes: gen.generatePeakRssBytes } };
    row.torch = skipTorch ? { ok: false, reason: 'skipped (--skip-torch)' } : await torchRun({ shape, dir: gen.dir, ids: gen.ids, method, nLayers, candidates });
    if (!skipTorch && !row.torch.ok) log(`${shape} ${method}: PyTorch failed — ${row.torch.reason}`);
    row.topiary = {};
    for (const backend of backends) {
      row.topiary[backend] = await topiaryRun({ shape, dir: gen.dir, ids: gen.ids, method, backend, nLayers, torchKernel: row.torch.ok ? row.torch.kernel : null });
      if (!row.topiary[backend].ok) log(`${shape} ${method} ${backend}: ${row.topiary[backend].reason}`);
    }
    results.push(row);
  }
}

// ------------------------------------------------------------------------------------------------------ tables

function mb(b) {
  return Number.isFinite(b) && b > 0 ? (b >= 2 ** 30 * 10 ? `${(b / 2 ** 30).toFixed(1)} GB` : `${(b / 2 ** 20).toFixed(0)} MB`) : '—';
}
const fmt = (x, d = 2) => (Number.isFinite(x) ? (Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(d)) : '—');
const cell = (r, f) => (r?.ok ? f(r) : r?.absent ? 'not present' : r?.reason?.startsWith('skipped') ? 'skipped' : r ? 'failed' : '—');
const engines = [['torch', (row) => row.torch], ...backends.map((b) => [b, (row) => row.topiary[b]])];
const TARGET_TIME = { wasm: 2.0, native: 1.0 };
const lines = [];
const out = (s) => {
  lines.push(s);
  console.log(s);
};

out(`bench/scale — block-by-block pruning at real shapes (seeded random weights, ${dtype}); calibration ${samples} × ${seqlen} tokens; ${threads} thread(s); ${saved ? `measured ${saved.table?.[0]?.split('; ').at(-1)}, tables recomputed ${new Date().toISOString()}` : new Date().toISOString()}`);
if (saved) for (const l of saved.table.slice(1, saved.table.findIndex((x) => x.startsWith('peak RSS')))) out(l);
else if (!skipTorch) for (const l of describeCandidates(candidates, threads)) out(l);
else out(`CPU: ${describeCpu()}`);
out(`peak RSS: the larger of the process's own report and the outside measure (${timeWorks ? 'GNU time %M' : 'VmHWM polled'}); runtime RSS with nothing loaded: node ${mb(runtime.node)}, python + torch ${mb(runtime.torch)}`);
if (backends.length && !existsSync(TOPIARY_SCRIPT)) out('Topiary: topiary_run.mjs not present (bench/scale/topiary_run.mjs is written with the streaming engine)');
out('');
out(`Memory: budget = one block in float32 + calibration hidden states + the method's statistics; target: Topiary's peak RSS ≤ 1.5 × budget (Llama-2-7B, Wanda: < 6 GB)`);
out(`| shape | method | params | block params | budget | ${engines.map(([e]) => `${e} peak RSS`).join(' | ')} | ${engines.map(([e]) => `${e} RSS/budget`).join(' | ')} |`);
out(`|${'---|'.repeat(5 + engines.length * 2)}`);
for (const r of results) {
  out(`| ${r.shape} | ${r.method} | ${(r.params / 1e6).toFixed(1)}M | ${(r.blockParams / 1e6).toFixed(2)}M | ${mb(r.budget.total)} | ` +
    engines.map(([, g]) => cell(g(r), (x) => mb(x.peakRssBytes))).join(' | ') + ' | ' +
    engines.map(([e, g]) => cell(g(r), (x) => {
      const ratio = x.peakRssBytes / r.budget.total;
      const base = e === 'torch' ? runtime.torch : runtime.node;
      const above = base ? ` (${((x.peakRssBytes - base) / r.budget.total).toFixed(2)}× above runtime)` : '';
      const tgt = e === 'torch' ? '' : ratio <= 1.5 && !(r.shape === 'llama-2-7b' && r.method === 'wanda' && x.peakRssBytes >= 6e9) ? ' met' : ' NOT MET';
      return `${ratio.toFixed(2)}×${above}${tgt}`;
    })).join(' | ') + ' |');
}
out('');
out(`Time: seconds per block (whole-model seconds / blocks; blocks not run extrapolated at the mean of those after the first) and whole-model seconds; target: per block ≤ 1.0 × PyTorch (native), ≤ 2.0 × (wasm)`);
out(`| shape | method | blocks run | ${engines.map(([e]) => `${e} s/block`).join(' | ')} | ${engines.map(([e]) => `${e} whole s`).join(' | ')} | ${backends.map((b) => `${b}/torch`).join(' | ')} | torch kernel |`);
out(`|${'---|'.repeat(4 + engines.length * 2 + backends.length)}`);
for (const r of results) {
  const t = r.torch?.summary;
  const ran = engines.map(([, g]) => g(r)?.summary?.blocksRun).find(Number.isFinite);
  out(`| ${r.shape} | ${r.method} | ${ran ?? '—'}/${r.nLayers} | ` +
    engines.map(([, g]) => cell(g(r), (x) => fmt(x.summary?.secondsPerBlock))).join(' | ') + ' | ' +
    engines.map(([, g]) => cell(g(r), (x) => `${fmt(x.summary?.wholeSeconds, 1)}${x.summary?.extrapolated ? ` (extrapolated from ${x.summary.blocksRun})` : ''}`)).join(' | ') + ' | ' +
    backends.map((b) => {
      const x = r.topiary[b];
      if (!x?.ok) return x?.absent ? 'not present' : 'failed';
      if (!t) return '—';
      const ratio = x.summary.secondsPerBlock / t.secondsPerBlock;
      return `${ratio.toFixed(2)}× ${ratio <= TARGET_TIME[b] ? 'met' : 'NOT MET'}`;
    }).join(' | ') + ` | ${r.torch?.ok ? r.torch.kernel : '—'} |`);
}
for (const r of results) {
  for (const [e, g] of engines) {
    const x = g(r);
    if (x && !x.ok && !x.absent && !x.reason?.startsWith('skipped')) out(`${r.shape} ${r.method} ${e}: failed — ${x.reason}`);
  }
}
const growth = {};
for (const method of methods) {
  const rs = results.filter((r) => r.method === method);
  growth[method] = Object.fromEntries(engines.map(([e, g]) => [e, fitExponent(rs.filter((r) => g(r)?.ok && g(r).summary).map((r) => [r.blockParams, g(r).summary.secondsPerBlock]))]));
  const txt = Object.entries(growth[method]).filter(([, k]) => k !== null).map(([e, k]) => `${e} k=${k.toFixed(2)}`).join(', ');
  if (txt) out(`${method}: seconds per block ∝ (block parameters)^k — ${txt}`);
}
for (const r of results) if (r.topiary?.native?.ok) out(`native backend, ${r.shape}: OpenBLAS_CORETYPE ${r.topiary.native.openblasCoretype ?? '(not recorded)'}; it says: ${r.topiary.native.json?.backendNotes?.[0] ?? '(no notes)'}`);
for (const r of results) if (r.torch?.choice) out(`PyTorch s/block per OpenBLAS kernel, ${r.torch.choice.label} (* = fastest, used for the full run): ${kernelSummary(r.torch.choice)}`);
for (const r of results.filter((x, i) => results.findIndex((y) => y.shape === x.shape) === i)) {
  const g = r.generate;
  out(`${r.shape}: model ${r.model} (${(g.bytes / 1e9).toFixed(2)} GB${g.skipped ? ', already generated' : `, generated in ${g.seconds.toFixed(1)} s, generator peak RSS ${mb(g.peakRssBytes)}`})`);
}

mkdirSync(join(root, 'bench', 'out'), { recursive: true });
const file = join(root, 'bench', 'out', `scale-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
const strip = (x) => (x ? { ...x, choice: undefined } : x);
writeFileSync(file, JSON.stringify({
  shapes, methods, backends, samples, seqlen, blocks: blocksArg, threads, batch: Number(batch), topiaryBatch: Number(topiaryBatch), seed, dtype, loadavg: loadavg(), totalmem: totalmem(),
  cpu: describeCpu(), peakRssOutside: timeWorks ? 'GNU time %M' : 'VmHWM polled', runtimeRss: runtime,
  from: arg('--from') ?? null,
  openblas: saved ? saved.openblas : skipTorch ? null : kernelJson(candidates, results.map((r) => r.torch?.choice).filter(Boolean)),
  rows: results.map((r) => ({ ...r, torch: strip(r.torch) })), growth, table: lines,
}, null, 2));
log(`wrote ${file}`);
rmSync(work, { recursive: true, force: true });
