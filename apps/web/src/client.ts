/**
 * The page's side of the worker: requests with progress and streamed tokens, and cancel — which terminates the
 * worker (a prune in the middle of a block cannot be interrupted any other way) and starts a fresh one, reopening
 * the model that was open.
 */
import type { Answer, Failure, Message, PickedFile, Request } from './protocol.js';

type Without<T, K extends keyof T> = T extends unknown ? Omit<T, K> : never;
export type Ask = Without<Request, 'id'>;

export interface Listeners {
  progress?(task: string, current: number, total: number, info?: string): void;
  token?(text: string): void;
}

/** A failure as an Error, keeping the file and the hint for the page. */
export class WorkerFailure extends Error {
  constructor(readonly failure: Failure) {
    super(failure.message);
  }
}

export class Cancelled extends Error {
  constructor() {
    super('cancelled');
  }
}

interface Pending {
  resolve(answer: Answer): void;
  reject(error: Error): void;
  listeners: Listeners;
}

export class WorkerClient {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private opened: { files: PickedFile[]; label: string; memoryLimitBytes?: number } | undefined;
  private threads: number | undefined;

  constructor(private readonly onLog: (level: string, message: string) => void = () => {}) {}

  private start(): Worker {
    const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'topiary-compute' });
    worker.onmessage = (event: MessageEvent<Message>) => this.receive(event.data);
    worker.onerror = (event: ErrorEvent) => {
      const failure: Failure = { code: 'E_INTERNAL', message: `the worker failed: ${event.message}` };
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.reject(new WorkerFailure(failure));
      }
    };
    this.worker = worker;
    return worker;
  }

  private receive(message: Message): void {
    if (message.type === 'log') return this.onLog(message.level, message.message);
    const p = this.pending.get(message.id);
    if (!p) return;
    if (message.type === 'progress') p.listeners.progress?.(message.task, message.current, message.total, message.info);
    else if (message.type === 'token') p.listeners.token?.(message.text);
    else {
      this.pending.delete(message.id);
      if (message.type === 'done') p.resolve(message.answer);
      else p.reject(new WorkerFailure(message.failure));
    }
  }

  request<K extends Answer['kind']>(ask: Ask & { kind: K }, listeners: Listeners = {}): Promise<Extract<Answer, { kind: K }>> {
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    const asked = ask as Ask;
    if (asked.kind === 'init') this.threads = asked.threads;
    return new Promise<Extract<Answer, { kind: K }>>((resolve, reject) => {
      this.pending.set(id, { resolve: (a) => resolve(a as Extract<Answer, { kind: K }>), reject, listeners });
      // the picked files are copied (not transferred): the page keeps them to reopen after a cancel
      worker.postMessage({ ...ask, id } as Request);
    }).then((answer) => {
      if (asked.kind === 'open') this.opened = { files: asked.files, label: asked.label, ...(asked.memoryLimitBytes !== undefined ? { memoryLimitBytes: asked.memoryLimitBytes } : {}) };
      return answer;
    });
  }

  /** Stop whatever runs: a fresh worker, the backend started again, the open model reopened (its pruned copy is gone). */
  async cancel(): Promise<void> {
    this.worker?.terminate();
    this.worker = undefined;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new Cancelled());
    }
    await this.request({ kind: 'init', ...(this.threads !== undefined ? { threads: this.threads } : {}) });
    if (this.opened) await this.request({ kind: 'open', ...this.opened });
  }
}
