/**
 * Tiny SVG chart builders: line plots, grouped bars, histograms. Plain strings, no dependencies, readable
 * without JavaScript, so a report opens anywhere offline.
 */

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  /**
   * A spread drawn as a shaded band behind the line: `[x, low, high]` per x (e.g. min and max over seeds). One x
   * alone is drawn as a vertical bar.
   */
  band?: readonly (readonly [number, number, number])[];
}

export interface BarGroup {
  label: string;
  values: readonly number[];
}

/** One category of a per-stage chart: a stage (e.g. `3 eval`), what it measured, one value per series. */
export interface StageCategory {
  /** The stage, e.g. `3 eval` or `2 prune wanda`. */
  label: string;
  /** A second, smaller line under the label, e.g. `after 2 prune wanda`. */
  note?: string;
  /** One value per series; NaN or undefined where the stage did not measure that series. */
  values: readonly (number | undefined)[];
  /** Standard errors, drawn as whiskers (optional, per series). */
  errors?: readonly (number | undefined)[];
}

const PALETTE = ['#2b6cb0', '#dd6b20', '#38a169', '#805ad5', '#e53e3e', '#319795', '#d69e2e', '#718096'];
const W = 600;
const H = 280;
const M = { top: 44, right: 16, bottom: 44, left: 60 };

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** "Nice" tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (hi === lo) {
    hi = lo + (lo === 0 ? 1 : Math.abs(lo) * 0.1);
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const start = Math.floor(lo / step) * step;
  const ticks: number[] = [];
  // ticks until one reaches the top of the data, so nothing is drawn above the axis
  for (let v = start; ticks.length === 0 || ticks[ticks.length - 1]! < hi - step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(1);
  if (a >= 1000) return `${(v / 1000).toFixed(a >= 1e4 ? 0 : 1)}k`;
  return Number(v.toPrecision(3)).toString();
}

function frame(title: string, body: string, cls: string, w = W, h = H): string {
  return (
    `<svg class="${cls}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="${escapeXml(title)}">` +
    `<title>${escapeXml(title)}</title><text x="${w / 2}" y="16" text-anchor="middle" font-size="13" font-weight="600">${escapeXml(title)}</text>` +
    `${body}</svg>`
  );
}

function axes(xTicks: number[], yTicks: number[], sx: (v: number) => number, sy: (v: number) => number, xLabel: string, yLabel: string): string {
  let s = `<g font-size="10" fill="#444">`;
  for (const t of yTicks) {
    const y = sy(t);
    s += `<line x1="${M.left}" x2="${W - M.right}" y1="${y}" y2="${y}" stroke="#e2e8f0"/><text x="${M.left - 6}" y="${y + 3}" text-anchor="end">${formatTick(t)}</text>`;
  }
  for (const t of xTicks) {
    const x = sx(t);
    s += `<text x="${x}" y="${H - M.bottom + 14}" text-anchor="middle">${formatTick(t)}</text>`;
  }
  s += `<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#444"/>`;
  s += `<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="#444"/>`;
  s += `<text x="${(M.left + W - M.right) / 2}" y="${H - 8}" text-anchor="middle">${escapeXml(xLabel)}</text>`;
  s += `<text transform="translate(14 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(yLabel)}</text>`;
  return `${s}</g>`;
}

function legend(names: readonly string[]): string {
  if (names.length < 2) return '';
  // drawn in the top margin, between the title and the plot area, so it never covers data
  return names
    .map((n, i) => {
      const x = M.left + 8 + (i % 4) * 130;
      const y = 32 + Math.floor(i / 4) * 12;
      return `<rect x="${x}" y="${y - 8}" width="10" height="10" fill="${PALETTE[i % PALETTE.length]}"/><text x="${x + 14}" y="${y + 1}" font-size="10">${escapeXml(n)}</text>`;
    })
    .join('');
}

/** A line plot of one or more series (e.g. loss vs step). */
export function linePlot(title: string, series: readonly Series[], xLabel = 'step', yLabel = ''): string {
  // a band's ends count as data, so the axes cover the whole spread
  const bandPoints = series.flatMap((s) => (s.band ?? []).flatMap(([x, lo, hi]) => [[x, lo], [x, hi]] as const));
  const all = [...series.flatMap((s) => s.points), ...bandPoints].filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (all.length === 0) return frame(title, `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no data</text>`, 'plot line-plot');
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const xt = niceTicks(Math.min(...xs), Math.max(...xs));
  const yt = niceTicks(Math.min(...ys), Math.max(...ys));
  const [x0, x1] = [xt[0]!, xt[xt.length - 1]!];
  const [y0, y1] = [yt[0]!, yt[yt.length - 1]!];
  const sx = (v: number) => M.left + ((v - x0) / (x1 - x0 || 1)) * (W - M.left - M.right);
  const sy = (v: number) => H - M.bottom - ((v - y0) / (y1 - y0 || 1)) * (H - M.top - M.bottom);
  let body = axes(xt, yt, sx, sy, xLabel, yLabel);
  // bands first, so every line is drawn over every band
  series.forEach((s, i) => {
    const band = (s.band ?? []).filter(([x, lo, hi]) => Number.isFinite(x) && Number.isFinite(lo) && Number.isFinite(hi));
    if (band.length === 0) return;
    const color = PALETTE[i % PALETTE.length];
    const tip = `<title>${escapeXml(`${s.name}: spread`)}</title>`;
    if (band.length === 1) {
      const [x, lo, hi] = band[0]!;
      body += `<path class="band" d="M${sx(x).toFixed(1)},${sy(lo).toFixed(1)}V${sy(hi).toFixed(1)}" stroke="${color}" stroke-opacity="0.5" stroke-width="6" fill="none">${tip}</path>`;
      return;
    }
    const upper = band.map(([x, , hi], k) => `${k === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(hi).toFixed(1)}`).join('');
    const lower = [...band].reverse().map(([x, lo]) => `L${sx(x).toFixed(1)},${sy(lo).toFixed(1)}`).join('');
    body += `<path class="band" d="${upper}${lower}Z" fill="${color}" fill-opacity="0.18" stroke="none">${tip}</path>`;
  });
  series.forEach((s, i) => {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    const color = PALETTE[i % PALETTE.length];
    if (pts.length === 1) {
      body += `<circle class="series" cx="${sx(pts[0]![0])}" cy="${sy(pts[0]![1])}" r="3" fill="${color}"/>`;
    } else {
      const d = pts.map(([x, y], k) => `${k === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('');
      body += `<path class="series" d="${d}" fill="none" stroke="${color}" stroke-width="1.6"/>`;
    }
  });
  body += legend(series.map((s) => s.name));
  return frame(title, body, 'plot line-plot');
}

/** Grouped bars: one group per label (e.g. per layer), one bar per series (e.g. before / after). */
export function barChart(title: string, groups: readonly BarGroup[], seriesNames: readonly string[], yLabel = ''): string {
  const values = groups.flatMap((g) => g.values).filter(Number.isFinite);
  if (groups.length === 0 || values.length === 0) return frame(title, `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no data</text>`, 'plot bar-chart');
  const yt = niceTicks(Math.min(0, ...values), Math.max(...values));
  const [y0, y1] = [yt[0]!, yt[yt.length - 1]!];
  const sy = (v: number) => H - M.bottom - ((v - y0) / (y1 - y0 || 1)) * (H - M.top - M.bottom);
  const plotW = W - M.left - M.right;
  const groupW = plotW / groups.length;
  const barW = Math.max(1, (groupW * 0.8) / Math.max(1, seriesNames.length));
  let body = axes([], yt, () => 0, sy, '', yLabel);
  groups.forEach((g, gi) => {
    const gx = M.left + gi * groupW + groupW * 0.1;
    g.values.forEach((v, si) => {
      if (!Number.isFinite(v)) return;
      const y = sy(Math.max(v, y0));
      body += `<rect class="bar" x="${(gx + si * barW).toFixed(1)}" y="${y.toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${(sy(y0) - y).toFixed(1)}" fill="${PALETTE[si % PALETTE.length]}"><title>${escapeXml(`${g.label} ${seriesNames[si] ?? ''}: ${v}`)}</title></rect>`;
    });
    if (groups.length <= 40) {
      body += `<text x="${(gx + groupW * 0.4).toFixed(1)}" y="${H - M.bottom + 14}" text-anchor="middle" font-size="10">${escapeXml(g.label)}</text>`;
    }
  });
  body += legend(seriesNames);
  return frame(title, body, 'plot bar-chart');
}

/** Histogram of values (e.g. group saliencies), log-scaled x when values span decades. */
export function histogram(title: string, values: readonly number[], bins = 30, xLabel = 'value'): string {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return frame(title, `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no data</text>`, 'plot histogram');
  const positive = finite.every((v) => v > 0);
  const spanDecades = positive ? Math.log10(Math.max(...finite) / Math.min(...finite)) : 0;
  const useLog = positive && spanDecades > 2;
  const xsRaw = useLog ? finite.map(Math.log10) : finite;
  const lo = Math.min(...xsRaw);
  const hi = Math.max(...xsRaw);
  const width = (hi - lo) / bins || 1;
  const counts = new Array<number>(bins).fill(0);
  for (const v of xsRaw) counts[Math.min(bins - 1, Math.floor((v - lo) / width))]! += 1;
  const yt = niceTicks(0, Math.max(...counts));
  const y1 = yt[yt.length - 1]!;
  const sy = (v: number) => H - M.bottom - (v / (y1 || 1)) * (H - M.top - M.bottom);
  const sx = (v: number) => M.left + ((v - lo) / (hi - lo || 1)) * (W - M.left - M.right);
  const xt = niceTicks(lo, hi).filter((t) => t >= lo && t <= hi);
  let body = axes(xt, yt, sx, sy, useLog ? `log10(${xLabel})` : xLabel, 'count');
  const bw = (W - M.left - M.right) / bins;
  counts.forEach((c, i) => {
    if (c === 0) return;
    body += `<rect class="bar" x="${(M.left + i * bw).toFixed(1)}" y="${sy(c).toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${(sy(0) - sy(c)).toFixed(1)}" fill="${PALETTE[0]}"/>`;
  });
  return frame(title, body, 'plot histogram');
}

/**
 * Measurements per stage: one category per stage on a categorical axis (labels such as `1 eval`, `2 prune wanda`,
 * never a numeric "step" axis), one bar per series with its value written above it. The chart widens with the
 * number of categories so every label stays readable.
 */
export function stageChart(
  title: string,
  categories: readonly StageCategory[],
  seriesNames: readonly string[],
  yLabel = '',
  format: (v: number) => string = (v) => formatTick(v),
): string {
  const values = categories.flatMap((c) => c.values.map((v, i) => (v === undefined ? NaN : v + (c.errors?.[i] ?? 0)))).filter(Number.isFinite);
  const longest = Math.max(0, ...categories.flatMap((c) => [c.label.length, (c.note ?? '').length]));
  const slot = Math.max(90, longest * 6 + 12);
  const w = Math.max(W, M.left + M.right + slot * categories.length);
  const h = H + 16;
  const bottom = M.bottom + 16;
  if (categories.length === 0 || values.length === 0) return frame(title, `<text x="${w / 2}" y="${h / 2}" text-anchor="middle">no data</text>`, 'plot stage-chart', w, h);
  const yt = niceTicks(Math.min(0, ...values), Math.max(...values));
  const [y0, y1] = [yt[0]!, yt[yt.length - 1]!];
  const sy = (v: number) => h - bottom - ((v - y0) / (y1 - y0 || 1)) * (h - M.top - bottom);
  const groupW = (w - M.left - M.right) / categories.length;
  const barW = Math.min(48, Math.max(2, (groupW * 0.7) / Math.max(1, seriesNames.length)));
  let body = `<g font-size="10" fill="#444">`;
  for (const t of yt) {
    const y = sy(t);
    body += `<line x1="${M.left}" x2="${w - M.right}" y1="${y}" y2="${y}" stroke="#e2e8f0"/><text x="${M.left - 6}" y="${y + 3}" text-anchor="end">${formatTick(t)}</text>`;
  }
  body += `<line x1="${M.left}" x2="${w - M.right}" y1="${h - bottom}" y2="${h - bottom}" stroke="#444"/><line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${h - bottom}" stroke="#444"/>`;
  body += `<text transform="translate(14 ${(M.top + h - bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(yLabel)}</text></g>`;
  categories.forEach((c, ci) => {
    const center = M.left + ci * groupW + groupW / 2;
    const start = center - (barW * seriesNames.length) / 2;
    let bars = '';
    c.values.forEach((v, si) => {
      if (v === undefined || !Number.isFinite(v)) return;
      const x = start + si * barW;
      const y = sy(Math.max(v, y0));
      const color = PALETTE[si % PALETTE.length];
      const tip = `${c.label}${c.note ? ` (${c.note})` : ''} · ${seriesNames[si] ?? ''}: ${format(v)}`;
      bars += `<rect class="bar" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(1, barW - 2).toFixed(1)}" height="${(sy(y0) - y).toFixed(1)}" fill="${color}"><title>${escapeXml(tip)}</title></rect>`;
      const se = c.errors?.[si];
      let top = y;
      if (se !== undefined && Number.isFinite(se) && se > 0) {
        const mid = x + (barW - 2) / 2;
        const [a, b] = [sy(Math.max(y0, v - se)), sy(v + se)];
        bars += `<path class="whisker" d="M${mid.toFixed(1)},${a.toFixed(1)}V${b.toFixed(1)}M${(mid - 3).toFixed(1)},${b.toFixed(1)}h6M${(mid - 3).toFixed(1)},${a.toFixed(1)}h6" stroke="#2d3748" fill="none"/>`;
        top = Math.min(top, b);
      }
      bars += `<text class="value" x="${(x + (barW - 2) / 2).toFixed(1)}" y="${(top - 3).toFixed(1)}" text-anchor="middle" font-size="9">${escapeXml(format(v))}</text>`;
    });
    body += `<g class="stage">${bars}<text class="stage-label" x="${center.toFixed(1)}" y="${h - bottom + 14}" text-anchor="middle" font-size="10">${escapeXml(c.label)}</text>`;
    if (c.note) body += `<text class="stage-note" x="${center.toFixed(1)}" y="${h - bottom + 27}" text-anchor="middle" font-size="9" fill="#718096">${escapeXml(c.note)}</text>`;
    body += '</g>';
  });
  if (seriesNames.length >= 2) {
    body += seriesNames
      .map((n, i) => {
        const x = M.left + 8 + (i % 4) * 150;
        const y = 32 + Math.floor(i / 4) * 12;
        return `<rect x="${x}" y="${y - 8}" width="10" height="10" fill="${PALETTE[i % PALETTE.length]}"/><text x="${x + 14}" y="${y + 1}" font-size="10">${escapeXml(n)}</text>`;
      })
      .join('');
  }
  return frame(title, body, 'plot stage-chart', w, h);
}
