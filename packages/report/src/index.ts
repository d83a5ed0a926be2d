export { groupScoresOf, renderReport, REPORT_CSS, sparsityBars, stageTick, widthBars, writeReport, type RenderOptions } from './report.js';
export { readMetrics, readResults } from './results.js';
export { recipeNameFromText, recipeNameOf } from './recipe-name.js';
export type { ArchitectureSnapshot, EvalSummary, LayerWidths, RunResults, StageResult } from './results.js';
export { barChart, histogram, linePlot, niceTicks, escapeXml, stageChart, type BarGroup, type Series, type StageCategory } from './svg.js';
