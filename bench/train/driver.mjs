// Shared by bench/train/run.mjs and bench/eval/run.mjs: run Topiary (each backend) and PyTorch on the same LLaMA
// shapes, one fresh process per measurement, print a table of side-by-side ratios against the targets, fit how the
// cost per token grows with the parameter count, and write bench/out/<name>-<time>.json.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeMeasurement, describeCandidates, fastestKernel, kernelByProbe, kernelCandidates, kernelJson, kernelSummary, topiaryEnv } from '../lib/openblas.mjs';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const log = (s) => process.stderr.write(`${s}\n`);

/** The llama2.c TinyStories shapes: 260K, 15M, 42M parameters. */
export const SHAPES = {
  64: { dim: 64, layers: 5, heads: 8, kv: 4, hidden: 172, vocab: 512 },
  288: { dim: 288, layers: 6, heads: 6, kv: 6, hidden: 768, vocab: 32000 },
  512: { dim: 512, layers: 8, heads: 8, kv: 8, hidden: 1376, vocab: 32000 },
};

export function parseArgs(argv, defaults) {
  const opt = (name, dflt) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : dflt);
  return {
    shapes: opt('shapes', defaults.shapes ?? '64,288,512').split(',').map(Number),
    seq: Number(opt('seq', defaults.seq ?? 256)),
    batch: Number(opt('batch', defaults.batch ?? 8)),
    steps: Number(opt('steps', defaults.steps ?? 3)),
    warmup: Number(opt('warmup', defaults.warmup ?? 1)),
    threads: Number(opt('threads', 2)),
    backends: opt('backends', 'wasm,native').split(','),
    kernelChoice: opt('kernel-choice', 'probe'),
  };
}

function shapeArgs(s, o, mode) {
  return ['--mode', mode, '--dim', s.dim, '--layers', s.layers, '--heads', s.heads, '--kv', s.kv, '--hidden', s.hidden, '--vocab', s.vocab,
    '--seq', o.seq, '--batch', o.batch, '--steps', o.steps, '--warmup', o.warmup, '--threads', o.threads].map(String);
}

function runJson(cmd, argv, env) {
  const r = spawnSync(cmd, argv, { cwd: root, encoding: 'utf8', env, maxBuffer: 1 << 26 });
  const line = (r.stdout ?? '').trim().split('\n').pop();
  try {
    return JSON.parse(line);
  } catch {
    return { ok: false, reason: `exit ${r.status}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}` };
  }
}

/** Least-squares slope of log(y) on log(x): cost ∝ params^slope. */
export function fitExponent(points) {
  const p = points.filter(([x, y]) => x > 0 && y > 0);
  if (p.length < 2) return null;
  const lx = p.map(([x]) => Math.log(x));
  const ly = p.map(([, y]) => Math.log(y));
  const mx = lx.reduce((a, b) => a + b, 0) / p.length;
  const my = ly.reduce((a, b) => a + b, 0) / p.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < p.length; i++) {
    num += (lx[i] - mx) * (ly[i] - my);
    den += (lx[i] - mx) ** 2;
  }
  return den > 0 ? num / den : null;
}

const fmt = (x, d = 1) => (x === undefined || x === null || !Number.isFinite(x) ? '—' : x.toFixed(d));
const mb = (b) => (b ? `${(b / 2 ** 20).toFixed(0)}` : '—');

/**
 * mode 'train' or 'eval'. targets: { speed: fastest ≥ x·torch, defaultSpeed: wasm ≥ x·torch, rss: ≤ x·torch }.
 */
export function compare(name, mode, o, targets) {
  if (!existsSync(join(root, 'packages', 'model-llama', 'dist', 'index.js')) || !existsSync(join(root, 'plugins', 'backend-wasm', 'dist', 'index.js'))) {
    log('building model-llama and the backends (pnpm exec turbo run build) ...');
    spawnSync('pnpm', ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only', '--filter=@topiary/model-llama', '--filter=@topiary/backend-wasm', '--filter=@topiary/backend-native'], { cwd: root, stdio: 'inherit' });
  }
  const kernels = kernelCandidates(o.threads);
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
  log(`${name}: ${machine}; load average at start ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  for (const l of describeCandidates(kernels, o.threads)) log(l);
  const rows = [];
  for (const dim of o.shapes) {
    const s = SHAPES[dim];
    if (!s) throw new Error(`unknown shape ${dim} (known: ${Object.keys(SHAPES).join(', ')})`);
    const row = { shape: s, torch: null, probe: null, kernels: null, topiary: {} };
    // Alternate engines per shape so that a change of machine load hits both sides alike. PyTorch runs on the
    // fastest OpenBLAS kernel the CPU supports: chosen by a short probe at this shape (default), or with
    // --kernel-choice full by timing the whole measurement under every kernel.
    let measured = kernels;
    if (o.kernelChoice === 'probe') {
      row.probe = kernelByProbe({ label: `${name} dim ${dim}`, threads: o.threads, candidates: kernels, args: shapeArgs(s, o, mode), cwd: root });
      if (row.probe.chosen) measured = { ...kernels, candidates: kernels.candidates.filter((c) => c.label === row.probe.chosen) };
    }
    row.kernels = fastestKernel({ label: `${name} dim ${dim}`, script: join(root, 'bench', 'train', 'torch_llama.py'), args: shapeArgs(s, o, mode), threads: o.threads,
      candidates: measured, value: (j) => j.tokensPerSecond, better: 'higher', unit: 'tok/s', cwd: root });
    row.torch = row.kernels.best?.json ?? { ok: false, reason: row.kernels.runs.map((r) => `${r.label}: ${r.reason}`).join('; ') };
    for (const b of o.backends) {
      beforeMeasurement(`${name} dim ${dim}: topiary ${b}`);
      // native on the OpenBLAS kernel PyTorch ran under (never this environment's OPENBLAS_CORETYPE)
      row.topiary[b] = runJson(process.execPath, ['--max-old-space-size=16384', join(root, 'bench', 'train', 'worker.mjs'), '--backend', b, ...shapeArgs(s, o, mode)], topiaryEnv(b, row.kernels.core));
      if (!row.topiary[b].ok) log(`    ${b}: unavailable — ${row.topiary[b].reason}${row.topiary[b].fix ? ` (fix: ${row.topiary[b].fix})` : ''}`);
    }
    rows.push(row);
  }

  const unit = 'tokens/s';
  const lines = [];
  const head = ['shape', 'params', `torch ${unit}`, 'torch kernel', ...o.backends.flatMap((b) => [`${b} ${unit}`, `${b}/torch`]), 'torch RSS MB', ...o.backends.flatMap((b) => [`${b} RSS MB`, `${b} RSS ratio`])];
  lines.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
  for (const r of rows) {
    const t = r.torch;
    const cells = [`dim ${r.shape.dim} / ${r.shape.layers} layers`, t.ok ? `${(t.params / 1e6).toFixed(2)}M` : '—', t.ok ? fmt(t.tokensPerSecond, 0) : `failed: ${t.reason}`, r.kernels.core ?? '—'];
    for (const b of o.backends) {
      const x = r.topiary[b];
      cells.push(x.ok ? fmt(x.tokensPerSecond, 0) : 'n/a', x.ok && t.ok ? `${fmt(x.tokensPerSecond / t.tokensPerSecond, 2)}×` : '—');
    }
    cells.push(t.ok ? mb(t.peakRssBytes) : '—');
    for (const b of o.backends) {
      const x = r.topiary[b];
      cells.push(x.ok ? mb(x.peakRssBytes) : 'n/a', x.ok && t.ok ? `${fmt(x.peakRssBytes / t.peakRssBytes, 2)}×` : '—');
    }
    lines.push(`| ${cells.join(' | ')} |`);
  }
  // Cost growth: seconds per token against parameter count.
  const exps = { torch: fitExponent(rows.filter((r) => r.torch.ok).map((r) => [r.torch.params, 1 / r.torch.tokensPerSecond])) };
  for (const b of o.backends) exps[b] = fitExponent(rows.filter((r) => r.topiary[b].ok).map((r) => [r.topiary[b].params, 1 / r.topiary[b].tokensPerSecond]));
  lines.push('', `cost growth (seconds per token ∝ params^k, least squares over the shapes): ${Object.entries(exps).map(([k, v]) => `${k} k=${fmt(v, 2)}`).join(', ')}`);
  if (o.kernelChoice === 'probe') {
    lines.push('', 'OpenBLAS kernel choice: seconds of the products of one step (bench/lib/openblas_probe.py, best of the rounds; * = fastest, the kernel PyTorch ran above):',
      ...rows.map((r) => `  dim ${r.shape.dim}: ${kernelSummary(r.probe)}`));
  } else lines.push('', `PyTorch ${unit} under each OpenBLAS kernel (* = fastest, the baseline above):`, ...rows.map((r) => `  dim ${r.shape.dim}: ${kernelSummary(r.kernels)}`));

  // Targets
  const verdicts = [];
  for (const r of rows) {
    const t = r.torch;
    if (!t.ok) continue;
    const avail = o.backends.filter((b) => r.topiary[b].ok);
    if (avail.length === 0) continue;
    const best = avail.reduce((a, b) => (r.topiary[b].tokensPerSecond > r.topiary[a].tokensPerSecond ? b : a));
    const speed = r.topiary[best].tokensPerSecond / t.tokensPerSecond;
    const rss = r.topiary[best].peakRssBytes / t.peakRssBytes;
    const v = [`dim ${r.shape.dim}: fastest (${best}) ${fmt(speed, 2)}× torch [target ≥ ${targets.speed}× ${speed >= targets.speed ? 'MET' : 'NOT MET'}]`];
    if (r.topiary.wasm?.ok) {
      const d = r.topiary.wasm.tokensPerSecond / t.tokensPerSecond;
      v.push(`default (wasm) ${fmt(d, 2)}× [target ≥ ${targets.defaultSpeed}× ${d >= targets.defaultSpeed ? 'MET' : 'NOT MET'}]`);
    }
    v.push(`peak RSS ${fmt(rss, 2)}× [target ≤ ${targets.rss}× ${rss <= targets.rss ? 'MET' : 'NOT MET'}]`);
    verdicts.push(v.join('; '));
  }
  const blas = rows.find((r) => r.torch.ok)?.torch;
  const header = [
    `${name}: ${mode === 'train' ? 'training (forward + backward + AdamW + clipping)' : 'evaluation (forward + cross-entropy)'}, fp32, seq ${o.seq}, batch ${o.batch}, ${o.steps} timed step(s) after ${o.warmup} warm-up, ${o.threads} threads`,
    `machine: ${machine}; load average now ${loadavg().map((x) => x.toFixed(1)).join(' ')} (a shared machine makes every number noisy)`,
    ...describeCandidates(kernels, o.threads),
    blas ? `PyTorch ${blas.torch}, BLAS ${blas.blas} (${blas.blasLibraries.join(', ')}), ${blas.threads} threads; kernel per shape: the fastest (column "torch kernel")` : 'PyTorch: not measured',
    `Topiary processes keep this environment (the native backend's OPENBLAS_CORETYPE excepted: PyTorch's kernel, bench/lib/openblas.mjs nativeEnv): OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? '(unset)'}, OPENBLAS_L2_SIZE=${process.env.OPENBLAS_L2_SIZE ?? '(unset)'}`,
    ...o.backends.map((b) => {
      const x = rows.map((r) => r.topiary[b]).find((y) => y.ok);
      return x ? `topiary ${b}: ${x.capabilities.notes[0]}` : `topiary ${b}: unavailable`;
    }),
  ];
  console.log([...header, '', ...lines, '', 'targets:', ...verdicts.map((v) => `  ${v}`)].join('\n'));
  const outDir = join(root, 'bench', 'out');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const kernelsJson = kernelJson(kernels, rows.flatMap((r) => [r.probe, r.kernels]));
  const rowsJson = rows.map((r) => ({ ...r, probe: undefined, kernels: { chosen: r.kernels.chosen, core: r.kernels.core, by: o.kernelChoice } }));
  writeFileSync(file, JSON.stringify({ name, mode, options: o, machine, loadavg: loadavg(), openblas: kernelsJson, targets, rows: rowsJson, exponents: exps, verdicts }, null, 2));
  log(`wrote ${file}`);
  return { rows, exps, verdicts };
}
