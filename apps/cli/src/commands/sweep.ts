/**
 * `topiary sweep GRID`: a recipe with axes (`matrix:`) into one run folder per combination, run here with
 * `--parallel N` processes or queued for `topiary worker`s with `--queue redis://host:port`; sweep.json and one
 * report with the frontier. `--status` says where a sweep stands. The sweep itself is @topiary/sweep's.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { TopiaryError } from '@topiary/kernel';
import {
  expandGrid,
  parseQueueUrl,
  readGrid,
  runFolderState,
  runSweep,
  SWEEP_FILE,
  sweepDirOf,
  sweepFileOf,
  sweepStatus,
  shownUrl,
  type PointMetrics,
  type SweepEvent,
  type SweepFile,
  type SweepPlan,
} from '@topiary/sweep';
import { createRunContext, pluginSearchRoots, type GlobalOptions } from '../context.js';
import { resolveRecipeFiles } from '../recipes.js';

interface SweepFlags {
  parallel: number;
  queue?: string;
  retries: number;
  status?: boolean;
  dryRun?: boolean;
}

export function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function wholeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number ≥ 0');
  return n;
}

/** `sparsity 50.0% · ppl(file) 17.061 · 2.3 s`: what a finished run measured, on one line. */
export function metricsLine(m: PointMetrics | undefined): string {
  if (!m) return '';
  const parts: string[] = [];
  if (m.sparsity !== undefined) parts.push(`sparsity ${(m.sparsity * 100).toFixed(1)}%`);
  if (m.parameters !== undefined) parts.push(`parameters ${m.parameters}`);
  for (const [file, ppl] of Object.entries(m.perplexity)) parts.push(`ppl(${basename(file)}) ${ppl.toFixed(3)}`);
  for (const [task, acc] of Object.entries(m.accuracy)) parts.push(`${task} acc ${(acc * 100).toFixed(1)}%`);
  parts.push(`${m.seconds.toFixed(1)} s`);
  return parts.join(' · ');
}

/** An axis value as a person reads it: strings bare, everything else as JSON. */
function shown(value: unknown): string {
  return typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
}

/** Columns padded to their widest cell. */
function columns(rows: readonly string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => `  ${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}`.trimEnd()).join('\n');
}

function countsLine(sweep: SweepFile): string {
  return Object.entries(sweep.counts)
    .map(([status, n]) => `${n} ${status}`)
    .join(', ');
}

/** The runs as a table (for a person) or the sweep as one JSON object (for a machine), on stdout. */
function printSweep(sweep: SweepFile, json: boolean, extra: Record<string, unknown> = {}, lines: string[] = []): void {
  if (json) {
    process.stdout.write(`${JSON.stringify({ sweep: sweep.dir, name: sweep.name, counts: sweep.counts, report: join(sweep.dir, 'report.html'), ...extra, runs: sweep.points })}\n`);
    return;
  }
  const files = [...new Set(sweep.points.flatMap((p) => Object.keys(p.metrics?.perplexity ?? {})))];
  const rows = [['run', 'status', 'sparsity', 'parameters', ...files.map((f) => `ppl(${basename(f)})`), 'time']];
  for (const p of sweep.points) {
    const m = p.metrics;
    rows.push([
      p.id,
      p.status,
      m?.sparsity === undefined ? '–' : `${(m.sparsity * 100).toFixed(1)}%`,
      m?.parameters === undefined ? '–' : String(m.parameters),
      ...files.map((f) => (m?.perplexity[f] === undefined ? '–' : m.perplexity[f]!.toFixed(3))),
      m ? `${m.seconds.toFixed(1)} s` : '–',
    ]);
  }
  const failed = sweep.points.filter((p) => p.status === 'failed' && p.error).map((p) => `failed ${p.id}: ${p.error}`);
  const out = [`sweep ${sweep.name}: ${sweep.points.length} runs · ${countsLine(sweep)}`, ...lines, columns(rows), ...failed, `report: ${join(sweep.dir, 'report.html')}`, `sweep.json: ${join(sweep.dir, SWEEP_FILE)}`];
  process.stdout.write(`${out.join('\n')}\n`);
}

/** Progress on stderr: one line per run started or finished (JSON lines with --json); -q keeps failures only. */
function progressPrinter(plan: SweepPlan, g: GlobalOptions): (event: SweepEvent) => void {
  const total = plan.points.length;
  let done = plan.points.filter((p) => runFolderState(p.runDir).state === 'completed').length;
  return (event) => {
    if (g.json) {
      const { point, type, ...rest } = event as SweepEvent & { point?: { id: string } };
      process.stderr.write(`${JSON.stringify({ type: `sweep/${type}`, ...(point ? { run: point.id } : {}), ...rest })}\n`);
      return;
    }
    if (event.type === 'finished' && event.outcome.status !== 'completed') {
      process.stderr.write(`${event.outcome.status} ${event.point.id}${event.outcome.error ? `: ${event.outcome.error.message}` : ''}\n`);
      return;
    }
    if (g.quiet) return;
    if (event.type === 'stopping') process.stderr.write(`${event.message}\n`);
    else if (event.type === 'queued') process.stderr.write(`queued ${event.point.id}\n`);
    else if (event.type === 'started') process.stderr.write(`started ${event.point.id}${event.worker ? ` on ${event.worker}` : ''}\n`);
    else if (event.type === 'retrying') process.stderr.write(`retrying ${event.point.id} (attempt ${event.attempts} failed: ${event.error})\n`);
    else if (event.type === 'finished') process.stderr.write(`[${++done}/${total}] completed ${event.point.id} · ${metricsLine(event.outcome.metrics)}\n`);
  };
}

export function registerSweep(program: Command, globals: () => GlobalOptions): void {
  program
    .command('sweep')
    .argument('[grid]', 'grid file: a recipe with a matrix: of axes (YAML or JSON); with --status, the grid or its sweep folder')
    .description('Run a grid of recipes (methods × sparsities × seeds …) as ordinary run folders, here or on a Redis queue, into sweep.json and one report with the perplexity frontier')
    .option('--parallel <n>', 'runs at a time on this machine, each in its own process', positiveInteger, 1)
    .option('--queue <url>', 'queue the runs on BullMQ/Redis (redis://host:port) for `topiary worker --queue URL` processes, and wait for them')
    .option('--retries <n>', 'with --queue: attempts after a failed one (then the run is failed)', wholeNumber, 2)
    .option('--status', 'show where the sweep stands (rewrites sweep.json and report.html); with --queue, the queue and its workers too')
    .option('--dry-run', 'expand and check the grid, list the runs, run nothing')
    .addHelpText(
      'after',
      `
A grid is a recipe plus matrix:, field paths with their lists of values. Paths are written as errors name fields
(stages[1].prune.method, data.calibration.seed); a recipe field (seed, backend, model) or an option of exactly one
stage (sparsity, pattern) may be named alone. Every combination is checked before anything runs, as topiary run
checks a recipe; an axis that names no field, a refused value or an empty grid is an error naming the axis.

  model: { from: ../assets/models/stories260K-hf }
  data: { calibration: { path: ../assets/data/tinystories_val_head.txt, samples: 16, seqlen: 128 } }
  stages:
    - eval: { perplexity: [../assets/data/tinystories_val_head.txt], seqlen: 128, limit: 16 }
    - prune: { method: wanda, sparsity: 0.5 }
    - eval: { perplexity: [../assets/data/tinystories_val_head.txt], seqlen: 128, limit: 16 }
  matrix:
    stages[1].prune.method: [magnitude, wanda, sparsegpt]
    sparsity: [0.3, 0.5, 0.7]
    data.calibration.seed: [0, 1, 2]
  output: ../runs/my-sweep

The sweep folder (--out, else the grid's output, else runs/<grid name>) gets runs/<run>/ (each an ordinary run
folder), logs/<run>.log, attempts.jsonl, sweep.json and report.html (a table and the frontier: perplexity vs
sparsity and vs parameters, one line per method, the spread over seed axes as a band). Running the sweep again
skips complete runs and resumes unfinished ones. Ctrl-C stops starting runs; running ones stop after their current
step (Ctrl-C again: at once). Exit 0 when every run completed, 1 when some failed, 130 when stopped early.

With --queue the runs become jobs on BullMQ (Redis); start \`topiary worker --queue URL\` on machines that see the
same model, data and sweep folder paths. A failed run is retried (--retries), a run whose worker dies is re-run by
another worker (resuming its folder); each job's numbers are also kept in Redis. Ctrl-C stops waiting, not the
workers; \`topiary sweep GRID --status --queue URL\` shows progress.

Examples:
  $ topiary sweep recipes/sweep-stories260k.yaml --dry-run
  $ topiary sweep recipes/sweep-stories260k.yaml --parallel 2
  $ topiary sweep recipes/sweep-stories260k.yaml --queue redis://127.0.0.1:6379
  $ topiary worker --queue redis://127.0.0.1:6379
  $ topiary sweep recipes/sweep-stories260k.yaml --status`,
    )
    .action(async (gridArg: string | undefined, flags: SweepFlags, command: Command) => {
      const g = globals();
      if (flags.status) return showStatus(gridArg, flags, g);
      if (!gridArg) throw new TopiaryError('E_USAGE', 'missing the grid file', { where: 'sweep', hint: 'topiary sweep GRID.yaml (a recipe with matrix:), or topiary sweep --status GRID|DIR' });
      if (flags.queue !== undefined && command.getOptionValueSource('parallel') === 'cli') {
        throw new TopiaryError('E_USAGE', 'is for runs on this machine; with --queue the workers run them', { where: '--parallel', hint: 'start more `topiary worker --queue URL` processes (or give them --concurrency N)' });
      }
      const plan = await planSweep(gridArg, g, command);
      if (flags.dryRun) {
        if (g.json) process.stdout.write(`${JSON.stringify({ sweep: plan.dir, name: plan.name, runs: plan.points.map((p) => ({ id: p.id, values: p.values, runDir: p.runDir })) })}\n`);
        else process.stdout.write(`${[`sweep ${plan.name}: ${plan.points.length} runs into ${plan.dir}`, columns([['run', ...plan.axes.map((a) => a.name)], ...plan.points.map((p) => [p.id, ...plan.axes.map((a) => shown(p.values[a.name]))])])].join('\n')}\n`);
        return;
      }
      const outcome = await runSweep(plan, {
        host: { pluginRoots: pluginSearchRoots(), plugin: g.plugin, allowPluginPath: g.allowPluginPath },
        parallel: flags.parallel,
        retries: flags.retries,
        ...(flags.queue !== undefined ? { queue: flags.queue } : {}),
        onEvent: progressPrinter(plan, g),
      });
      const notes = outcome.skipped > 0 ? [`(${outcome.skipped} complete before, skipped)`] : [];
      if (outcome.code === 130) notes.push(`continue with: topiary sweep ${gridArg}${flags.queue ? ` --queue ${flags.queue}` : ''}`);
      printSweep(outcome.sweep, g.json, { code: outcome.code }, notes);
      process.exitCode = outcome.code;
    });
}

/** Read and expand a grid with the installed plugins (every run checked), closing the plugins' run after. */
async function planSweep(gridArg: string, g: GlobalOptions, command: Command): Promise<SweepPlan> {
  const grid = readGrid(gridArg);
  const required = Array.isArray(grid.base.plugins) ? grid.base.plugins.filter((p): p is string => typeof p === 'string') : [];
  const run = await createRunContext(g, required);
  try {
    const backendFromFlag = command.parent?.getOptionValueSource('backend') === 'cli';
    return expandGrid(run, grid, { ...(g.out !== undefined ? { out: g.out } : {}), ...(backendFromFlag ? { backend: g.backend } : {}), resolvePaths: resolveRecipeFiles });
  } finally {
    run.close();
  }
}

async function showStatus(target: string | undefined, flags: SweepFlags, g: GlobalOptions): Promise<void> {
  const given = target ?? g.out;
  if (given === undefined) throw new TopiaryError('E_USAGE', 'which sweep? name its grid file or its folder', { where: '--status', hint: 'topiary sweep GRID.yaml --status, or topiary sweep --status runs/my-sweep' });
  let dir: string;
  let start: SweepFile | undefined;
  if (existsSync(given) && statSync(given).isDirectory()) {
    dir = given;
  } else {
    const grid = readGrid(given);
    dir = sweepDirOf(grid, g.out);
    // a sweep driven from another machine has no sweep.json here yet: start from the grid itself
    if (!existsSync(join(dir, SWEEP_FILE))) {
      const run = await createRunContext(g);
      try {
        start = sweepFileOf(expandGrid(run, grid, { ...(g.out !== undefined ? { out: g.out } : {}), resolvePaths: resolveRecipeFiles }));
      } finally {
        run.close();
      }
    }
  }
  const status = await sweepStatus(dir, { ...(flags.queue !== undefined ? { queue: flags.queue } : {}), ...(start ? { sweep: start } : {}) });
  const queueLine = status.queue
    ? [`queue ${shownUrl(parseQueueUrl(flags.queue!))}: ${Object.entries(status.queue.counts).map(([k, n]) => `${n} ${k}`).join(', ')} · ${status.queue.workers.length} worker${status.queue.workers.length === 1 ? '' : 's'}${status.queue.workers.length ? ` (${status.queue.workers.join(', ')})` : ''}`]
    : [];
  printSweep(status.sweep, g.json, status.queue ? { queue: status.queue } : {}, queueLine);
}
