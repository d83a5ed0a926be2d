/**
 * The sweep's report.html: one table of every run (axis values, status, sparsity, parameters, perplexity, accuracy,
 * time, a link to the run's own report) and the frontier — perplexity against sparsity and against parameters, one
 * line per method, the spread over seeds as a band. Drawn with @topiary/report's SVG charts; self-contained.
 */
import { basename, join, relative } from 'node:path';
import { writeFileAtomic } from '@topiary/files';
import { escapeXml, linePlot, REPORT_CSS, type Series } from '@topiary/report';
import type { SweepAxis } from './grid.js';
import type { SweepFile, SweepPointRecord } from './sweep-file.js';

/** One position on a frontier line: the mean over seeds, and their spread. */
export interface FrontierPosition {
  x: number;
  y: number;
  low: number;
  high: number;
  /** Runs (seeds) behind it. */
  runs: number;
}

export interface FrontierLine {
  name: string;
  positions: FrontierPosition[];
}

export type FrontierAxis = 'sparsity' | 'parameters';

/** Axes that draw seeds (`seed`, `data.calibration.seed`, `stages[1].prune.calibration.seed`): their runs make a band. */
export function isSeedAxis(axis: Pick<SweepAxis, 'path'>): boolean {
  return /(^|\.)seed$/.test(axis.path);
}

function key(value: unknown): string {
  return JSON.stringify(value) ?? 'undefined';
}

function xOf(p: SweepPointRecord, axis: FrontierAxis): number | undefined {
  return axis === 'sparsity' ? p.metrics?.sparsity : p.metrics?.parameters;
}

/**
 * The frontier of a sweep for one perplexity file: runs that differ only in seed axes are one position (mean, min,
 * max); a line joins the positions that differ along an axis that moves the model's size (sparsity, ratio, blocks
 * removed — found from the measurements, not from names); every other axis (method, pattern, calibration size)
 * tells lines apart.
 */
export function frontier(sweep: Pick<SweepFile, 'axes' | 'points'>, axis: FrontierAxis, file: string): FrontierLine[] {
  const done = sweep.points.filter((p) => p.status === 'completed' && p.metrics && xOf(p, axis) !== undefined && p.metrics.perplexity[file] !== undefined);
  const varied = sweep.axes.filter((a) => !isSeedAxis(a));
  // an axis is along the lines when it moves the size: runs equal in every other (non-seed) axis sit further apart
  // than 5 % of the plotted range (methods and seeds differ in measured sparsity by a fraction of a percent)
  const xs = done.map((p) => xOf(p, axis)!);
  const tolerance = 0.05 * (Math.max(...xs) - Math.min(...xs));
  const along = new Set<string>();
  for (const a of varied) {
    const groups = new Map<string, Map<string, number[]>>();
    for (const p of done) {
      const rest = key(varied.filter((b) => b !== a).map((b) => p.values[b.name]));
      const byValue = groups.get(rest) ?? new Map<string, number[]>();
      const value = key(p.values[a.name]);
      byValue.set(value, [...(byValue.get(value) ?? []), xOf(p, axis)!]);
      groups.set(rest, byValue);
    }
    for (const byValue of groups.values()) {
      const means = [...byValue.values()].map((v) => v.reduce((s, x) => s + x, 0) / v.length);
      if (means.length > 1 && Math.max(...means) - Math.min(...means) > tolerance) along.add(a.name);
    }
  }
  const apart = varied.filter((a) => !along.has(a.name) && a.label !== 'method');
  const lines = new Map<string, Map<string, SweepPointRecord[]>>();
  for (const p of done) {
    const name = [p.metrics!.method, ...apart.map((a) => `${a.label}=${typeof p.values[a.name] === 'string' ? String(p.values[a.name]) : key(p.values[a.name])}`)].join(' · ');
    const positions = lines.get(name) ?? new Map<string, SweepPointRecord[]>();
    const at = key(varied.map((b) => p.values[b.name]));
    positions.set(at, [...(positions.get(at) ?? []), p]);
    lines.set(name, positions);
  }
  return [...lines.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, positions]) => ({
      name,
      positions: [...positions.values()]
        .map((runs) => {
          const ys = runs.map((r) => r.metrics!.perplexity[file]!);
          const xs = runs.map((r) => xOf(r, axis)!);
          return { x: xs.reduce((s, v) => s + v, 0) / xs.length, y: ys.reduce((s, v) => s + v, 0) / ys.length, low: Math.min(...ys), high: Math.max(...ys), runs: runs.length };
        })
        .sort((a, b) => a.x - b.x),
    }));
}

/** The input model's perplexity (from runs that evaluated it first), as a point of its own on the frontier. */
function inputModel(sweep: Pick<SweepFile, 'points'>, axis: FrontierAxis, file: string): FrontierPosition | undefined {
  const runs = sweep.points.filter((p) => p.metrics?.baseline?.[file] !== undefined && (axis === 'sparsity' || p.metrics.parametersBefore !== undefined));
  if (runs.length === 0) return undefined;
  const ys = runs.map((r) => r.metrics!.baseline![file]!);
  const x = axis === 'sparsity' ? 0 : runs[0]!.metrics!.parametersBefore!;
  return { x, y: ys.reduce((s, v) => s + v, 0) / ys.length, low: Math.min(...ys), high: Math.max(...ys), runs: runs.length };
}

function frontierPlot(sweep: SweepFile, axis: FrontierAxis, file: string): string {
  const lines = frontier(sweep, axis, file);
  const input = inputModel(sweep, axis, file);
  const all = [...lines.flatMap((l) => l.positions), ...(input ? [input] : [])].flatMap((p) => [p.low, p.high]);
  // perplexity spans decades once pruning bites: then the y axis is log10, so the dense end stays readable
  const log = all.length > 0 && Math.min(...all) > 0 && Math.max(...all) / Math.min(...all) > 20;
  const y = (v: number) => (log ? Math.log10(v) : v);
  const x = (v: number) => (axis === 'sparsity' ? v * 100 : v);
  const series: Series[] = lines.map((l) => ({
    name: l.name,
    points: l.positions.map((p) => [x(p.x), y(p.y)] as const),
    band: l.positions.filter((p) => p.runs > 1).map((p) => [x(p.x), y(p.low), y(p.high)] as const),
  }));
  if (input) series.push({ name: 'input model', points: [[x(input.x), y(input.y)]] });
  const name = basename(file);
  return linePlot(
    `Perplexity (${name}) vs ${axis === 'sparsity' ? 'sparsity' : 'parameters'}`,
    series,
    axis === 'sparsity' ? 'sparsity (%)' : 'parameters (non-zero)',
    log ? `log10 perplexity` : 'perplexity',
  );
}

function fmt(v: number | undefined, digits = 4): string {
  return v === undefined || !Number.isFinite(v) ? '–' : Number(v.toPrecision(digits)).toString();
}

function cell(value: unknown): string {
  if (value === undefined) return '–';
  return escapeXml(typeof value === 'string' ? value : key(value));
}

function table(sweep: SweepFile): string {
  const files = [...new Set(sweep.points.flatMap((p) => Object.keys(p.metrics?.perplexity ?? {})))];
  const tasks = [...new Set(sweep.points.flatMap((p) => Object.keys(p.metrics?.accuracy ?? {})))];
  const head = ['run', ...sweep.axes.map((a) => a.name), 'status', 'method', 'sparsity', 'parameters', ...files.map((f) => `ppl ${basename(f)}`), ...tasks.map((t) => `${t} acc`), 'time', 'worker'];
  const rows = sweep.points.map((p) => {
    const m = p.metrics;
    const report = join(p.runDir, 'report.html');
    const link = `<a href="${escapeXml(relative(sweep.dir, report))}">${escapeXml(p.id)}</a>`;
    const cells = [
      p.status === 'pending' || p.status === 'queued' ? escapeXml(p.id) : link,
      ...sweep.axes.map((a) => cell(p.values[a.name])),
      `<span class="status-${p.status}"${p.error ? ` title="${escapeXml(p.error)}"` : ''}>${p.status}</span>`,
      escapeXml(m?.method ?? '–'),
      m?.sparsity === undefined ? '–' : `${fmt(m.sparsity * 100, 3)} %`,
      m?.parameters === undefined ? '–' : String(m.parameters),
      ...files.map((f) => fmt(m?.perplexity[f])),
      ...tasks.map((t) => (m?.accuracy[t] === undefined ? '–' : `${fmt(m.accuracy[t]! * 100, 3)} %`)),
      m ? `${fmt(m.seconds, 3)} s` : '–',
      escapeXml(p.worker ?? '–'),
    ];
    return `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  });
  return `<table class="sweep"><thead><tr>${head.map((h) => `<th>${escapeXml(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

export function renderSweepReport(sweep: SweepFile): string {
  const files = [...new Set(sweep.points.flatMap((p) => Object.keys(p.metrics?.perplexity ?? {})))];
  const counts = Object.entries(sweep.counts)
    .map(([status, n]) => `${n} ${status}`)
    .join(', ');
  const meta = [`grid ${escapeXml(sweep.grid)}`, `${sweep.points.length} runs: ${escapeXml(counts)}`, sweep.queue && `queue ${escapeXml(sweep.queue)}`, `updated ${escapeXml(sweep.updated)}`].filter(Boolean).join(' · ');
  const failed = sweep.points.filter((p) => p.status === 'failed' && p.error);
  const errors = failed.length ? `<ul class="status-failed">${failed.map((p) => `<li>${escapeXml(`${p.id}: ${p.error}`)}</li>`).join('')}</ul>` : '';
  const plots = files.length
    ? files.map((f) => frontierPlot(sweep, 'sparsity', f) + frontierPlot(sweep, 'parameters', f)).join('\n')
    : '<p class="empty">No run has measured perplexity yet.</p>';
  const seeds = sweep.axes.filter(isSeedAxis).map((a) => a.name);
  const caption = `One line per method${seeds.length ? `; the band is the spread (min–max) over ${escapeXml(seeds.join(', '))}, the line their mean` : ''}. Parameters count non-zero weights.`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeXml(sweep.name)} — Topiary sweep</title><style>${REPORT_CSS}</style></head>
<body>
<h1>${escapeXml(sweep.name)}</h1>
<p class="meta">${meta}</p>${errors}
<section id="frontier"><h2>Frontier</h2><p class="caption">${caption}</p><div class="plots">${plots}</div></section>
<section id="runs"><h2>Runs</h2>${table(sweep)}</section>
<p class="meta">Generated by Topiary. Self-contained: no scripts, no network.</p>
</body></html>
`;
}

/** Write the sweep's report.html (atomically); returns its path. */
export function writeSweepReport(sweep: SweepFile): string {
  const path = join(sweep.dir, 'report.html');
  writeFileAtomic(path, renderSweepReport(sweep));
  return path;
}
