/** Sparsity measured from the weights themselves (zeros), per layer and overall, and the table people read. */
import type { CausalLM, LayerReport, LinearLayer, PruneReport } from '@topiary/kernel';

export function countZeros(w: Float32Array): number {
  let z = 0;
  for (let i = 0; i < w.length; i++) if (w[i] === 0) z++;
  return z;
}

export function layerReports(model: CausalLM, linears: readonly LinearLayer[]): LayerReport[] {
  return linears.map((l) => layerReport(l, model.readWeight(l.param)));
}

/** One layer's report from its weight (and, when given, its keep mask: an element is pruned if either says so). */
export function layerReport(l: LinearLayer, w: Float32Array, keep?: Uint8Array): LayerReport {
  let zeros = 0;
  for (let i = 0; i < w.length; i++) if (w[i] === 0 || (keep !== undefined && keep[i] === 0)) zeros++;
  return { param: l.param, layer: l.layer, sparsity: zeros / w.length, kept: w.length - zeros, total: w.length };
}

/** Fraction of zeros over all the given layers together. */
export function overallSparsity(layers: readonly LayerReport[]): number {
  const total = layers.reduce((a, l) => a + l.total, 0);
  return total === 0 ? 0 : layers.reduce((a, l) => a + (l.total - l.kept), 0) / total;
}

/** A fixed-width per-layer table: param, shape-free counts and the sparsity in percent. */
export function sparsityTable(report: PruneReport): string {
  const width = Math.max(5, ...report.layers.map((l) => l.param.length));
  const lines = [`${'layer'.padEnd(width)}  ${'kept'.padStart(8)}  ${'total'.padStart(8)}  sparsity`];
  for (const l of report.layers) {
    lines.push(`${l.param.padEnd(width)}  ${String(l.kept).padStart(8)}  ${String(l.total).padStart(8)}  ${(100 * l.sparsity).toFixed(2).padStart(7)}%`);
  }
  lines.push(`${'all pruned layers'.padEnd(width)}  ${''.padStart(8)}  ${''.padStart(8)}  ${(100 * (report.sparsity ?? 0)).toFixed(2).padStart(7)}%`);
  return lines.join('\n');
}
