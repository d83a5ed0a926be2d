export { renderReport, writeReport } from './report.js';
export { readMetrics, readResults } from './results.js';
export type { ArchitectureSnapshot, EvalSummary, LayerWidths, RunResults, StageResult } from './results.js';
export { barChart, histogram, linePlot, niceTicks, escapeXml, type BarGroup, type Series } from './svg.js';
