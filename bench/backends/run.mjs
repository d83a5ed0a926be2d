#!/usr/bin/env node
// bench/backends — GFLOP/s of every loadable Topiary backend next to PyTorch CPU and numpy (OpenBLAS), same
// thread count, one run. Usage (from a fresh clone): `pnpm bench:backends [-- --only wasm,cpu] [--threads 2]`.
// Not a test: it prints a table with ratios to PyTorch and writes bench/out/backends-<time>.json.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const threads = Number(opt('threads', '2'));
const labels = opt('only', 'wasm,wasm-1thread,wasm-stock,cpu,gpujs,node,node-gpu').split(',');
const PYTHON = '/usr/bin/python3';
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

/**
 * The Python process runs with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (this machine may set them for the
 * sake of older OpenBLAS builds; they slow a current one). OpenBLAS 0.3.21 does not recognise every new CPU
 * model and then falls back to its generic `Prescott` kernel (SSE3, several times slower): in that case, and only
 * when the CPU has AVX-512 (or AVX2), name the matching kernel explicitly. torch_bench.py checks the results
 * against float64 and reports the kernel it ran.
 */
function pythonEnv() {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const probe = run(PYTHON, ['-c', "import ctypes; l=ctypes.CDLL('libopenblas.so.0'); l.openblas_get_corename.restype=ctypes.c_char_p; print(l.openblas_get_corename().decode())"], { env });
  const detected = probe.stdout.trim();
  let chosen = detected;
  const flags = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  if (['Prescott', 'Core2', 'Nehalem', 'Penryn', 'Dunnington', 'Atom', 'Katmai', 'Coppermine', 'Northwood'].includes(detected)) {
    if (/\bavx512f\b/.test(flags) && /\bavx512bw\b/.test(flags)) chosen = 'SkylakeX';
    else if (/\bavx2\b/.test(flags)) chosen = 'Haswell';
    if (chosen !== detected) env.OPENBLAS_CORETYPE = chosen;
  }
  return { env, openblasDetected: detected || 'not loaded', openblasChosen: chosen || 'not loaded' };
}

let python = null;
if (pythonHasTorch()) {
  const { env, openblasDetected, openblasChosen } = pythonEnv();
  log(`running PyTorch/numpy (${threads} threads; OpenBLAS kernel detected: ${openblasDetected}, used: ${openblasChosen}) ...`);
  const r = run(PYTHON, [join(here, 'torch_bench.py'), String(threads)], { env });
  if (r.code === 0) python = { ...JSON.parse(r.stdout.trim().split('\n').pop()), openblasDetected, openblasChosen };
  else log(`torch_bench.py failed:\n${r.stderr}`);
} else {
  log(`skipped: PyTorch column — ${PYTHON} cannot import torch`);
}

// 3. Every backend, each in its own process.
const js = [];
for (const label of labels) {
  log(`running backend ${label} ...`);
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
  const row = { workload: w, torch: torchG };
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
const table = [header, ...rows.map((r) => [r.workload, ...columns.map((c) => (c === 'torch' ? fmt(r[c]) : fmt(r[c], r.torch)))])];
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
  console.log(`OpenBLAS: ${python.openblas ? `${python.openblas.config}; kernel ${python.openblas.corename}, ${python.openblas.threads} threads` : 'not loaded'} (auto-detected: ${python.openblasDetected}); max |Δ| vs float64 at 512³: ${python.check_512_maxabs?.toExponential(1) ?? 'n/a'}`);
}
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
const out = { date: new Date().toISOString(), machine, python, backends: js, table: rows, markdown: md };
writeFileSync(join(root, 'bench', 'out', `backends-${stamp}.json`), `${JSON.stringify(out, null, 2)}\n`);
writeFileSync(join(root, 'bench', 'out', 'backends-latest.json'), `${JSON.stringify(out, null, 2)}\n`);
console.log(`wrote bench/out/backends-${stamp}.json`);
