// The PyTorch/numpy baseline of every bench, on the fastest OpenBLAS kernel this CPU runs — one place for it.
//
// OpenBLAS (Debian's 0.3.21, DYNAMIC_ARCH) picks a kernel from the CPU it detects, and its pick is not always its
// fastest: on an AVX-512 AMD EPYC it picks `Cooperlake`, which trained the 15M model at 215 tokens/s against 778
// with `SkylakeX`. So a bench does not trust the pick: it runs its PyTorch measurement once under every kernel this
// CPU supports — each in a fresh process, with OPENBLAS_CORETYPE=<kernel> (or unset: "default") and
// OPENBLAS_L2_SIZE unset for that Python process only — checks which kernel really ran (openblas_get_corename in
// the measuring process, through bench/lib/openblas_run.py), and compares Topiary with the fastest. All candidates'
// numbers are printed and written to the bench's JSON.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PYTHON = process.env.TOPIARY_PYTHON ?? '/usr/bin/python3';
const RUNNER = join(dirname(fileURLToPath(import.meta.url)), 'openblas_run.py');
const log = (s) => process.stderr.write(`${s}\n`);

/** CPU flags that decide which OpenBLAS kernels can run (and which are worth naming in a table). */
export const RELEVANT_FLAGS = ['avx', 'avx2', 'fma', 'avx512f', 'avx512dq', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16', 'avx_vnni', 'amx_tile', 'amx_bf16'];

/** Model name, family/model numbers, logical CPUs and flags, from /proc/cpuinfo (empty flags where it is absent). */
export function cpuInfo() {
  const text = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const first = text.split(/\n\s*\n/)[0] ?? '';
  const field = (name) => first.match(new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm'))?.[1]?.trim();
  const flags = new Set((field('flags') ?? '').split(/\s+/).filter(Boolean));
  return {
    model: field('model name') ?? 'unknown CPU',
    vendor: field('vendor_id') ?? null,
    family: field('cpu family') ?? null,
    modelNumber: field('model') ?? null,
    logicalCpus: (text.match(/^processor\s*:/gm) ?? []).length,
    flags: RELEVANT_FLAGS.filter((f) => flags.has(f)),
    has: (...names) => names.every((f) => flags.has(f)),
  };
}

/** One line: "AMD EPYC (family 26, model 2), 2 logical CPUs; flags avx avx2 fma avx512f …". */
export function describeCpu(cpu = cpuInfo()) {
  const id = cpu.family ? ` (family ${cpu.family}, model ${cpu.modelNumber})` : '';
  return `${cpu.model}${id}, ${cpu.logicalCpus} logical CPUs; flags ${cpu.flags.join(' ') || 'none of ' + RELEVANT_FLAGS.join(' ')}`;
}

/** The OpenBLAS core types this CPU's flags can run, fastest-looking first ("default" is added by kernelCandidates). */
export function supportedKernels(cpu = cpuInfo()) {
  const k = [];
  if (cpu.has('avx512f', 'avx512dq', 'avx512bw', 'avx512vl')) {
    k.push('SkylakeX');
    if (cpu.has('avx512_bf16')) k.push('Cooperlake');
    if (cpu.has('avx512_bf16', 'amx_tile')) k.push('SapphireRapids'); // OpenBLAS ≥ 0.3.22 only; dropped when unknown
  }
  if (cpu.has('avx2', 'fma')) k.push('Haswell', 'Zen');
  if (cpu.has('avx')) k.push('Sandybridge');
  return k;
}

/** Python's environment for one kernel: the bench's thread count; OPENBLAS_CORETYPE = kernel, or unset for
 * "default"; OPENBLAS_L2_SIZE unset. Only the Python process gets it (Topiary's processes keep process.env). */
export function pythonEnv(threads, kernel = 'default') {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  if (kernel !== 'default') env.OPENBLAS_CORETYPE = kernel;
  return env;
}

/**
 * A Topiary native-backend process's environment: OpenBLAS on `core` (the kernel PyTorch ran under, so both sides
 * multiply with the same code), else — no core given, or "default" — the addon's own pick from the CPU flags. Never
 * the caller's OPENBLAS_CORETYPE: this machine's environment sets Haswell (AVX2; PyTorch's products run ~1.8× faster
 * under the AVX-512 kernels here, bench/backends), and native runs that inherited it were timed on a slower kernel
 * than PyTorch's (bench/scale until 2026-12-05; train, eval, generate and prune until 2026-12-06).
 */
export function nativeEnv(core) {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  if (core && core !== 'default') env.OPENBLAS_CORETYPE = core;
  return env;
}

/** What a Topiary run on `backend` gets: nativeEnv(core) for native, the caller's environment otherwise. */
export function topiaryEnv(backend, core) {
  return backend === 'native' ? nativeEnv(core) : process.env;
}

const CORE_PROBE = [
  'import ctypes, json',
  "l = ctypes.CDLL('libopenblas.so.0')",
  'l.openblas_get_corename.restype = ctypes.c_char_p',
  'l.openblas_get_config.restype = ctypes.c_char_p',
  "print(json.dumps({'corename': l.openblas_get_corename().decode(), 'config': l.openblas_get_config().decode()}))",
].join('\n');

/** The kernel OpenBLAS loads under this environment (no torch: a fraction of a second), or null. */
function coreUnder(threads, kernel) {
  const r = spawnSync(PYTHON, ['-c', CORE_PROBE], { env: pythonEnv(threads, kernel), encoding: 'utf8' });
  try {
    return JSON.parse(r.stdout.trim());
  } catch {
    return null;
  }
}

/** `--kernels a,b` on a bench's command line restricts the candidates (e.g. to save time; the table says so). */
function kernelsFromArgv() {
  const i = process.argv.indexOf('--kernels');
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1].split(',') : null;
}

/**
 * The kernels a bench measures on this machine: "default" (OPENBLAS_CORETYPE unset) and every kernel the CPU
 * supports that this OpenBLAS really loads when named (checked with openblas_get_corename). The default's own pick
 * is merged into the entry of that name ("Cooperlake (default)"), so the same configuration is not timed twice.
 */
export function kernelCandidates(threads) {
  const cpu = cpuInfo();
  const dflt = coreUnder(threads, 'default');
  const only = kernelsFromArgv();
  const info = { cpu, cpuLine: describeCpu(cpu), openblas: dflt?.config ?? 'not loadable (libopenblas.so.0)', defaultCore: dflt?.corename ?? null, candidates: [], skipped: [] };
  if (!dflt) {
    info.candidates.push({ kernel: 'default', core: null, label: 'default' });
    return info;
  }
  for (const kernel of supportedKernels(cpu)) {
    if (only && !only.includes(kernel) && !(kernel === dflt.corename && only.includes('default'))) {
      info.skipped.push({ kernel, reason: 'not in --kernels' });
      continue;
    }
    const got = coreUnder(threads, kernel);
    if (got?.corename !== kernel) info.skipped.push({ kernel, reason: `this OpenBLAS runs ${got?.corename ?? 'nothing'} when it is named` });
    else info.candidates.push({ kernel, core: kernel, label: kernel === dflt.corename ? `${kernel} (default)` : kernel });
  }
  if (!info.candidates.some((c) => c.core === dflt.corename) && (!only || only.includes('default'))) {
    info.candidates.push({ kernel: 'default', core: dflt.corename, label: `default (${dflt.corename})` });
  }
  return info;
}

/** Before a measurement: print `uptime` (load averages) and keep it for the JSON. With TOPIARY_BENCH_MAX_LOAD=x,
 * first wait (up to TOPIARY_BENCH_MAX_WAIT_S, default 120 s) for the 1-minute load to fall to x or below. */
export const loads = [];
export function beforeMeasurement(label) {
  const max = Number(process.env.TOPIARY_BENCH_MAX_LOAD);
  if (max > 0) {
    const deadline = Date.now() + 1000 * Number(process.env.TOPIARY_BENCH_MAX_WAIT_S ?? 120);
    if (loadavg()[0] > max) log(`[load] ${loadavg()[0].toFixed(2)} > ${max}: waiting (at most until ${new Date(deadline).toISOString().slice(11, 19)})`);
    while (loadavg()[0] > max && Date.now() < deadline) spawnSync('sleep', ['5']);
  }
  const up = (spawnSync('uptime', { encoding: 'utf8' }).stdout ?? '').trim() || `load average: ${loadavg().map((x) => x.toFixed(2)).join(', ')}`;
  log(`[load] ${label}: ${up}`);
  loads.push({ label, time: new Date().toISOString(), loadavg: loadavg() });
  return loadavg();
}

/**
 * One Python measurement under one kernel, in a fresh process: { ok, json (the script's last stdout line),
 * core (openblas_get_corename in that process), openblas (the full report), wallSeconds, reason }.
 * timeoutMs stops a run (then ok: false, stopped: true).
 */
export function runPython(script, args, { threads, kernel = 'default', cwd, timeoutMs } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'topiary-openblas-'));
  const reportFile = join(dir, 'report.json');
  const t0 = performance.now();
  const r = spawnSync(PYTHON, [RUNNER, reportFile, script, ...args.map(String)], {
    cwd, env: pythonEnv(threads, kernel), encoding: 'utf8', maxBuffer: 1 << 28, timeout: timeoutMs, killSignal: 'SIGKILL',
  });
  const wallSeconds = (performance.now() - t0) / 1000;
  let report = null;
  try {
    report = JSON.parse(readFileSync(reportFile, 'utf8'));
  } catch {}
  rmSync(dir, { recursive: true, force: true });
  const out = { ok: false, json: null, core: report?.corename ?? null, openblas: report, wallSeconds, reason: null };
  if (r.error?.code === 'ETIMEDOUT' || (timeoutMs && r.signal === 'SIGKILL' && wallSeconds * 1000 >= timeoutMs)) {
    return { ...out, stopped: true, reason: `stopped after ${wallSeconds.toFixed(0)} s` };
  }
  try {
    out.json = JSON.parse((r.stdout ?? '').trim().split('\n').pop());
    out.ok = r.status === 0;
  } catch {}
  if (!out.ok) out.reason = `exit ${r.status ?? r.signal}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`;
  return out;
}

/**
 * Run one PyTorch/numpy measurement under every candidate kernel (fresh process each) and pick the fastest.
 *   value(json) → the number compared (e.g. tokens/s, seconds); better: 'higher' | 'lower'; unit: for the table.
 *   capFactor: a candidate still running after capFactor × the fastest finished run's wall time (and at least
 *   minCapSeconds) is stopped and listed as slower (saves minutes on crippled kernels of the big shapes).
 * Returns { label, unit, better, chosen (the fastest candidate's label), core, best (its run), runs: [...] } and
 * prints the table. Every run's kernel is verified: a run whose kernel is not the one asked for does not count.
 */
export function fastestKernel({ label, script, args, threads, candidates, value, better = 'higher', unit = '', capFactor = 2.5, minCapSeconds = 60, cwd }) {
  const runs = [];
  let fastestWall = Infinity;
  for (const c of candidates.candidates) {
    beforeMeasurement(`${label}: PyTorch, OpenBLAS ${c.label}`);
    const cap = Number.isFinite(fastestWall) ? Math.round(Math.max(minCapSeconds, capFactor * fastestWall) * 1000) : undefined;
    const r = runPython(script, args, { threads, kernel: c.kernel, cwd, timeoutMs: cap });
    const run = { kernel: c.kernel, label: c.label, expected: c.core, core: r.core, ok: r.ok, value: null, wallSeconds: r.wallSeconds, stopped: !!r.stopped, reason: r.reason, json: r.json, openblas: r.openblas };
    if (r.ok && c.core && r.core !== c.core) {
      run.ok = false;
      run.reason = `ran ${r.core}, not ${c.core}`;
    }
    if (run.ok) {
      run.value = value(r.json);
      fastestWall = Math.min(fastestWall, r.wallSeconds);
    }
    log(`  ${label}: ${c.label.padEnd(22)} ${run.ok ? `${fmtValue(run.value)} ${unit}` : run.reason}${run.ok && run.core ? ` (ran ${run.core})` : ''}`);
    runs.push(run);
  }
  const ok = runs.filter((r) => r.ok && Number.isFinite(r.value));
  const best = ok.length ? ok.reduce((a, b) => ((better === 'higher' ? b.value > a.value : b.value < a.value) ? b : a)) : null;
  const choice = { label, unit, better, chosen: best?.label ?? null, core: best?.core ?? null, best, runs };
  log(kernelTable(choice));
  return choice;
}

/** `--probe-rounds N` on a bench's command line (default 3). */
export function probeRoundsFromArgv(dflt = 3) {
  const i = process.argv.indexOf('--probe-rounds');
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

/**
 * The kernel choice by a short probe (bench/lib/openblas_probe.py, the products of one step at the bench's shape):
 * `rounds` passes over the candidates, interleaved so that a change of load hits every kernel alike, each run a
 * fresh process with its kernel checked; each kernel's best (lowest) probe time counts. Returns a choice like
 * fastestKernel's (runs[i].value = best probe seconds, runs[i].values = every round's) and prints the table.
 */
export function kernelByProbe({ label, threads, candidates, args, rounds = probeRoundsFromArgv(), cwd }) {
  const script = join(dirname(RUNNER), 'openblas_probe.py');
  const runs = candidates.candidates.map((c) => ({ kernel: c.kernel, label: c.label, expected: c.core, core: null, ok: false, value: null, values: [], wallSeconds: 0, stopped: false, reason: null }));
  for (let round = 0; round < rounds; round++) {
    beforeMeasurement(`${label}: OpenBLAS probe, round ${round + 1} of ${rounds}`);
    for (const run of runs) {
      const r = runPython(script, args, { threads, kernel: run.kernel, cwd });
      run.wallSeconds += r.wallSeconds;
      run.core = r.core ?? run.core;
      if (!r.ok) run.reason = r.reason;
      else if (run.expected && r.core !== run.expected) run.reason = `ran ${r.core}, not ${run.expected}`;
      else run.values.push(r.json.seconds);
    }
  }
  for (const run of runs) {
    run.ok = run.values.length > 0;
    if (run.ok) {
      run.value = Math.min(...run.values);
      run.reason = null;
    }
  }
  const ok = runs.filter((r) => r.ok);
  const best = ok.length ? ok.reduce((a, b) => (b.value < a.value ? b : a)) : null;
  const choice = { label: `${label} (probe: the products of one step, best of ${rounds})`, unit: 's', better: 'lower', chosen: best?.label ?? null, core: best?.core ?? null, best, runs, probe: true };
  log(kernelTable(choice));
  return choice;
}

function fmtValue(v) {
  if (!Number.isFinite(v)) return '—';
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
}

/** "SkylakeX 778 · Haswell 702 · Zen 690 · Cooperlake (default) 215 · Sandybridge stopped" with the winner starred. */
export function kernelSummary(choice) {
  return choice.runs
    .map((r) => `${r.label}${r.label === choice.chosen ? '*' : ''} ${r.ok ? fmtValue(r.value) : r.stopped ? `slower (${r.reason})` : `failed (${r.reason})`}`)
    .join(' · ');
}

/** The probe table of one choice, as printed. */
export function kernelTable(choice) {
  const lines = [`OpenBLAS kernels — ${choice.label} (${choice.unit}, ${choice.better} is better; fresh process each, kernel checked with openblas_get_corename):`];
  for (const r of choice.runs) {
    const v = r.ok ? `${fmtValue(r.value)} ${choice.unit}` : r.stopped ? `slower: ${r.reason}` : `failed: ${r.reason}`;
    lines.push(`  ${r.label.padEnd(22)} ${v.padEnd(24)} wall ${r.wallSeconds.toFixed(1)} s${r.label === choice.chosen ? '   <- chosen (fastest)' : ''}`);
  }
  if (!choice.chosen) lines.push('  no kernel gave a result: the PyTorch column is missing');
  return lines.join('\n');
}

/** Header lines every bench prints: CPU + flags, OpenBLAS build and default pick, candidates and skipped kernels. */
export function describeCandidates(info, threads) {
  return [
    `CPU: ${info.cpuLine}`,
    `OpenBLAS: ${info.openblas}; picks ${info.defaultCore ?? '?'} by itself; PyTorch timed under each of: ${info.candidates.map((c) => c.label).join(', ')}` +
      `${info.skipped.length ? ` (not timed: ${info.skipped.map((s) => `${s.kernel} — ${s.reason}`).join('; ')})` : ''}; ${threads} thread(s); OPENBLAS_L2_SIZE unset for Python`,
  ];
}

/** What goes into a bench's JSON: machine facts, candidates, and each choice with every run's number and kernel. */
export function kernelJson(info, choices) {
  const strip = (r) => ({ kernel: r.kernel, label: r.label, core: r.core, ok: r.ok, value: r.value, values: r.values, wallSeconds: r.wallSeconds, stopped: r.stopped, reason: r.reason, openblasConfig: r.openblas?.config ?? null, openblasThreads: r.openblas?.threads ?? null });
  return {
    cpu: { model: info.cpu.model, family: info.cpu.family, model_number: info.cpu.modelNumber, logicalCpus: info.cpu.logicalCpus, flags: info.cpu.flags },
    openblas: info.openblas,
    defaultCore: info.defaultCore,
    candidates: info.candidates.map((c) => c.label),
    skipped: info.skipped,
    choices: choices.filter(Boolean).map((c) => ({ label: c.label, probe: !!c.probe, unit: c.unit, better: c.better, chosen: c.chosen, core: c.core, runs: c.runs.map(strip) })),
    loads,
  };
}
