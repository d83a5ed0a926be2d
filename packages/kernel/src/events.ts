/**
 * Events for progress, metrics, checkpoints and logs. Work emits; apps choose how to render (the CLI draws bars on
 * a TTY, JSON lines otherwise). The bus is per run (no global state).
 */

export interface ProgressEvent {
  type: 'progress';
  /** A stable name for the piece of work, e.g. `prune:wanda`, `eval:perplexity`. */
  task: string;
  current: number;
  total: number;
  unit?: string;
  /** Free-form status shown after the bar (e.g. `loss 2.31`). */
  info?: string;
}

export interface MetricEvent {
  type: 'metric';
  name: string;
  value: number;
  step?: number;
  tags?: Record<string, string | number>;
}

export interface CheckpointEvent {
  type: 'checkpoint';
  path: string;
  step: number;
}

export interface LogEvent {
  type: 'log';
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
}

export type TopiaryEvent = ProgressEvent | MetricEvent | CheckpointEvent | LogEvent;
export type EventType = TopiaryEvent['type'];
export type EventOf<T extends EventType> = Extract<TopiaryEvent, { type: T }>;
type Handler<T extends EventType> = (event: EventOf<T>) => void;
type AnyHandler = (event: TopiaryEvent) => void;

export class EventBus {
  private readonly handlers = new Map<EventType, Set<AnyHandler>>();
  private readonly all = new Set<AnyHandler>();

  on<T extends EventType>(type: T, handler: Handler<T>): () => void {
    const set = this.handlers.get(type) ?? new Set<AnyHandler>();
    set.add(handler as AnyHandler);
    this.handlers.set(type, set);
    return () => set.delete(handler as AnyHandler);
  }

  onAny(handler: AnyHandler): () => void {
    this.all.add(handler);
    return () => this.all.delete(handler);
  }

  emit(event: TopiaryEvent): void {
    for (const h of this.handlers.get(event.type) ?? []) h(event);
    for (const h of this.all) h(event);
  }

  progress(task: string, current: number, total: number, info?: string, unit?: string): void {
    this.emit({ type: 'progress', task, current, total, info, unit });
  }

  metric(name: string, value: number, step?: number, tags?: Record<string, string | number>): void {
    this.emit({ type: 'metric', name, value, step, tags });
  }

  log(level: LogEvent['level'], message: string): void {
    this.emit({ type: 'log', level, message });
  }
}

