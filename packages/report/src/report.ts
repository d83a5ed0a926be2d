/**
 * report.html: one self-contained page (inline CSS and SVG, no scripts, no network) titled by the recipe's name,
 * with the eval table, perplexity and accuracy per stage (a categorical chart), curves over optimiser steps (one
 * series per metric name and stage), per-layer sparsity and width bars before/after, and saliency histograms per
 * group kind.
 */
import { basename, join, resolve } from 'node:path';
import { type MetricEvent } from '@topiary/kernel';
import { writeFileAtomic } from '@topiary/files';
import { barChart, escapeXml, histogram, linePlot, stageChart, type Series, type StageCategory } from './svg.js';
import { recipeNameOf } from './recipe-name.js';
import { readMetrics, readResults, type ArchitectureSnapshot, type EvalSummary, type RunResults, type StageResult } from './results.js';

function fmt(v: number | undefined, digits = 4): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  return Math.abs(v) >= 1000 ? v.toFixed(0) : Number(v.toPrecision(digits)).toString();
}

function stageLabel(s: StageResult): string {
  return `${s.index + 1}. ${s.kind}${s.name !== s.kind ? ` (${s.name})` : ''}`;
}

/** A stage on a categorical axis: `1 eval`, `2 prune wanda`, `6 finetune (distilled)`. */
export function stageTick(s: Pick<StageResult, 'index' | 'kind' | 'name'>): string {
  const name = s.name === s.kind || !s.name ? '' : s.name.startsWith(s.kind) ? s.name.slice(s.kind.length) : ` ${s.name}`;
  return `${s.index + 1} ${s.kind}${name}`;
}

/** Every evaluation of the run in order: the input model's (baseline), then each stage that measured one. */
function measurements(results: RunResults): StageCategoryRow[] {
  const rows: StageCategoryRow[] = [];
  if (results.baseline) rows.push({ label: 'input', note: 'input model', e: results.baseline });
  results.stages.forEach((s, i) => {
    if (!s.eval) return;
    if (s.kind !== 'eval') {
      rows.push({ label: stageTick(s), e: s.eval });
      return;
    }
    // an eval stage measures the model left by the last stage that changed it
    const changer = results.stages.slice(0, i).reverse().find((x) => x.kind !== 'eval');
    rows.push({ label: stageTick(s), note: changer ? `after ${stageTick(changer)}` : 'input model', e: s.eval });
  });
  return rows;
}

interface StageCategoryRow {
  label: string;
  note?: string;
  e: EvalSummary;
}

/** Short, distinct series names for perplexity files: the file name, the whole key where two names collide. */
function fileNames(keys: readonly string[]): string[] {
  const short = keys.map((k) => k.split(/[\\/]/).pop() || k);
  return short.map((n, i) => (short.filter((x) => x === n).length > 1 ? keys[i]! : n));
}

/**
 * Perplexity and accuracy per stage, from results.json: one category per evaluation, labelled by its stage
 * (`3 eval`, with `after 2 prune wanda` under it), one bar per perplexity file / task. Stages are categories, not
 * points on a numeric axis: an eval has no "step".
 */
function stageCharts(results: RunResults): string {
  const rows = measurements(results);
  if (rows.length === 0) return '';
  const parts: string[] = [];
  const pplKeys = [...new Set(rows.flatMap((r) => Object.keys(r.e.perplexity ?? {})))];
  if (pplKeys.length > 0) {
    const categories: StageCategory[] = rows
      .filter((r) => pplKeys.some((k) => r.e.perplexity?.[k] !== undefined))
      .map((r) => ({ label: r.label, note: r.note, values: pplKeys.map((k) => r.e.perplexity?.[k]?.ppl) }));
    parts.push(stageChart('Perplexity per stage', categories, fileNames(pplKeys), 'perplexity', (v) => fmt(v, 4)));
  }
  const taskKeys = [...new Set(rows.flatMap((r) => Object.keys(r.e.tasks ?? {})))];
  if (taskKeys.length > 0) {
    const series = taskKeys.flatMap((t) => [`${t} acc`, `${t} acc_norm`]);
    const categories: StageCategory[] = rows
      .filter((r) => taskKeys.some((t) => r.e.tasks?.[t] !== undefined))
      .map((r) => ({
        label: r.label,
        note: r.note,
        values: taskKeys.flatMap((t) => {
          const x = r.e.tasks?.[t];
          return [x ? x.acc * 100 : undefined, x ? x.acc_norm * 100 : undefined];
        }),
        errors: taskKeys.flatMap((t) => {
          const x = r.e.tasks?.[t];
          return [x?.acc_stderr !== undefined ? x.acc_stderr * 100 : undefined, x?.acc_norm_stderr !== undefined ? x.acc_norm_stderr * 100 : undefined];
        }),
      }));
    parts.push(stageChart('Accuracy per stage', categories, series, 'accuracy (%)', (v) => v.toFixed(1)));
  }
  return parts.join('\n');
}

/**
 * Curves over optimiser steps (e.g. `finetune/loss`, `valid_perplexity`) from metrics.jsonl: every metric name is
 * its own series, and so is every stage it was recorded in (two finetune stages are two lines, never one). A
 * step is the optimiser step within its stage, 1-based. `eval/*` metrics are measurements per stage, not curves:
 * they are drawn per stage from results.json.
 */
function curves(metrics: readonly MetricEvent[], stages: readonly StageResult[]): string {
  const byKey = new Map<string, { name: string; stage?: number; points: [number, number][] }>();
  metrics.forEach((m, i) => {
    if (m.name.startsWith('eval/')) return;
    const tag = m.tags?.stage;
    const stage = typeof tag === 'number' ? tag : typeof tag === 'string' && tag.trim() !== '' && Number.isFinite(Number(tag)) ? Number(tag) : undefined;
    const key = `${m.name}\u0000${stage ?? ''}`;
    const entry = byKey.get(key) ?? { name: m.name, stage, points: [] };
    entry.points.push([m.step ?? i, m.value]);
    byKey.set(key, entry);
  });
  const plotted = [...byKey.values()].filter((e) => e.points.length >= 2);
  if (plotted.length === 0) return '<p class="empty">No metric was recorded over steps in this run.</p>';
  const stagesOf = new Map<string, number>();
  for (const e of plotted) stagesOf.set(e.name, (stagesOf.get(e.name) ?? 0) + 1);
  const families = new Map<string, Series[]>();
  for (const e of plotted) {
    const where = e.stage === undefined ? undefined : stages.find((s) => s.index === e.stage);
    const name = (stagesOf.get(e.name) ?? 0) > 1 && e.stage !== undefined ? `${e.name} · ${where ? stageTick(where) : `stage ${e.stage + 1}`}` : e.name;
    const key = e.name.includes('loss') ? 'Loss' : e.name.includes('ppl') || e.name.includes('perplexity') ? 'Perplexity' : e.name;
    const list = families.get(key) ?? [];
    list.push({ name, points: [...e.points].sort((a, b) => a[0] - b[0]) });
    families.set(key, list);
  }
  return [...families.entries()].map(([title, series]) => linePlot(title, series, 'optimiser step', title.toLowerCase())).join('\n');
}

/** Per-layer sparsity bars (one chart per stage that pruned elements); the page's Compare view draws them too. */
export function sparsityBars(stages: readonly StageResult[]): string {
  const parts: string[] = [];
  for (const s of stages) {
    if (!s.layers || s.layers.length === 0) continue;
    const perBlock = new Map<number, { zeros: number; count: number }>();
    for (const l of s.layers) {
      const b = perBlock.get(l.layer) ?? { zeros: 0, count: 0 };
      b.zeros += l.sparsity;
      b.count += 1;
      perBlock.set(l.layer, b);
    }
    // mean sparsity of the block's pruned linear layers after the stage
    const groups = [...perBlock.entries()].sort((a, b) => a[0] - b[0]).map(([layer, b]) => ({ label: `L${layer}`, values: [b.zeros / b.count] }));
    parts.push(barChart(`Per-layer sparsity after ${stageLabel(s)}`, groups, ['sparsity'], 'sparsity'));
  }
  return parts.join('\n');
}

/** Heads and FFN width per layer, before and after (one pair per stage that changed widths). */
export function widthBars(stages: readonly StageResult[]): string {
  const parts: string[] = [];
  for (const s of stages) {
    const before = s.architectureBefore;
    const after = s.architectureAfter;
    if (!before || !after) continue;
    const same = JSON.stringify(before.layers) === JSON.stringify(after.layers) && before.dim === after.dim;
    if (same) continue;
    const n = Math.max(before.layers.length, after.layers.length);
    const pick = (a: ArchitectureSnapshot, i: number, k: 'nHeads' | 'hiddenDim') => a.layers[i]?.[k] ?? 0;
    const heads = Array.from({ length: n }, (_, i) => ({ label: `L${i}`, values: [pick(before, i, 'nHeads'), pick(after, i, 'nHeads')] }));
    const ffn = Array.from({ length: n }, (_, i) => ({ label: `L${i}`, values: [pick(before, i, 'hiddenDim'), pick(after, i, 'hiddenDim')] }));
    parts.push(barChart(`Attention heads per layer — ${stageLabel(s)}`, heads, ['before', 'after'], 'heads'));
    parts.push(barChart(`FFN width per layer — ${stageLabel(s)}`, ffn, ['before', 'after'], 'channels'));
    parts.push(`<p class="caption">Hidden size ${before.dim} → ${after.dim}; blocks ${before.layers.length} → ${after.layers.length}; parameters ${before.parameters} → ${after.parameters}.</p>`);
  }
  return parts.join('\n');
}

/**
 * Group scores by group kind from a stage: `result.saliency` (what the prune stage stores), else the pruner's
 * `details.groupScores`, else `details.saliency` when it is such a record (and not the criterion's name). A
 * Float64Array that went through JSON (`{"0": …, "1": …}`) counts as a list.
 */
export function groupScoresOf(s: StageResult): Record<string, number[]> | undefined {
  for (const candidate of [s.saliency, s.details?.groupScores, s.details?.saliency]) {
    if (!candidate || typeof candidate !== 'object' || Array.isArray(candidate)) continue;
    const out: Record<string, number[]> = {};
    for (const [kind, raw] of Object.entries(candidate as Record<string, unknown>)) {
      const list = Array.isArray(raw) ? raw : raw && typeof raw === 'object' ? Object.values(raw) : [];
      const values = list.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
      if (values.length > 0) out[kind] = values;
    }
    if (Object.keys(out).length > 0) return out;
  }
  return undefined;
}

/** A prune that removed whole groups (heads, KV groups, FFN channels, blocks). */
function isStructured(s: StageResult): boolean {
  if (s.kind !== 'prune') return false;
  if (Array.isArray(s.details?.removedGroups)) return true;
  const before = s.architectureBefore;
  const after = s.architectureAfter;
  return Boolean(before && after && (before.dim !== after.dim || JSON.stringify(before.layers) !== JSON.stringify(after.layers)));
}

function saliencyHistograms(stages: readonly StageResult[]): string {
  const parts: string[] = [];
  for (const s of stages) {
    const scores = groupScoresOf(s);
    if (scores) {
      for (const [kind, values] of Object.entries(scores)) {
        parts.push(histogram(`Saliency of ${kind} groups — ${stageLabel(s)}`, values, 30, 'saliency'));
      }
    } else if (isStructured(s)) {
      const criterion = typeof s.details?.saliency === 'string' ? ` (criterion ${s.details.saliency})` : '';
      parts.push(
        `<p class="empty saliency-missing">${escapeXml(stageLabel(s))}${escapeXml(criterion)} removed groups but reported no group scores: ` +
          `neither the stage's <code>saliency</code> nor the pruner's <code>details.groupScores</code> holds a list per group kind, so there is no histogram to draw.</p>`,
      );
    }
  }
  return parts.join('\n');
}

function evalTable(results: RunResults): string {
  const rows: { label: string; e: EvalSummary }[] = [];
  if (results.baseline) rows.push({ label: 'input model', e: results.baseline });
  results.stages.forEach((s, i) => {
    if (!s.eval) return;
    // an eval stage measures the model left by the last stage that changed it
    const changer = results.stages.slice(0, i).reverse().find((x) => x.kind !== 'eval');
    const label = s.kind !== 'eval' ? `after ${stageLabel(s)}` : changer ? `after ${stageLabel(changer)}` : 'input model';
    rows.push({ label, e: s.eval });
  });
  if (rows.length === 0) return '<p class="empty">No evaluation in this run.</p>';
  const pplKeys = [...new Set(rows.flatMap((r) => Object.keys(r.e.perplexity)))];
  const taskKeys = [...new Set(rows.flatMap((r) => Object.keys(r.e.tasks)))];
  const head = ['model', ...pplKeys.map((k) => `ppl ${k.split('/').pop()}`), ...taskKeys.flatMap((t) => [`${t} acc`, `${t} acc_norm`])];
  const body = rows.map((r) => {
    const cells = [
      escapeXml(r.label),
      ...pplKeys.map((k) => fmt(r.e.perplexity[k]?.ppl)),
      ...taskKeys.flatMap((t) => {
        const x = r.e.tasks[t];
        return x ? [`${fmt(x.acc * 100, 3)}${x.acc_stderr !== undefined ? ` ± ${fmt(x.acc_stderr * 100, 2)}` : ''}`, fmt(x.acc_norm * 100, 3)] : ['–', '–'];
      }),
    ];
    return `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  });
  return `<table class="eval"><thead><tr>${head.map((h) => `<th>${escapeXml(h)}</th>`).join('')}</tr></thead><tbody>${body.join('')}</tbody></table>`;
}

function stageTable(results: RunResults): string {
  const rows = results.stages.map(
    (s) =>
      `<tr><td>${escapeXml(stageLabel(s))}</td><td>${fmt(s.seconds, 3)} s</td><td>${s.parametersBefore ?? '–'}</td><td>${s.parametersAfter ?? '–'}</td><td>${s.sparsity === undefined ? '–' : `${fmt(s.sparsity * 100, 3)} %`}</td></tr>`,
  );
  return `<table class="stages"><thead><tr><th>stage</th><th>time</th><th>params before</th><th>params after</th><th>sparsity</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/** The reports' look (run and sweep reports share it). */
export const REPORT_CSS = `body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1340px;color:#1a202c;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #e2e8f0;padding-bottom:4px}
.meta{color:#4a5568;font-size:13px}.plots{display:flex;flex-wrap:wrap;gap:12px}svg.plot{border:1px solid #e2e8f0;border-radius:6px;background:#fff;max-width:100%;height:auto}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #e2e8f0;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}
th{background:#f7fafc}.empty{color:#718096;font-style:italic}.status-failed{color:#c53030}.caption{font-size:12px;color:#4a5568}`;

export interface RenderOptions {
  /** The recipe's `name`: the title (else `results.recipeName`, else the run folder's name). */
  recipeName?: string;
}

export function renderReport(results: RunResults, metrics: readonly MetricEvent[], options: RenderOptions = {}): string {
  const title = options.recipeName ?? results.recipeName ?? results.name ?? 'Topiary run';
  const status = `<span class="status-${results.status}">${results.status}</span>`;
  const meta = [
    results.name && results.name !== title && `run folder ${escapeXml(results.name)}`,
    results.model && `model ${escapeXml(results.model)}`,
    results.backend && `backend ${escapeXml(results.backend)}`,
    `started ${escapeXml(results.started)}`,
    results.finished && `finished ${escapeXml(results.finished)}`,
  ]
    .filter(Boolean)
    .join(' · ');
  const error = results.error ? `<p class="status-failed">${escapeXml(`${results.error.code}: ${results.error.message}`)}</p>` : '';
  const section = (id: string, heading: string, content: string) =>
    `<section id="${id}"><h2>${heading}</h2><div class="plots">${content || '<p class="empty">Nothing to show for this run.</p>'}</div></section>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeXml(title)} — Topiary report</title><style>${REPORT_CSS}</style></head>
<body>
<h1>${escapeXml(title)}</h1>
<p class="meta">${meta} · ${status}</p>${error}
<section id="stages"><h2>Stages</h2>${stageTable(results)}</section>
<section id="eval"><h2>Evaluation</h2>${evalTable(results)}</section>
${section('per-stage', 'Perplexity and accuracy per stage', stageCharts(results))}
${section('curves', 'Loss and other curves over optimiser steps', curves(metrics, results.stages))}
${section('sparsity', 'Per-layer sparsity and widths', sparsityBars(results.stages) + widthBars(results.stages))}
${section('saliency', 'Saliency by group kind', saliencyHistograms(results.stages))}
<p class="meta">Generated by Topiary. Self-contained: no scripts, no network.</p>
</body></html>
`;
}

/**
 * Read `results.json` and `metrics.jsonl` from a run folder and write `report.html` (atomically). The title is the
 * recipe's `name` (recipe.resolved.yaml's, else the recipe file's), else the folder's name.
 */
export function writeReport(runDir: string): string {
  const results = readResults(join(runDir, 'results.json'));
  const metrics = readMetrics(join(runDir, 'metrics.jsonl'));
  const path = join(runDir, 'report.html');
  const named = { ...results, name: results.name ?? basename(resolve(runDir)) };
  writeFileAtomic(path, renderReport(named, metrics, { recipeName: recipeNameOf(runDir, results) }));
  return path;
}
