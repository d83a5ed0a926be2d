// The Node side of bench/gpu/check.sh (run that, not this): on the machine at hand, with what the repository copy
// has built, run the backend conformance suite and the matmul / Gram / training benchmarks on gpujs (gpu.js in
// WebGL mode: never its CPU fallback) and on node-gpu where libtensorflow is present, wasm as the reference, and
// print one table. Needs no network and no package manager: only `node` and the copied node_modules + dist/.
//
// Usage: node bench/gpu/check.mjs [--quick] [--json FILE] [--driver TEXT]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const value = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const quick = flag('--quick');
const driver = value('--driver') ?? 'not checked';
const log = (line) => process.stderr.write(`check: ${line}\n`);

const gpujs = await import(pathToFileURL(join(root, 'plugins', 'backend-gpujs', 'dist', 'index.js')).href);
const nodeGpu = await import(pathToFileURL(join(root, 'plugins', 'backend-node-gpu', 'dist', 'index.js')).href);

// 1. WebGL for gpu.js: the X display in DISPLAY, or an Xvfb started here (then Mesa llvmpipe: software, not the GPU)
const { probe, started } = await gpujs.ensureWebGL();
if (probe.ok) {
  log(`WebGL: ${probe.version} on DISPLAY=${probe.display}${started ? ' (an Xvfb started by this check)' : ''}, renderer ${probe.renderer}`);
  if (probe.software) log('note: that renderer is a software rasteriser — gpu.js runs real WebGL shaders, but on the CPU, not on the GPU');
} else log(`no WebGL for gpu.js: ${probe.reason} (fix: ${probe.fix})`);
const nodeGpuAvailability = await nodeGpu.createNodeGpuBackend().available();
log(nodeGpuAvailability.ok ? 'node-gpu: @tensorflow/tfjs-node-gpu and libtensorflow load' : `node-gpu: ${nodeGpuAvailability.reason}`);

// 2. The conformance suite (test/backends, vitest from the copied node_modules), with this DISPLAY
const env = { ...process.env, CI: 'true' };
const report = join(mkdtempSync(join(tmpdir(), 'topiary-gpu-check-')), 'conformance.json');
log('conformance: test/backends (ops, primitives, stories260K on gpujs-webgl vs wasm) …');
const vitest = spawnSync(process.execPath, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--project', 'cross-package', 'test/backends', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`], {
  cwd: root,
  env,
  encoding: 'utf8',
  maxBuffer: 64 << 20,
});
/** passed / failed / skipped per backend label ("conformance ops: gpujs-webgl" → gpujs-webgl). */
const conformance = new Map();
const failures = [];
let wandaLine = '';
if (existsSync(report)) {
  const json = JSON.parse(readFileSync(report, 'utf8'));
  for (const file of json.testResults ?? []) {
    for (const t of file.assertionResults ?? []) {
      const suite = t.ancestorTitles?.[0] ?? '';
      const m = /^conformance (?:ops|primitives): (.+)$/.exec(suite) ?? (/gpujs on WebGL agrees with wasm/.test(suite) ? [suite, 'gpujs-webgl'] : null);
      if (!m) continue;
      const c = conformance.get(m[1]) ?? { passed: 0, failed: 0, skipped: 0 };
      if (t.status === 'passed') c.passed++;
      else if (t.status === 'failed') {
        c.failed++;
        failures.push(`${suite} > ${t.title}: ${(t.failureMessages ?? []).join(' ').split('\n')[0]}`);
      } else c.skipped++;
      conformance.set(m[1], c);
    }
  }
} else failures.push(`vitest wrote no report (exit ${vitest.status}): ${(vitest.stderr || vitest.stdout || '').trim().split('\n').slice(-5).join(' | ')}`);
const wanda = /stories260K on .*?: .*?dense ppl wasm ([\d.]+) gpujs ([\d.]+) \(rel ([^)]+)\); Wanda 50 % ppl wasm ([\d.]+) gpujs ([\d.]+) \(rel ([^)]+)\)/.exec(`${vitest.stdout}\n${vitest.stderr}`);
if (wanda) wandaLine = `stories260K perplexity, gpujs-webgl vs wasm: dense ${wanda[2]} vs ${wanda[1]} (relative ${wanda[3]}), Wanda 50 % ${wanda[5]} vs ${wanda[4]} (relative ${wanda[6]})`;

// 3. Benchmarks, one process per backend (bench/backends/js_bench.mjs, the same workloads as the CPU benchmark)
const budget = quick ? '4000' : (process.env.BENCH_BUDGET_MS ?? '30000');
const bench = {};
for (const label of ['wasm', 'gpujs-webgl', 'node-gpu']) {
  if (label === 'gpujs-webgl' && !probe.ok) {
    bench[label] = { skipped: probe.reason };
    continue;
  }
  if (label === 'node-gpu' && !nodeGpuAvailability.ok) {
    bench[label] = { skipped: nodeGpuAvailability.reason };
    continue;
  }
  log(`benchmark: ${label} (budget ${Number(budget) / 1000} s per measurement) …`);
  const r = spawnSync(process.execPath, [join(root, 'bench', 'backends', 'js_bench.mjs'), label], {
    cwd: root,
    env: { ...env, BENCH_BUDGET_MS: budget, BENCH_THREADS: process.env.BENCH_THREADS ?? '2' },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const line = (r.stdout ?? '').trim().split('\n').filter((l) => l.startsWith('{')).pop();
  bench[label] = line ? JSON.parse(line) : { error: `exit ${r.status}: ${(r.stderr ?? '').trim().split('\n').pop()}` };
}
started?.stop();

// 4. One table
const gflops = (x) => (!x ? '—' : x.skipped ? 'skipped (budget)' : x.ms ? `${(x.flops / x.ms / 1e6).toFixed(1)}` : '—');
const rows = [];
for (const label of ['wasm', 'gpujs-webgl', 'node-gpu']) {
  const b = bench[label] ?? {};
  const c = conformance.get(label);
  const runsOn =
    label === 'wasm'
      ? 'CPU (reference)'
      : label === 'gpujs-webgl'
        ? probe.ok
          ? `${b.gpuMode ?? 'headlessgl'} · ${probe.renderer}${probe.software ? ' — software, NOT the GPU' : ''}`
          : `no WebGL: ${probe.reason}`
        : nodeGpuAvailability.ok
          ? `tfjs-node-gpu · ${(b.capabilities?.notes ?? []).join('; ') || 'CUDA'}`
          : `unavailable: ${nodeGpuAvailability.reason}`;
  const mm = (name) => gflops(b.matmuls?.find((m) => m.name === name));
  const training = label.startsWith('gpujs') ? 'n/a (tensor ops: tfjs cpu)' : gflops(b.block);
  rows.push([
    label,
    runsOn,
    c ? `${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped` : 'not run',
    b.skipped ? 'skipped' : b.error ? `error: ${b.error}` : mm('matmul 512x512x512'),
    b.skipped || b.error ? '' : mm('matmul 1024x1024x1024'),
    b.skipped || b.error ? '' : mm('matmul 2048x768x3072'),
    b.skipped || b.error ? '' : label.startsWith('gpujs') ? gflops(b.gram) : '—',
    b.skipped || b.error ? '' : training,
  ]);
}
const header = ['backend', 'runs on', 'conformance (test/backends)', 'matmul 512³', 'matmul 1024³', '2048×768·768×3072', 'Gram 2048×768', 'LLaMA block fwd+bwd'];
const out = [
  `Topiary GPU check — ${new Date().toISOString()} — node ${process.version} — driver: ${driver}`,
  '',
  `| ${header.join(' | ')} |`,
  `|${header.map(() => '---').join('|')}|`,
  ...rows.map((r) => `| ${r.join(' | ')} |`),
  '',
  'GFLOP/s (fp32); gpujs times its gpu.js kernels (primitives.matmul, accumulateGram) including the upload/readback of the host arrays.',
  wandaLine,
  ...failures.map((f) => `FAILED: ${f}`),
].filter((l, i, all) => l !== '' || all[i - 1] !== '');
process.stdout.write(`${out.join('\n')}\n`);
const jsonOut = value('--json');
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ driver, probe, nodeGpu: nodeGpuAvailability, conformance: Object.fromEntries(conformance), failures, bench }, null, 2));
process.exitCode = failures.length > 0 ? 1 : 0;
