/** Evaluators: tasks that measure a model and return typed results. */
import type { CausalLM } from './model.js';
import type { Tokenizer } from './tokenizer.js';
import type { EventBus } from '../events.js';

export interface EvalContext {
  events: EventBus;
  /** Evaluate at most this many items/windows (quick runs). */
  limit?: number;
  batchSize?: number;
  signal?: AbortSignal;
  /** Bytes of hidden states a block-by-block pass keeps in host memory (streamed models); default 1 GiB. */
  activationBytes?: number;
}

export interface PerplexityResult {
  kind: 'perplexity';
  source: string;
  ppl: number;
  /** Mean negative log-likelihood per scored token (nats). */
  nll: number;
  tokens: number;
}

export interface TaskResult {
  kind: 'task';
  task: string;
  acc: number;
  accStderr: number;
  accNorm: number;
  accNormStderr: number;
  n: number;
  /** Index of the predicted choice per item (by acc), for comparisons against references. */
  predictions?: number[];
}

export type EvalResult = PerplexityResult | TaskResult;

export interface Evaluator<Spec = unknown> {
  readonly name: string;
  readonly description: string;
  run(model: CausalLM, tokenizer: Tokenizer, spec: Spec, ctx: EvalContext): Promise<EvalResult>;
}
