/**
 * Results of the EfficientLLM experiment on a pretrained source, from the run folders alone (so `--report-only`
 * redoes them at any time): results.json (every run, and every arm × target aggregated over seeds), results.md
 * (the table), ppl-vs-tokens.svg (held-out perplexity vs training tokens, one panel per target, one line per arm:
 * the mean over seeds, the band min–max) and architecture-evolution.svg (arm (a): per-layer heads, KV groups,
 * FFN width and the hidden size vs tokens, from the trainer's `architecture` metric lines).
 *
 * Spread over seeds is given as min–max (with 3 seeds an sd says little more); the held-out perplexity also has
 * its sd.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const LABELS = {
  e0: '(e0) source, untrained',
  e1: '(e1) source, continued unpruned',
  a: '(a) pruning-aware continued pretraining',
  akd: '(a+KD) (a) + distillation from the source',
  b: "(b) (a)'s architecture from scratch",
  c: '(c) uniform hand-designed, from scratch',
  d: '(d) LLM-Pruner one-shot, then continued',
};
const ORDER = ['e0', 'e1', 'a', 'akd', 'b', 'c', 'd'];
const SOURCE = { params: 260032, hidden: 64, layers: Array.from({ length: 5 }, () => ({ heads: 8, kvHeads: 4, ffn: 172 })) };
const PALETTE = ['#2b6cb0', '#dd6b20', '#38a169', '#805ad5', '#e53e3e', '#319795', '#d69e2e', '#718096'];

const readJson = (p) => (existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : undefined);
const readLines = (p) =>
  existsSync(p)
    ? readFileSync(p, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l))
    : [];

/** The folder the trainer wrote (metrics.jsonl, summary.json): the run folder, or for (d) its train stage's. */
export function trainFolder(dir) {
  if (existsSync(join(dir, 'summary.json'))) return dir;
  const stages = join(dir, 'stages');
  if (!existsSync(stages)) return null;
  const found = readdirSync(stages)
    .filter((s) => s.startsWith('train-') && existsSync(join(stages, s, 'summary.json')))
    .sort();
  return found.length ? join(stages, found[found.length - 1]) : null;
}

/** Every `<name>.run.json` under `dir`. */
function runRecords(dir) {
  if (!existsSync(dir)) return [];
  const found = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) found.push(...runRecords(p));
    else if (name.endsWith('.run.json')) found.push(JSON.parse(readFileSync(p, 'utf8')));
  }
  return found;
}

/** The shape in a written model's config.json (per-layer sizes in `topiary_layers` when they differ). */
function shapeFromConfig(file) {
  const c = readJson(file);
  if (!c) return undefined;
  const layers = Array.from({ length: c.num_hidden_layers }, (_, i) => {
    const l = c.topiary_layers?.[i] ?? {};
    return { heads: l.num_attention_heads ?? c.num_attention_heads, kvHeads: l.num_key_value_heads ?? c.num_key_value_heads, ffn: l.intermediate_size ?? c.intermediate_size };
  });
  return { hidden: c.hidden_size, layers };
}

const shapeOf = (arch) =>
  `d=${arch.hidden}; heads ${arch.layers.map((l) => l.heads).join('/')}; kv ${arch.layers.map((l) => l.kvHeads).join('/')}; ffn ${arch.layers.map((l) => l.ffn).join('/')}`;

/** One run: what it trained and how it scored. */
function collect(record) {
  const run = { arm: record.arm, target: record.target, seed: record.seed, status: record.status, error: record.error, command: record.command, seconds: record.seconds, peakRssKiB: record.peakRssKiB };
  const held = readJson(`${record.dir}.heldout.json`);
  const zero = readJson(`${record.dir}.zeroshot.json`);
  if (held) {
    const ppl = Object.values(held.perplexity)[0];
    const nw = held.tasks.nextword;
    Object.assign(run, { heldoutPpl: ppl?.ppl, heldoutTokens: ppl?.tokens, nextWordAcc: nw?.acc, nextWordAccStderr: nw?.acc_stderr, nextWordPpl: nw?.perplexity, nextWordItems: nw?.n });
  }
  if (zero) {
    run.zeroShot = Object.fromEntries(Object.entries(zero.tasks).map(([k, v]) => [k, { acc: v.acc, acc_stderr: v.acc_stderr, n: v.n }]));
    const accs = Object.values(zero.tasks).map((v) => v.acc);
    run.zeroShotMean = accs.reduce((s, x) => s + x, 0) / accs.length;
    run.zeroShotLimit = zero.limit;
  }
  if (record.arm === 'e0') {
    Object.assign(run, { params: SOURCE.params, tokens: 0, shape: shapeOf(SOURCE), curve: [], architecture: [], seconds: undefined });
    return run;
  }
  const folder = record.status === 0 ? trainFolder(record.dir) : null;
  if (!folder) return run;
  const summary = readJson(join(folder, 'summary.json'));
  if (!summary.architecture?.layers?.length) summary.architecture = shapeFromConfig(join(folder, 'model', 'config.json')) ?? summary.architecture;
  const metrics = readLines(join(folder, 'metrics.jsonl'));
  const perStep = summary.tokens / Math.max(1, summary.steps);
  Object.assign(run, {
    params: summary.params,
    tokens: summary.tokens,
    steps: summary.steps,
    trainerValidPpl: summary.validPerplexity,
    trainSeconds: summary.seconds,
    shape: shapeOf(summary.architecture),
    curve: metrics.filter((m) => m.type === 'eval').map((m) => [m.tokens, m.validPerplexity]),
    architecture: [
      ...metrics.filter((m) => m.type === 'architecture').map((m) => ({ tokens: m.step * perStep, hidden: m.hidden, layers: m.layers })),
      { tokens: summary.tokens, hidden: summary.architecture.hidden, layers: summary.architecture.layers },
    ],
  });
  return run;
}

function stats(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x));
  if (v.length === 0) return undefined;
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  const sd = v.length > 1 ? Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / (v.length - 1)) : 0;
  return { mean, sd, min: Math.min(...v), max: Math.max(...v), n: v.length };
}

/** Mean and min–max over seeds of curves measured at the same token counts. */
function meanCurve(curves) {
  const byX = new Map();
  for (const c of curves) for (const [x, y] of c) byX.set(x, [...(byX.get(x) ?? []), y]);
  const xs = [...byX.keys()].sort((p, q) => p - q);
  return {
    points: xs.map((x) => [x, stats(byX.get(x)).mean]),
    band: curves.length > 1 ? xs.map((x) => [x, Math.min(...byX.get(x)), Math.max(...byX.get(x))]) : [],
  };
}

// ---------------------------------------------------------------- SVG
const esc = (t) => String(t).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fmt = (v) => (v >= 1e6 ? `${(v / 1e6).toFixed(v % 1e6 ? 1 : 0)}M` : v >= 1000 ? `${(v / 1000).toFixed(v % 1000 ? 1 : 0)}k` : `${Number(v.toPrecision(3))}`);

/** Linear ticks covering [lo, hi]. */
function ticks(lo, hi, count = 5) {
  if (hi === lo) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.floor(lo / step) * step; out.length === 0 || out[out.length - 1] < hi - step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** 1-2-5 ticks covering [lo, hi] for a log axis. */
function logTicks(lo, hi) {
  const out = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) for (const f of [1, 2, 5]) out.push(f * 10 ** e);
  const first = out.filter((t) => t <= lo).pop() ?? out[0];
  const last = out.find((t) => t >= hi) ?? out[out.length - 1];
  return out.filter((t) => t >= first && t <= last);
}

/**
 * One panel (a <g> at `x`, `y`): series {name, points [[x, y]], band [[x, lo, hi]]}, linear x, linear or log y.
 * Panels are composed into one file by `svgFile`.
 */
function panel({ title, series, xLabel, yLabel, logY = false, x = 0, y = 0, w = 640, h = 300 }) {
  const m = { top: 44 + 12 * Math.ceil(series.length / 3), right: 16, bottom: 40, left: 58 };
  const all = series.flatMap((s) => [...s.points, ...(s.band ?? []).flatMap(([bx, lo, hi]) => [[bx, lo], [bx, hi]])]).filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b) && (!logY || b > 0));
  let body = `<text x="${w / 2}" y="16" text-anchor="middle" font-size="13" font-weight="600">${esc(title)}</text>`;
  if (all.length === 0) return `<g transform="translate(${x} ${y})">${body}<text x="${w / 2}" y="${h / 2}" text-anchor="middle">no data</text></g>`;
  const xt = ticks(Math.min(0, ...all.map((p) => p[0])), Math.max(...all.map((p) => p[0])));
  const ylo = Math.min(...all.map((p) => p[1]));
  const yhi = Math.max(...all.map((p) => p[1]));
  const yt = logY ? logTicks(ylo, yhi) : ticks(Math.min(0, ylo), yhi);
  const f = logY ? Math.log10 : (v) => v;
  const [x0, x1, y0, y1] = [xt[0], xt[xt.length - 1], f(yt[0]), f(yt[yt.length - 1])];
  const sx = (v) => m.left + ((v - x0) / (x1 - x0 || 1)) * (w - m.left - m.right);
  const sy = (v) => h - m.bottom - ((f(v) - y0) / (y1 - y0 || 1)) * (h - m.top - m.bottom);
  body += '<g font-size="10" fill="#444">';
  for (const t of yt) body += `<line x1="${m.left}" x2="${w - m.right}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" stroke="#e2e8f0"/><text x="${m.left - 6}" y="${(sy(t) + 3).toFixed(1)}" text-anchor="end">${fmt(t)}</text>`;
  for (const t of xt) body += `<text x="${sx(t).toFixed(1)}" y="${h - m.bottom + 14}" text-anchor="middle">${fmt(t)}</text>`;
  body += `<line x1="${m.left}" x2="${w - m.right}" y1="${h - m.bottom}" y2="${h - m.bottom}" stroke="#444"/><line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${h - m.bottom}" stroke="#444"/>`;
  body += `<text x="${(m.left + w - m.right) / 2}" y="${h - 6}" text-anchor="middle">${esc(xLabel)}</text><text transform="translate(14 ${(m.top + h - m.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text></g>`;
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const band = (s.band ?? []).filter(([, lo, hi]) => Number.isFinite(lo) && Number.isFinite(hi) && (!logY || lo > 0));
    if (band.length > 1) {
      const upper = band.map(([bx, , hi], k) => `${k ? 'L' : 'M'}${sx(bx).toFixed(1)},${sy(hi).toFixed(1)}`).join('');
      const lower = [...band].reverse().map(([bx, lo]) => `L${sx(bx).toFixed(1)},${sy(lo).toFixed(1)}`).join('');
      body += `<path d="${upper}${lower}Z" fill="${color}" fill-opacity="0.15" stroke="none"/>`;
    }
    const pts = s.points.filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b) && (!logY || b > 0));
    if (pts.length === 1) body += `<circle cx="${sx(pts[0][0]).toFixed(1)}" cy="${sy(pts[0][1]).toFixed(1)}" r="3" fill="${color}"/>`;
    else if (pts.length > 1) body += `<path d="${pts.map(([a, b], k) => `${k ? 'L' : 'M'}${sx(a).toFixed(1)},${sy(b).toFixed(1)}`).join('')}" fill="none" stroke="${color}" stroke-width="1.6"${s.dash ? ' stroke-dasharray="5 3"' : ''}/>`;
    const lx = m.left + 8 + (i % 3) * 190;
    const ly = 34 + Math.floor(i / 3) * 12;
    body += `<rect x="${lx}" y="${ly - 8}" width="10" height="10" fill="${color}"/><text x="${lx + 14}" y="${ly + 1}" font-size="10">${esc(s.name)}</text>`;
  });
  return `<g transform="translate(${x} ${y})">${body}</g>`;
}

const svgFile = (w, h, parts) => `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" font-family="sans-serif" font-size="12"><rect width="${w}" height="${h}" fill="white"/>${parts.join('')}</svg>\n`;

// ---------------------------------------------------------------- the report
const pct = (x) => (x === undefined ? '–' : `${(100 * x).toFixed(1)}`);
const spread = (s, digits, scale = 1) => (!s ? '–' : s.n === 1 ? (s.mean * scale).toFixed(digits) : `${(s.mean * scale).toFixed(digits)} [${(s.min * scale).toFixed(digits)}–${(s.max * scale).toFixed(digits)}]`);

export function writeReport(out) {
  const runs = runRecords(join(out, 'runs')).map(collect);
  const groups = [];
  for (const arm of ORDER) {
    const targets = [...new Set(runs.filter((r) => r.arm === arm).map((r) => r.target))].sort((p, q) => q - p);
    for (const target of targets) {
      const all = runs.filter((r) => r.arm === arm && r.target === target).sort((p, q) => (p.seed ?? 0) - (q.seed ?? 0));
      const ok = all.filter((r) => r.status === 0);
      const tasks = [...new Set(ok.flatMap((r) => Object.keys(r.zeroShot ?? {})))];
      groups.push({
        arm,
        label: LABELS[arm],
        target,
        seeds: ok.map((r) => r.seed),
        failed: all.filter((r) => r.status !== 0).map((r) => ({ seed: r.seed, status: r.status, error: r.error })),
        params: stats(ok.map((r) => r.params)),
        tokens: stats(ok.map((r) => r.tokens)),
        heldoutPpl: stats(ok.map((r) => r.heldoutPpl)),
        trainerValidPpl: stats(ok.map((r) => r.trainerValidPpl)),
        nextWordAcc: stats(ok.map((r) => r.nextWordAcc)),
        nextWordItems: ok.find((r) => r.nextWordItems)?.nextWordItems,
        zeroShot: Object.fromEntries(tasks.map((t) => [t, stats(ok.map((r) => r.zeroShot?.[t]?.acc))])),
        zeroShotMean: stats(ok.map((r) => r.zeroShotMean)),
        seconds: stats(ok.map((r) => r.seconds)),
        peakRssMiB: stats(ok.map((r) => (r.peakRssKiB ? r.peakRssKiB / 1024 : undefined))),
        shape: ok[0]?.shape,
        shapeSeed: ok[0]?.seed,
        curve: meanCurve(ok.map((r) => r.curve ?? []).filter((c) => c.length)),
      });
    }
  }

  const header = '| arm | target | seeds | params | train tokens | held-out ppl: mean ± sd [min–max] | next-word acc % | zero-shot mean acc % | wall time s | peak RSS MiB | final shape (first seed) |';
  const rows = groups.map((g) => {
    const h = g.heldoutPpl;
    const ppl = !h ? '–' : h.n === 1 ? h.mean.toFixed(3) : `${h.mean.toFixed(3)} ± ${h.sd.toFixed(3)} [${h.min.toFixed(3)}–${h.max.toFixed(3)}]`;
    const params = g.params ? (g.params.min === g.params.max ? g.params.mean.toLocaleString('en') : `${Math.round(g.params.mean).toLocaleString('en')} [${g.params.min.toLocaleString('en')}–${g.params.max.toLocaleString('en')}]`) : '–';
    const seeds = `${g.seeds.map((s) => s ?? '–').join(',')}${g.failed.length ? ` (${g.failed.length} failed)` : ''}`;
    return `| ${g.label} | ${g.arm.startsWith('e') ? '100 %' : `${Math.round(g.target * 100)} %`} | ${seeds} | ${params} | ${g.tokens ? g.tokens.mean.toLocaleString('en') : '–'} | ${ppl} | ${spread(g.nextWordAcc, 1, 100)} | ${spread(g.zeroShotMean, 1, 100)} | ${spread(g.seconds, 0)} | ${spread(g.peakRssMiB, 0)} | ${g.shape ?? '–'} |`;
  });
  const table = [header, '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|', ...rows].join('\n');

  const taskNames = [...new Set(groups.flatMap((g) => Object.keys(g.zeroShot)))];
  const taskTable = taskNames.length
    ? [
        `| arm | target | ${taskNames.map((t) => `${t} acc %`).join(' | ')} |`,
        `|---|---:|${taskNames.map(() => '---:|').join('')}`,
        ...groups.filter((g) => g.seeds.length).map((g) => `| ${g.label} | ${g.arm.startsWith('e') ? '100 %' : `${Math.round(g.target * 100)} %`} | ${taskNames.map((t) => spread(g.zeroShot[t], 1, 100)).join(' | ')} |`),
      ].join('\n')
    : '';
  const failures = runs.filter((r) => r.status !== 0);
  const settings = readJson(join(out, 'settings.json'));
  const split = readJson(join(out, 'data', 'split.json'));
  const md = [
    '# EfficientLLM on a pretrained source (stories260K): results',
    '',
    `Spread over seeds: [min–max]; held-out perplexity also ± sd. Held-out ppl: \`topiary eval --perplexity heldout.txt --seqlen ${settings?.evalSeqlen ?? 64}\` (whole file, non-overlapping windows, no BOS) on ${split ? `${split.heldoutSegments} held-out story segments (${split.heldoutBytes.toLocaleString('en')} bytes)` : 'the held-out split'}. Next-word: ${groups.find((g) => g.nextWordItems)?.nextWordItems ?? '?'} items from the held-out stories, scored as lambada_openai (greedy last word). Zero-shot: first ${[...new Set(runs.map((r) => r.zeroShotLimit).filter(Boolean))].join(' / ') || '?'} items of ${taskNames.join(', ') || '–'}. Wall time and peak RSS: the arm's one command (train, or prune + train for (d)), evaluation not included.`,
    '',
    table,
    '',
    taskTable,
    '',
    'Plots: ppl-vs-tokens.svg (the trainer\'s held-out curve' + (settings?.trainerSupports?.valid === false ? ' — NOTE: this trainer had no `data.valid`, so the curve is on the last 5 % of the training split, not the held-out stories' : ' on the held-out stories') + '), architecture-evolution.svg (arm (a)).',
    failures.length ? `\nFailed runs:\n${failures.map((r) => `- ${r.arm} target ${r.target} seed ${r.seed}: exit ${r.status}: ${(r.error ?? '').split('\n').filter(Boolean).slice(-2).join(' / ')}`).join('\n')}` : '',
    '',
  ].join('\n');

  // ppl vs tokens: one panel per target; e1 (the ceiling) in every panel
  const targets = [...new Set(groups.filter((g) => !g.arm.startsWith('e')).map((g) => g.target))].sort((p, q) => q - p);
  const e1 = groups.find((g) => g.arm === 'e1');
  const W = 640;
  const H = 320;
  const pplPanels = (targets.length ? targets : [1]).map((t, i) => {
    const series = groups
      .filter((g) => (g.target === t || g.arm === 'e1') && g.curve.points.length)
      .map((g) => ({ name: `${g.arm === 'akd' ? 'a+KD' : g.arm}: ${g.label.replace(/^\([^)]*\) /, '')}`, points: g.curve.points, band: g.curve.band, color: PALETTE[ORDER.indexOf(g.arm) % PALETTE.length], dash: g.arm === 'e1' }));
    const title = `held-out perplexity vs training tokens — target ${Math.round(t * 100)} % (mean over seeds, band min–max)`;
    return panel({ title: e1 || targets.length ? title : 'held-out perplexity vs training tokens', series, xLabel: 'training tokens', yLabel: 'held-out perplexity (log)', logY: true, y: i * H, w: W, h: H });
  });
  writeFileSync(join(out, 'ppl-vs-tokens.svg'), svgFile(W, H * pplPanels.length, pplPanels));

  // architecture evolution of arm (a): per target, the first seed
  const archPanels = [];
  const aTargets = [...new Set(runs.filter((r) => r.arm === 'a' && r.architecture?.length).map((r) => r.target))].sort((p, q) => q - p);
  aTargets.forEach((t, row) => {
    const r = runs.filter((x) => x.arm === 'a' && x.target === t && x.architecture?.length).sort((p, q) => p.seed - q.seed)[0];
    const layers = r.architecture[0].layers.length;
    // widths change at prune events and hold in between: drawn as steps
    const steps = (pts) => pts.flatMap((p, i) => (i === 0 ? [p] : [[p[0], pts[i - 1][1]], p]));
    const perLayer = (key) => Array.from({ length: layers }, (_, l) => ({ name: `layer ${l}`, points: steps(r.architecture.map((s) => [s.tokens, s.layers[l][key]])) }));
    const what = `arm (a), target ${Math.round(t * 100)} %, seed ${r.seed}`;
    const cells = [
      { title: `query heads per layer — ${what}`, series: perLayer('heads'), yLabel: 'heads' },
      { title: `KV groups per layer — ${what}`, series: perLayer('kvHeads'), yLabel: 'KV groups' },
      { title: `FFN width per layer — ${what}`, series: perLayer('ffn'), yLabel: 'FFN channels' },
      { title: `hidden size — ${what}`, series: [{ name: 'hidden', points: steps(r.architecture.map((s) => [s.tokens, s.hidden])) }], yLabel: 'hidden channels' },
    ];
    cells.forEach((c, k) => archPanels.push(panel({ ...c, xLabel: 'training tokens', x: (k % 2) * W, y: (row * 2 + Math.floor(k / 2)) * H, w: W, h: H })));
  });
  writeFileSync(join(out, 'architecture-evolution.svg'), svgFile(2 * W, Math.max(1, aTargets.length * 2) * H, archPanels.length ? archPanels : [panel({ title: 'architecture evolution of arm (a): no data', series: [], xLabel: '', yLabel: '' })]));

  writeFileSync(join(out, 'results.md'), md);
  writeFileSync(join(out, 'results.json'), `${JSON.stringify({ settings, split, groups, runs }, null, 2)}\n`);
  return { table, groups, runs };
}
