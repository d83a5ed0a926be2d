/** Evaluation reports: the JSON shape the CLI prints, Markdown tables, and side-by-side comparisons. */
import type { PerplexityReport } from './perplexity.js';
import type { TaskReport } from './mc.js';

export interface EvalReport {
  /** A label for the model (its path, or a name given by the caller). */
  model?: string;
  perplexity: Record<string, PerplexityReport>;
  tasks: Record<string, TaskReport>;
}

export interface JsonPerplexity {
  ppl: number;
  tokens: number;
  nll: number;
  seqlen: number;
  stride: number;
  mode: string;
  /** Whether one BOS was put in front of the text. */
  bos: boolean;
  windows: number;
  /** lm-eval's word_perplexity, byte_perplexity, bits_per_byte of the file (see perplexity.ts). */
  word_perplexity?: number;
  byte_perplexity?: number;
  bits_per_byte?: number;
}

export interface JsonTask {
  acc: number;
  acc_norm: number;
  acc_stderr: number | null;
  acc_norm_stderr: number | null;
  n: number;
  /** loglikelihood tasks (lambada_openai): exp(−mean loglik) of the targets. */
  perplexity?: number;
  /** With `predictions: true`: per item the predicted choice, the gold one and every choice's log-likelihood. */
  predictions?: number[];
  labels?: number[];
  logliks?: number[][];
}

export interface EvalJson {
  model?: string;
  perplexity: Record<string, JsonPerplexity>;
  tasks: Record<string, JsonTask>;
}

const finiteOrNull = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** `{"perplexity": {"<file>": {ppl, tokens, …}}, "tasks": {"<name>": {acc, acc_norm, n, …}}}`. */
export function reportToJson(report: EvalReport, options: { predictions?: boolean } = {}): EvalJson {
  const perplexity: Record<string, JsonPerplexity> = {};
  for (const [file, p] of Object.entries(report.perplexity)) {
    perplexity[file] = {
      ppl: p.ppl, tokens: p.tokens, nll: p.nll, seqlen: p.seqLen, stride: p.stride, mode: p.mode, bos: p.bos, windows: p.windows,
      ...(p.wordPerplexity !== undefined ? { word_perplexity: p.wordPerplexity, byte_perplexity: p.bytePerplexity!, bits_per_byte: p.bitsPerByte! } : {}),
    };
  }
  const tasks: Record<string, JsonTask> = {};
  for (const [name, t] of Object.entries(report.tasks)) {
    tasks[name] = {
      acc: t.acc,
      acc_norm: t.accNorm,
      acc_stderr: finiteOrNull(t.accStderr),
      acc_norm_stderr: finiteOrNull(t.accNormStderr),
      n: t.n,
      ...(t.perplexity !== undefined ? { perplexity: t.perplexity } : {}),
      ...(options.predictions ? { predictions: t.predictions, labels: t.items.map((i) => i.label), logliks: t.items.map((i) => i.logLiks) } : {}),
    };
  }
  return { ...(report.model !== undefined ? { model: report.model } : {}), perplexity, tasks };
}

const pct = (x: number) => (Number.isFinite(x) ? (100 * x).toFixed(2) : '–');
const pm = (x: number, se: number) => (Number.isFinite(se) ? `${pct(x)} ± ${pct(se)}` : pct(x));

/** One model's results as Markdown tables (perplexity, then tasks). */
export function reportToMarkdown(report: EvalReport): string {
  const lines: string[] = [];
  if (report.model) lines.push(`### ${report.model}`, '');
  const ppl = Object.entries(report.perplexity);
  if (ppl.length > 0) {
    lines.push('| text | ppl | NLL (nats) | tokens scored | windows (L / S) |', '| --- | ---: | ---: | ---: | --- |');
    for (const [file, p] of ppl) lines.push(`| ${file} | ${p.ppl.toFixed(3)} | ${p.nll.toFixed(4)} | ${p.tokens} | ${p.windows} (${p.seqLen} / ${p.stride}) |`);
    lines.push('');
  }
  const tasks = Object.entries(report.tasks);
  if (tasks.length > 0) {
    // a metric a task does not report (acc_norm of winogrande, perplexity of piqa) is a dash, not a repeated number
    const has = (t: (typeof tasks)[number][1], metric: string) => t.metrics === undefined || t.metrics.includes(metric as never);
    const withPpl = tasks.some(([, t]) => t.metrics?.includes('perplexity' as never));
    lines.push(`| task | n | acc % | acc_norm % |${withPpl ? ' perplexity |' : ''}`, `| --- | ---: | ---: | ---: |${withPpl ? ' ---: |' : ''}`);
    for (const [name, t] of tasks) {
      const ppl = withPpl ? ` ${has(t, 'perplexity') && t.perplexity !== undefined ? t.perplexity.toFixed(3) : '–'} |` : '';
      lines.push(`| ${name} | ${t.n} | ${pm(t.acc, t.accStderr)} | ${has(t, 'acc_norm') ? pm(t.accNorm, t.accNormStderr) : '–'} |${ppl}`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

/**
 * Several models side by side (e.g. dense vs pruned): one row per metric, one column per model; the last column is
 * the change of the last model against the first.
 */
export function compareMarkdown(reports: readonly EvalReport[]): string {
  const names = reports.map((r, i) => r.model ?? `model ${i + 1}`);
  const files = [...new Set(reports.flatMap((r) => Object.keys(r.perplexity)))];
  const tasks = [...new Set(reports.flatMap((r) => Object.keys(r.tasks)))];
  const delta = reports.length >= 2;
  const header = `| metric | ${names.join(' | ')} |${delta ? ' Δ (last − first) |' : ''}`;
  const rule = `| --- | ${names.map(() => '---:').join(' | ')} |${delta ? ' ---: |' : ''}`;
  const row = (label: string, values: (number | undefined)[], fmt: (x: number) => string) => {
    const cells = values.map((v) => (v === undefined ? '–' : fmt(v)));
    const first = values[0];
    const last = values[values.length - 1];
    const d = delta ? ` ${first !== undefined && last !== undefined ? `${last - first >= 0 ? '+' : ''}${fmt(last - first)}` : '–'} |` : '';
    return `| ${label} | ${cells.join(' | ')} |${d}`;
  };
  const lines = [header, rule];
  for (const f of files) lines.push(row(`ppl ${f}`, reports.map((r) => r.perplexity[f]?.ppl), (x) => x.toFixed(3)));
  for (const t of tasks) {
    lines.push(row(`${t} acc %`, reports.map((r) => r.tasks[t]?.acc), pct));
    const reportsNorm = reports.some((r) => r.tasks[t] && (r.tasks[t]!.metrics === undefined || r.tasks[t]!.metrics!.includes('acc_norm' as never)));
    if (reportsNorm) lines.push(row(`${t} acc_norm %`, reports.map((r) => r.tasks[t]?.accNorm), pct));
  }
  return `${lines.join('\n')}\n`;
}
