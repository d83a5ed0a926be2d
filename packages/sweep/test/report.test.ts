/**
 * The numbers a sweep keeps of a run (`metricsOf`), the frontier (lines per method, positions along the size axes,
 * seed spread as bands) and the report that draws it — on hand-made results, so every number is known.
 */
import { describe, expect, it } from 'vitest';
import type { RunResults } from '@topiary/report';
import { frontier, isSeedAxis, metricsOf, renderSweepReport, type SweepFile, type SweepPointRecord } from '../src/index.js';

const file = '/data/valid.txt';

describe('what a sweep keeps of a run', () => {
  it('reads method, sparsity, parameters, the last and the input perplexity, accuracy and time', () => {
    const results: RunResults = {
      started: '2026-12-01T00:00:00Z',
      status: 'completed',
      stages: [
        { index: 0, kind: 'eval', name: 'eval', seconds: 1, eval: { perplexity: { [file]: { ppl: 4, tokens: 100 } }, tasks: {} } },
        { index: 1, kind: 'prune', name: 'depth', seconds: 2, parametersBefore: 1000, parametersAfter: 800 },
        { index: 2, kind: 'prune', name: 'wanda', seconds: 3, parametersBefore: 800, parametersAfter: 400, sparsity: 0.5 },
        { index: 3, kind: 'eval', name: 'eval', seconds: 1.5, eval: { perplexity: { [file]: { ppl: 17, tokens: 100 } }, tasks: { piqa: { acc: 0.6, acc_norm: 0.5, n: 10 } } } },
      ],
    };
    expect(metricsOf(results)).toEqual({ method: 'depth+wanda', sparsity: 0.5, parameters: 400, parametersBefore: 1000, perplexity: { [file]: 17 }, baseline: { [file]: 4 }, accuracy: { piqa: 0.6 }, seconds: 7.5 });
    // no eval before the first change: no input perplexity; no prune: method none
    const noPrune = metricsOf({ started: '', status: 'completed', stages: [results.stages[3]!] });
    expect(noPrune.method).toBe('none');
    expect(noPrune.baseline).toBeUndefined();
  });
});

/** A completed run of `method` at `sparsity` with calibration `seed` measuring `ppl`. */
function point(method: string, sparsity: number, seed: number, ppl: number): SweepPointRecord {
  return {
    id: `${method}-${sparsity}-${seed}`,
    values: { 'stages[1].prune.method': method, sparsity, 'data.calibration.seed': seed },
    runDir: `/sweep/runs/${method}-${sparsity}-${seed}`,
    status: 'completed',
    metrics: { method, sparsity: sparsity + 0.001 * seed, parameters: Math.round(1000 * (1 - sparsity)), parametersBefore: 1000, perplexity: { [file]: ppl }, baseline: { [file]: 4 }, accuracy: {}, seconds: 1 },
  };
}

const axes = [
  { name: 'stages[1].prune.method', path: 'stages[1].prune.method', label: 'method', values: ['magnitude', 'wanda'] },
  { name: 'sparsity', path: 'stages[1].prune.sparsity', label: 'sparsity', values: [0.3, 0.5] },
  { name: 'data.calibration.seed', path: 'data.calibration.seed', label: 'seed', values: [0, 1] },
];

const sweep: SweepFile = {
  name: 'frontier test',
  grid: '/grids/g.yaml',
  dir: '/sweep',
  id: 'sweep-1234',
  updated: '2026-12-01T00:00:00Z',
  axes,
  counts: { completed: 8, failed: 1 },
  points: [
    point('magnitude', 0.3, 0, 6),
    point('magnitude', 0.3, 1, 6),
    point('magnitude', 0.5, 0, 100),
    point('magnitude', 0.5, 1, 100),
    point('wanda', 0.3, 0, 5),
    point('wanda', 0.3, 1, 5.4),
    point('wanda', 0.5, 0, 15),
    point('wanda', 0.5, 1, 19),
    { id: 'broken', values: {}, runDir: '/sweep/runs/broken', status: 'failed', error: 'E_IO: disk full' },
  ],
};

describe('the frontier', () => {
  it('is one line per method along sparsity, each position the mean over seeds with their spread', () => {
    expect(axes.map(isSeedAxis)).toEqual([false, false, true]);
    const lines = frontier(sweep, 'sparsity', file);
    expect(lines.map((l) => l.name)).toEqual(['magnitude', 'wanda']);
    const wanda = lines[1]!.positions;
    expect(wanda.map((p) => [p.x, p.y, p.low, p.high, p.runs])).toEqual([
      [0.3005, 5.2, 5, 5.4, 2],
      [0.5005, 17, 15, 19, 2],
    ]);
    const byParameters = frontier(sweep, 'parameters', file);
    expect(byParameters[0]!.positions.map((p) => p.x)).toEqual([500, 700]);
  });

  it('tells lines apart by an axis that does not move the size (a pattern, a calibration size)', () => {
    const samples = { name: 'data.calibration.samples', path: 'data.calibration.samples', label: 'samples', values: [8, 64] };
    const points = [8, 64].flatMap((n) =>
      [0.3, 0.5].map((s) => {
        const p = point('wanda', s, 0, n === 8 ? 20 * s : 10 * s);
        // more calibration moves the measured sparsity a little (a fraction of a percent): still another line
        const metrics = { ...p.metrics!, sparsity: p.metrics!.sparsity! + (n === 64 ? 0.004 : 0) };
        return { ...p, id: `${p.id}-${n}`, values: { ...p.values, 'data.calibration.samples': n }, metrics };
      }),
    );
    const lines = frontier({ axes: [...axes, samples], points }, 'sparsity', file);
    expect(lines.map((l) => l.name)).toEqual(['wanda · samples=64', 'wanda · samples=8']);
    expect(lines[1]!.positions.map((p) => p.y)).toEqual([6, 10]);
  });

  it('is drawn with bands, the input model, a table linking each run report, and the failures', () => {
    const html = renderSweepReport(sweep);
    expect(html).toContain('<title>frontier test — Topiary sweep</title>');
    expect(html.match(/<svg class="plot line-plot"/g)).toHaveLength(2); // vs sparsity, vs parameters
    expect(html).toContain('Perplexity (valid.txt) vs sparsity');
    // wanda's seeds differ (a band); magnitude's do not (no band drawn for a zero spread is still a band of width 0)
    expect((html.match(/<path class="band"/g) ?? []).length).toBeGreaterThanOrEqual(2);
    expect(html).toContain('>input model<');
    // perplexity from 4 to 100: the y axis is log10
    expect(html).toContain('log10 perplexity');
    expect(html).toContain('<a href="runs/wanda-0.5-1/report.html">wanda-0.5-1</a>');
    expect(html).toContain('broken: E_IO: disk full');
    expect(html).not.toContain('undefined');
    expect(html).toContain('the band is the spread (min–max) over data.calibration.seed');
    expect(html).not.toContain('<script');
  });
});
