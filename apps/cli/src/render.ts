/**
 * Rendering a run's events on a terminal: progress bars and colours on a TTY, JSON lines otherwise. Only the CLI
 * draws; everything else just emits on the run's EventBus.
 */
import type { EventBus } from '@topiary/kernel';

export interface WritableLike {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface RendererOptions {
  /** Show debug logs. */
  debug?: boolean;
  /** Suppress progress and info logs (warnings and errors still print). */
  quiet?: boolean;
  /** Honour NO_COLOR; defaults to the environment. */
  color?: boolean;
}

/** JSON lines: one object per event, for machines and non-TTY outputs. Returns the unsubscribe function. */
export function renderJsonLines(bus: EventBus, out: WritableLike, options: RendererOptions = {}): () => void {
  return bus.onAny((event) => {
    if (event.type === 'log' && event.level === 'debug' && !options.debug) return;
    if (options.quiet && (event.type === 'progress' || (event.type === 'log' && event.level === 'info'))) return;
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

/** Progress bars on a TTY (one line per task, redrawn in place), logs above them. */
export function renderTty(bus: EventBus, out: WritableLike, options: RendererOptions = {}): () => void {
  const color = options.color ?? (process.env.NO_COLOR === undefined || process.env.NO_COLOR === '');
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
    if (event.type === 'progress') {
      if (options.quiet) return;
      const now = Date.now();
      if (!started.has(event.task) || event.current === 0) started.set(event.task, now);
      const done = event.total > 0 && event.current >= event.total;
      if (!done && now - lastDraw < 80) return; // redraw at most ~12 times a second
      lastDraw = now;
      const width = Math.max(10, Math.min(30, (out.columns ?? 80) - 60));
      const frac = event.total > 0 ? Math.min(1, event.current / event.total) : 0;
      const filled = Math.round(frac * width);
      const elapsed = (now - (started.get(event.task) ?? now)) / 1000;
      const rate = elapsed > 0 ? event.current / elapsed : 0;
      const eta = rate > 0 ? (event.total - event.current) / rate : Number.NaN;
      const unit = event.unit ? ` ${event.unit}` : '';
      const line =
        `${event.task} [${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${event.current}/${event.total}${unit}` +
        ` ${dim(`${formatDuration(elapsed)}<${formatDuration(eta)}`)}${event.info ? ` ${event.info}` : ''}`;
      out.write(`\r\x1b[2K${line}`);
      barShown = true;
      if (done) {
        out.write('\n');
        barShown = false;
        started.delete(event.task);
      }
      return;
    }
    if (event.type === 'log') {
      if (event.level === 'debug' && !options.debug) return;
      if (event.level === 'info' && options.quiet) return;
      clearBar();
      const prefix = event.level === 'warn' ? yellow('warning: ') : event.level === 'error' ? red('error: ') : '';
      out.write(`${prefix}${event.message}\n`);
      return;
    }
    if (event.type === 'checkpoint') {
      if (options.quiet) return;
      clearBar();
      out.write(dim(`checkpoint step ${event.step} → ${event.path}\n`));
    }
    // metrics are recorded by the run folder (metrics.jsonl), not printed on a TTY
  });
}

/** Pick the renderer the CLI contract asks for: bars only on a TTY, JSON lines otherwise. */
export function renderAuto(bus: EventBus, out: WritableLike, options: RendererOptions = {}): () => void {
  return out.isTTY ? renderTty(bus, out, options) : renderJsonLines(bus, out, options);
}
