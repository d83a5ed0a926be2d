#!/usr/bin/env node
// bench/backends — GFLOP/s of every loadable Topiary backend next to PyTorch CPU and numpy (OpenBLAS), same
// thread count, one run. Usage (from a fresh clone): `pnpm bench:backends [-- --only wasm,cpu] [--threads 2]`.
// Not a test: it prints a table with ratios to PyTorch and writes bench/out/backends-<time>.json.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeMeasurement, describeCandidates, fastestKernel, kernelCandidates, kernelJson, kernelSummary, PYTHON } from '../lib/openblas.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const threads = Number(opt('threads', '2'));
const labels = opt('only', 'wasm,wasm-1thread,wasm-stock,cpu,gpujs,node,node-gpu').split(',');
const log = (s) => process.stderr.write(`${s}\n`);

function run(cmd, argv, options = {}) {
  const r = spawnSync(cmd, argv, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20, ...options });
  return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

// 1. JavaScript side: install and build what the bench imports (cached by turbo when up to date).
const plugins = ['backend-wasm', 'backend-cpu', 'backend-gpujs', 'backend-node', 'backend-node-gpu'];
if (!existsSync(join(root, 'plugins', 'backend-wasm', 'node_modules', '@tensorflow', 'tfjs'))) {
  log('installing dependencies (pnpm install --frozen-lockfile) ...');
  try {
    execFileSync('pnpm', ['install', '--frozen-lockfile'], { cwd: root, stdio: 'inherit' });
  } catch {
    // A lockfile that lags a package.json must not stop a benchmark: resolve again (and say so).
    log('the lockfile is out of date with a package.json: running pnpm install --no-frozen-lockfile');
    execFileSync('pnpm', ['install', '--no-frozen-lockfile'], { cwd: root, stdio: 'inherit' });
  }
}
log('building the backend plugins ...');
execFileSync('pnpm', ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only', ...plugins.map((p) => `--filter=@topiary/${p}`)], {
  cwd: root,
  stdio: ['ignore', 'ignore', 'inherit'],
});

// 2. Python side: Debian's python3-torch + numpy, with OpenBLAS (not the reference BLAS, ~30× slower).
function pythonHasTorch() {
  return existsSync(PYTHON) && run(PYTHON, ['-c', 'import torch, numpy']).code === 0;
}
function hasOpenBlas() {
  return run('dpkg-query', ['-W', '-f=${Status}', 'libopenblas0-pthread']).stdout.includes('install ok installed');
}
if (!pythonHasTorch() || !hasOpenBlas()) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const apt = (...argv) => (isRoot ? run('apt-get', argv, { stdio: 'inherit' }) : run('sudo', ['apt-get', ...argv], { stdio: 'inherit' }));
  const packages = ['python3-torch', 'python3-numpy', 'libopenblas0-pthread'];
  log(`installing ${packages.join(' ')} with apt-get ...`);
  const a = apt('update');
  const b = apt('install', '-y', '--no-install-recommends', ...packages);
  if (a.code !== 0 || b.code !== 0) log('apt-get failed: the PyTorch column will be missing');
}

// PyTorch/numpy: torch_bench.py under every OpenBLAS kernel this CPU supports (bench/lib/openblas.mjs: fresh
// process each, OPENBLAS_CORETYPE=<kernel> or unset, OPENBLAS_L2_SIZE unset, the kernel that ran checked); each
// workload's torch and numpy columns are that workload's fastest kernel. torch_bench.py checks results against float64.
let python = null;
let kernels = null;
let kernelChoice = null;
if (pythonHasTorch()) {
  kernels = kernelCandidates(threads);
  for (const l of describeCandidates(kernels, threads)) log(l);
  const gmean = (xs) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
  kernelChoice = fastestKernel({
    label: 'backends torch_bench.py', script: join(here, 'torch_bench.py'), args: [threads], threads, candidates: kernels, cwd: root,
    value: (j) => gmean([...j.matmuls.map((m) => m.flops / m.torch_ms / 1e6), j.block.flops / j.block.torch_ms / 1e6]), better: 'higher', unit: 'GFLOP/s (torch, geometric mean of the 4 workloads)',
  });
  if (kernelChoice.best) {
    python = { ...kernelChoice.best.json, kernel: kernelChoice.best.core };
    const ok = kernelChoice.runs.filter((r) => r.ok);
    // Per workload: the fastest kernel for torch and, separately, for numpy.
    const bestOf = (get) => ok.reduce((a, r) => (get(r.json) < get(a.json) ? r : a));
    python.matmuls = python.matmuls.map((m) => {
      const get = (j) => j.matmuls.find((x) => x.name === m.name).torch_ms;
      const getNp = (j) => j.matmuls.find((x) => x.name === m.name).numpy_ms;
      const t = bestOf(get);
      const n = bestOf(getNp);
      return { ...m, torch_ms: get(t.json), torch_kernel: t.core, numpy_ms: getNp(n.json), numpy_kernel: n.core };
    });
    const tb = bestOf((j) => j.block.torch_ms);
    python.block = { ...tb.json.block, torch_kernel: tb.core };
    // Every kernel's GFLOP/s per workload (torch, numpy), for the JSON and the printed table below.
    python.perKernel = ok.map((r) => ({
      kernel: r.label,
      core: r.core,
      workloads: [...r.json.matmuls.map((m) => ({ name: m.name, torch: m.flops / m.torch_ms / 1e6, numpy: m.flops / m.numpy_ms / 1e6 })), { name: 'llama block fwd+bwd', torch: r.json.block.flops / r.json.block.torch_ms / 1e6 }],
    }));
  } else log('torch_bench.py failed under every kernel: the PyTorch column is missing');
} else {
  log(`skipped: PyTorch column — ${PYTHON} cannot import torch`);
}

// 3. Every backend, each in its own process.
const js = [];
for (const label of labels) {
  beforeMeasurement(`backend ${label}`);
  const r = run(process.execPath, [join(here, 'js_bench.mjs'), label], { env: { ...process.env, BENCH_THREADS: String(threads) } });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    js.push(JSON.parse(line));
  } catch {
    js.push({ label, error: (r.stderr || line).slice(0, 500) });
  }
}

// 4. The table: GFLOP/s and ratio to PyTorch (same thread count).
const gf = (flops, ms) => (ms > 0 ? flops / ms / 1e6 : NaN);
const rows = [];
const workloads = ['matmul 512x512x512', 'matmul 1024x1024x1024', 'matmul 2048x768x3072', 'llama block fwd+bwd'];
for (const w of workloads) {
  const isBlock = w.startsWith('llama');
  const torchRow = isBlock ? python?.block : python?.matmuls.find((m) => m.name === w);
  const torchG = torchRow ? gf(torchRow.flops, torchRow.torch_ms) : NaN;
  const row = { workload: w, torch: torchG, torchKernel: torchRow?.torch_kernel ?? null, numpyKernel: torchRow?.numpy_kernel ?? null };
  if (!isBlock && torchRow) row.numpy = gf(torchRow.flops, torchRow.numpy_ms);
  for (const r of js) {
    if (r.skipped || r.error) continue;
    const m = isBlock ? r.block : r.matmuls.find((x) => x.name === w);
    if (m && !m.skipped) {
      row[r.label] = gf(m.flops, m.ms);
      if (!isBlock && Number.isFinite(m.transposedB_ms)) row[`${r.label} (A·Bᵀ)`] = gf(m.flops, m.transposedB_ms);
    }
  }
  rows.push(row);
}
const columns = ['torch', 'numpy', ...js.filter((r) => !r.skipped && !r.error).flatMap((r) => [r.label, `${r.label} (A·Bᵀ)`])].filter((c) =>
  rows.some((r) => Number.isFinite(r[c])),
);
const fmt = (v, t) => (Number.isFinite(v) ? `${v.toFixed(1)}${Number.isFinite(t) && t > 0 ? ` (${(v / t).toFixed(2)}×)` : ''}` : '—');
const header = ['workload (GFLOP/s, ratio to torch)', ...columns];
const cell = (r, c) => (c === 'torch' ? `${fmt(r[c])}${r.torchKernel ? ` [${r.torchKernel}]` : ''}` : c === 'numpy' ? `${fmt(r[c], r.torch)}${r.numpyKernel ? ` [${r.numpyKernel}]` : ''}` : fmt(r[c], r.torch));
const table = [header, ...rows.map((r) => [r.workload, ...columns.map((c) => cell(r, c))])];
const widths = header.map((_, i) => Math.max(...table.map((row) => String(row[i]).length)));
const md = table.map((row, i) => `| ${row.map((c, j) => String(c).padEnd(widths[j])).join(' | ')} |${i === 0 ? `\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|` : ''}`).join('\n');

const machine = {
  cpu: cpus()[0]?.model ?? 'unknown',
  cores: cpus().length,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  loadAverage: loadavg(),
  node: process.version,
  threads,
};
console.log(`\nbench/backends — ${machine.cpu}, ${machine.cores} cores, load average ${machine.loadAverage.map((l) => l.toFixed(1)).join(' ')}; PyTorch/numpy on ${threads} threads`);
if (python) {
  console.log(`PyTorch ${python.torch} / numpy ${python.numpy}; BLAS loaded: ${python.blas_libraries.filter((l) => /blas/.test(l)).join(', ') || 'none found'}`);
  for (const l of describeCandidates(kernels, threads)) console.log(l);
  console.log(`torch GFLOP/s (geometric mean of the 4 workloads) per kernel (* = fastest): ${kernelSummary(kernelChoice)}; max |Δ| vs float64 at 512³: ${python.check_512_maxabs?.toExponential(1) ?? 'n/a'}`);
  console.log('torch / numpy GFLOP/s per OpenBLAS kernel:');
  for (const k of python.perKernel) console.log(`  ${k.kernel.padEnd(22)} ${k.workloads.map((w) => `${w.name.replace('matmul ', '')}: ${w.torch.toFixed(1)}${Number.isFinite(w.numpy) ? ` / ${w.numpy.toFixed(1)}` : ''}`).join(' · ')}`);
  console.log('[kernel] after a torch/numpy number: the OpenBLAS kernel that was fastest for that workload (each kernel ran the whole torch_bench.py in its own process)');
}
console.log(`Topiary processes keep this environment: OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? '(unset)'}, OPENBLAS_L2_SIZE=${process.env.OPENBLAS_L2_SIZE ?? '(unset)'}`);
for (const r of js) {
  if (r.skipped) console.log(`${r.label}: skipped — ${r.skipped}`);
  else if (r.error) console.log(`${r.label}: error — ${r.error}`);
  else {
    console.log(`${r.label}: engine ${r.engine}, ${r.capabilities.threads} thread(s), simd ${r.capabilities.simd}`);
    for (const m of [...r.matmuls, r.block].filter((x) => x?.skipped)) console.log(`  ${m.name}: skipped — ${m.skipped}`);
  }
}
console.log(`\n${md}\n`);
console.log('A·Bᵀ: the same product with a transposed right operand (what matmul gradients compute). Block: forward+backward, 3× the forward matmul FLOPs.');

mkdirSync(join(root, 'bench', 'out'), { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const out = { date: new Date().toISOString(), machine, python, openblas: kernels ? kernelJson(kernels, [kernelChoice]) : null, backends: js, table: rows, markdown: md };
writeFileSync(join(root, 'bench', 'out', `backends-${stamp}.json`), `${JSON.stringify(out, null, 2)}\n`);
writeFileSync(join(root, 'bench', 'out', 'backends-latest.json'), `${JSON.stringify(out, null, 2)}\n`);
console.log(`wrote bench/out/backends-${stamp}.json`);
