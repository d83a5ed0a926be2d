/**
 * report.html: one self-contained page (inline CSS and SVG, no scripts, no network) with the loss and perplexity
 * curves, per-layer sparsity and width bars before/after, saliency histograms per group kind and the eval table.
 */
import { join } from 'node:path';
import { type MetricEvent } from '@topiary/kernel';
import { writeFileAtomic } from '@topiary/files';
import { barChart, escapeXml, histogram, linePlot, type Series } from './svg.js';
import { readMetrics, readResults, type ArchitectureSnapshot, type EvalSummary, type RunResults, type StageResult } from './results.js';

function fmt(v: number | undefined, digits = 4): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  return Math.abs(v) >= 1000 ? v.toFixed(0) : Number(v.toPrecision(digits)).toString();
}

function stageLabel(s: StageResult): string {
  return `${s.index + 1}. ${s.kind}${s.name !== s.kind ? ` (${s.name})` : ''}`;
}

/** Curves: every metric with at least two points, grouped by the part before the first '/' (e.g. train/loss). */
function curves(metrics: readonly MetricEvent[]): string {
  const byName = new Map<string, [number, number][]>();
  metrics.forEach((m, i) => {
    const pts = byName.get(m.name) ?? [];
    pts.push([m.step ?? i, m.value]);
    byName.set(m.name, pts);
  });
  const plotted = [...byName.entries()].filter(([, pts]) => pts.length >= 2);
  if (plotted.length === 0) return '<p class="empty">No metric was recorded over steps in this run.</p>';
  const families = new Map<string, Series[]>();
  for (const [name, points] of plotted) {
    const key = name.includes('loss') ? 'Loss' : name.includes('ppl') || name.includes('perplexity') ? 'Perplexity' : name;
    const list = families.get(key) ?? [];
    list.push({ name, points });
    families.set(key, list);
  }
  return [...families.entries()].map(([title, series]) => linePlot(title, series, 'step', title.toLowerCase())).join('\n');
}

function sparsityBars(stages: readonly StageResult[]): string {
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

function widthBars(stages: readonly StageResult[]): string {
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

function saliencyHistograms(stages: readonly StageResult[]): string {
  const parts: string[] = [];
  for (const s of stages) {
    for (const [kind, values] of Object.entries(s.saliency ?? {})) {
      parts.push(histogram(`Saliency of ${kind} groups — ${stageLabel(s)}`, values, 30, 'saliency'));
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

const CSS = `body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1340px;color:#1a202c;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #e2e8f0;padding-bottom:4px}
.meta{color:#4a5568;font-size:13px}.plots{display:flex;flex-wrap:wrap;gap:12px}svg.plot{border:1px solid #e2e8f0;border-radius:6px;background:#fff;max-width:100%;height:auto}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #e2e8f0;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}
th{background:#f7fafc}.empty{color:#718096;font-style:italic}.status-failed{color:#c53030}.caption{font-size:12px;color:#4a5568}`;

export function renderReport(results: RunResults, metrics: readonly MetricEvent[]): string {
  const title = results.name ?? 'Topiary run';
  const status = `<span class="status-${results.status}">${results.status}</span>`;
  const meta = [
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
<title>${escapeXml(title)} — Topiary report</title><style>${CSS}</style></head>
<body>
<h1>${escapeXml(title)}</h1>
<p class="meta">${meta} · ${status}</p>${error}
<section id="stages"><h2>Stages</h2>${stageTable(results)}</section>
<section id="eval"><h2>Evaluation</h2>${evalTable(results)}</section>
${section('curves', 'Loss and perplexity', curves(metrics))}
${section('sparsity', 'Per-layer sparsity and widths', sparsityBars(results.stages) + widthBars(results.stages))}
${section('saliency', 'Saliency by group kind', saliencyHistograms(results.stages))}
<p class="meta">Generated by Topiary. Self-contained: no scripts, no network.</p>
</body></html>
`;
}

/** Read `results.json` and `metrics.jsonl` from a run folder and write `report.html` (atomically). */
export function writeReport(runDir: string): string {
  const results = readResults(join(runDir, 'results.json'));
  const metrics = readMetrics(join(runDir, 'metrics.jsonl'));
  const path = join(runDir, 'report.html');
  writeFileAtomic(path, renderReport(results, metrics));
  return path;
}
