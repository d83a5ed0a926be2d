/**
 * The page's compute worker: every model operation runs here, never on the page's thread, so the page stays
 * responsive and a cancel is always possible (the page terminates this worker and starts a fresh one).
 */
import './platform/globals.js';
import { TopiaryError } from '@topiary/kernel';
import { Engine } from './engine.js';
import type { Answer, Failure, Message, Request } from './protocol.js';

interface WorkerScope {
  postMessage(message: Message, transfer?: ArrayBuffer[]): void;
  onmessage: ((event: { data: Request }) => void) | null;
}
const scope = globalThis as unknown as WorkerScope;

let current = -1;
const engine = new Engine({
  progress: (task, done, total, info) => scope.postMessage({ id: current, type: 'progress', task, current: done, total, ...(info ? { info } : {}) }),
  token: (text) => scope.postMessage({ id: current, type: 'token', text }),
  log: (level, message) => scope.postMessage({ id: -1, type: 'log', level, message }),
});

async function answer(request: Request): Promise<Answer> {
  switch (request.kind) {
    case 'init':
      return { kind: 'init', info: await engine.init(request.threads) };
    case 'open':
      return { kind: 'open', summary: await engine.open(request.files, request.label, request.memoryLimitBytes) };
    case 'generate':
      return { kind: 'generate', ...engine.generate(request.which, request.prompt, request.maxTokens, request.temperature, request.seed) };
    case 'prune':
      return { kind: 'prune', summary: await engine.prune(request.method, request.options, request.calibration) };
    case 'perplexity':
      return { kind: 'perplexity', result: await engine.perplexity(request.which, request.name, request.text, request.seqLen, request.limit) };
    case 'export':
      return { kind: 'export', files: await engine.export(request.format) };
  }
}

function failure(e: unknown): Failure {
  if (e instanceof TopiaryError) return { code: e.code, message: e.message, ...(e.file ? { file: e.file } : {}), ...(e.where ? { where: e.where } : {}), ...(e.hint ? { hint: e.hint } : {}) };
  return { code: 'E_INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

// one request at a time, in order
let queue: Promise<void> = Promise.resolve();
scope.onmessage = (event) => {
  const request = event.data;
  queue = queue.then(async () => {
    current = request.id;
    try {
      const result = await answer(request);
      const transfer = result.kind === 'export' ? result.files.map((f) => f.bytes) : [];
      scope.postMessage({ id: request.id, type: 'done', answer: result }, transfer);
    } catch (e) {
      scope.postMessage({ id: request.id, type: 'failed', failure: failure(e) });
    }
  });
};
