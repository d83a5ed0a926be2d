/**
 * Rendering a run's events on stderr. Three renderers, one filter:
 *   - `renderTty`: progress bars redrawn in place (cut to the terminal's width, read at every draw), logs above them;
 *   - `renderText`: plain lines for people when stderr is not a terminal (a log file, a CI job, a pipe);
 *   - `renderJsonLines`: one JSON object per event, for machines (`--json` or `--log-format json`).
 * Only the CLI draws; everything else just emits on the run's EventBus.
 */
import type { EventBus, TopiaryEvent } from '@topiary/kernel';

export interface WritableLike {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** How stderr events are written: `text` (bars on a terminal, plain lines otherwise) or `json` (JSON lines). */
export type LogFormat = 'text' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

export interface RendererOptions {
  /** Show debug logs. */
  debug?: boolean;
  /** `-q`: no progress, no info logs, no metrics (warnings and errors still print). */
  quiet?: boolean;
  /** Show progress events (default: yes unless quiet). */
  progress?: boolean;
  /** Show info logs (default: yes unless quiet). */
  info?: boolean;
  /** Honour NO_COLOR; defaults to the environment. */
  color?: boolean;
  /** Plain text lines: the least time between two progress lines of one task (ms; default 2000). */
  progressEveryMs?: number;
  /** The clock (ms), for tests. */
  now?: () => number;
}

/**
 * Whether an event is shown under `options`. Checkpoints are kept by `-q` in JSON lines (a machine resuming a run
 * needs them) but dropped in the human renderers (`human`).
 */
export function shown(event: TopiaryEvent, options: RendererOptions, human: boolean): boolean {
  switch (event.type) {
    case 'log':
      if (event.level === 'debug') return options.debug === true;
      if (event.level === 'info') return !options.quiet && options.info !== false;
      return true;
    case 'progress':
      return !options.quiet && options.progress !== false;
    case 'metric':
      return !options.quiet;
    case 'checkpoint':
      return !(human && options.quiet);
    default:
      return true;
  }
}

/** JSON lines: one object per event, for machines. Returns the unsubscribe function. */
export function renderJsonLines(bus: EventBus, out: WritableLike, options: RendererOptions = {}): () => void {
  return bus.onAny((event) => {
    if (!shown(event, options, false)) return;
    out.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
  });
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(r).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 1e-3 && Math.abs(value) < 1e6 ? String(Number(value.toPrecision(6))) : value.toExponential(4);
}

/** One log line for people: `warning: …`, `error: …`, `debug: …` or the message itself. */
function logLine(event: Extract<TopiaryEvent, { type: 'log' }>, paint: { yellow: (s: string) => string; red: (s: string) => string; dim: (s: string) => string }): string {
  const prefix = event.level === 'warn' ? paint.yellow('warning: ') : event.level === 'error' ? paint.red('error: ') : event.level === 'debug' ? paint.dim('debug: ') : '';
  return `${prefix}${event.message}`;
}

function metricLine(event: Extract<TopiaryEvent, { type: 'metric' }>): string {
  const step = event.step !== undefined ? ` (step ${event.step})` : '';
  const tags = Object.entries(event.tags ?? {})
    .map(([k, v]) => `${k}=${typeof v === 'number' ? formatNumber(v) : v}`)
    .join(' ');
  return `${event.name} = ${formatNumber(event.value)}${step}${tags ? ` ${tags}` : ''}`;
}

const plain = { yellow: (s: string) => s, red: (s: string) => s, dim: (s: string) => s };

/**
 * Plain text lines for people when stderr is not a terminal: logs as they come, a progress line per task when it
 * starts, at most every `progressEveryMs` after that, and when it ends; metrics and checkpoints one line each.
 */
export function renderText(bus: EventBus, out: WritableLike, options: RendererOptions = {}): () => void {
  const every = options.progressEveryMs ?? 2000;
  const now = options.now ?? Date.now;
  const lastLine = new Map<string, number>();
  return bus.onAny((event) => {
    if (!shown(event, options, true)) return;
    switch (event.type) {
      case 'log':
        out.write(`${logLine(event, plain)}\n`);
        return;
      case 'progress': {
        const t = now();
        const done = event.total > 0 && event.current >= event.total;
        const last = lastLine.get(event.task);
        if (!done && last !== undefined && t - last < every) return;
        if (done) lastLine.delete(event.task);
        else lastLine.set(event.task, t);
        const pct = event.total > 0 ? ` (${Math.floor((100 * Math.min(event.current, event.total)) / event.total)}%)` : '';
        out.write(`${event.task} ${event.current}/${event.total}${event.unit ? ` ${event.unit}` : ''}${pct}${event.info ? ` ${event.info}` : ''}\n`);
        return;
      }
      case 'metric':
        out.write(`${metricLine(event)}\n`);
        return;
      case 'checkpoint':
        out.write(`checkpoint step ${event.step} → ${event.path}\n`);
        return;
    }
  });
}

// --- terminal width --------------------------------------------------------------------------------------------

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]/y;

/** Columns a code point takes on a terminal: 0 for combining marks, 2 for East Asian wide and emoji, else 1. */
function cellWidth(cp: number): number {
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return 0;
  if ((cp >= 0x300 && cp <= 0x36f) || (cp >= 0x200b && cp <= 0x200f) || (cp >= 0xfe00 && cp <= 0xfe0f)) return 0;
  if (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1faff) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  ) {
    return 2;
  }
  return 1;
}

/** The columns a string takes on a terminal (ANSI escapes take none). */
export function visibleWidth(s: string): number {
  let width = 0;
  for (let i = 0; i < s.length; ) {
    ANSI.lastIndex = i;
    const esc = ANSI.exec(s);
    if (esc) {
      i += esc[0].length;
      continue;
    }
    const cp = s.codePointAt(i)!;
    width += cellWidth(cp);
    i += cp > 0xffff ? 2 : 1;
  }
  return width;
}

/** `s` cut to at most `max` columns, ending in `…` when cut; escapes are kept (and a colour reset added if cut). */
export function fitWidth(s: string, max: number): string {
  if (visibleWidth(s) <= max) return s;
  if (max <= 0) return '';
  let out = '';
  let width = 0;
  let escaped = false;
  for (let i = 0; i < s.length; ) {
    ANSI.lastIndex = i;
    const esc = ANSI.exec(s);
    if (esc) {
      out += esc[0];
      escaped = true;
      i += esc[0].length;
      continue;
    }
    const cp = s.codePointAt(i)!;
    const w = cellWidth(cp);
    if (width + w > max - 1) break;
    out += String.fromCodePoint(cp);
    width += w;
    i += cp > 0xffff ? 2 : 1;
  }
  return `${out}…${escaped ? '\x1b[0m' : ''}`;
}

/** Progress bars on a TTY (one line per task, redrawn in place, never wider than the terminal), logs above them. */
export function renderTty(bus: EventBus, out: WritableLike, options: RendererOptions = {}): () => void {
  const color = options.color ?? (process.env.NO_COLOR === undefined || process.env.NO_COLOR === '');
  const now = options.now ?? Date.now;
  const dim = (s: string) => (color ? `\x1b[2m${s}\x1b[0m` : s);
  const yellow = (s: string) => (color ? `\x1b[33m${s}\x1b[0m` : s);
  const red = (s: string) => (color ? `\x1b[31m${s}\x1b[0m` : s);
  const started = new Map<string, number>();
  let barShown = false;
  let lastDraw = 0;

  const clearBar = () => {
    if (barShown) out.write('\r\x1b[2K');
    barShown = false;
  };

  return bus.onAny((event) => {
    if (!shown(event, options, true)) return;
    if (event.type === 'progress') {
      const t = now();
      if (!started.has(event.task) || event.current === 0) started.set(event.task, t);
      const done = event.total > 0 && event.current >= event.total;
      if (!done && t - lastDraw < 80) return; // redraw at most ~12 times a second
      lastDraw = t;
      // the width is read at every draw, so a resized terminal gets lines that fit; one column is left free so the
      // cursor never reaches the last column (where some terminals wrap)
      const columns = out.columns !== undefined && out.columns > 0 ? out.columns : 80;
      const max = Math.max(1, columns - 1);
      const elapsed = (t - (started.get(event.task) ?? t)) / 1000;
      const rate = elapsed > 0 ? event.current / elapsed : 0;
      const eta = rate > 0 ? (event.total - event.current) / rate : Number.NaN;
      const task = fitWidth(event.task, Math.max(8, Math.floor(max / 3)));
      const counts = `${event.current}/${event.total}${event.unit ? ` ${event.unit}` : ''}`;
      const times = `${formatDuration(elapsed)}<${formatDuration(eta)}`;
      // the bar takes what is left after the task, the counts, the times and the info, 10 to 30 cells; when the
      // info does not fit beside a 10-cell bar it is cut (and the bar is dropped only when even it does not fit)
      const fixed = visibleWidth(task) + 3 + 1 + visibleWidth(counts) + 1 + times.length;
      const room = max - fixed;
      const width = room < 10 ? 0 : Math.max(10, Math.min(30, room - (event.info ? visibleWidth(event.info) + 1 : 0)));
      const frac = event.total > 0 ? Math.min(1, event.current / event.total) : 0;
      const filled = Math.round(frac * Math.max(0, width));
      const bar = width > 0 ? ` [${'█'.repeat(filled)}${'░'.repeat(width - filled)}]` : '';
      const line = `${task}${bar} ${counts} ${dim(times)}${event.info ? ` ${event.info}` : ''}`;
      out.write(`\r\x1b[2K${fitWidth(line, max)}`);
      barShown = true;
      if (done) {
        out.write('\n');
        barShown = false;
        started.delete(event.task);
      }
      return;
    }
    if (event.type === 'log') {
      clearBar();
      out.write(`${logLine(event, { yellow, red, dim })}\n`);
      return;
    }
    if (event.type === 'checkpoint') {
      clearBar();
      out.write(dim(`checkpoint step ${event.step} → ${event.path}\n`));
    }
    // metrics are recorded by the run folder (metrics.jsonl), not printed between the bars
  });
}

/** Bars on a terminal, plain text lines otherwise (JSON lines are asked for: `--json`, `--log-format json`). */
export function renderAuto(bus: EventBus, out: WritableLike, options: RendererOptions = {}): () => void {
  return out.isTTY ? renderTty(bus, out, options) : renderText(bus, out, options);
}
