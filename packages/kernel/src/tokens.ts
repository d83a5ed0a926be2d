/**
 * DI tokens. Every seam of Topiary is one of these: plugins bind implementations to them in their `register`,
 * apps resolve them. Tokens are symbols typed with what they resolve to, so no class metadata is ever needed
 * (esbuild-based tools never emit `design:paramtypes`; always use `@inject(TOKEN)` or factories).
 */
import type { InjectionToken } from 'tsyringe';
import type { TensorBackend } from './interfaces/backend.js';
import type { ModelFormat } from './interfaces/model.js';
import type { TokenizerFactory } from './interfaces/tokenizer.js';
import type { Saliency } from './interfaces/saliency.js';
import type { Pruner } from './interfaces/pruner.js';
import type { Scheduler } from './interfaces/scheduler.js';
import type { Evaluator } from './interfaces/evaluator.js';
import type { EventBus } from './events.js';
import type { Stage } from './interfaces/stage.js';

function token<T>(description: string): InjectionToken<T> {
  return Symbol.for(`topiary:${description}`) as InjectionToken<T>;
}

export const Tokens = {
  /** All tensor backends installed (resolveAll); the app activates one. */
  TensorBackend: token<TensorBackend>('TensorBackend'),
  /** Model formats that can load/save a CausalLM (llama2.c, safetensors, ...). */
  ModelFormat: token<ModelFormat>('ModelFormat'),
  TokenizerFactory: token<TokenizerFactory>('TokenizerFactory'),
  Saliency: token<Saliency>('Saliency'),
  Pruner: token<Pruner>('Pruner'),
  Scheduler: token<Scheduler>('Scheduler'),
  Evaluator: token<Evaluator>('Evaluator'),
  /** Recipe stage kinds (`prune`, `eval`, `finetune`, `train`, or a plugin's own), named by their `kind`. */
  Stage: token<Stage>('Stage'),
  /** The run's event bus: progress, metrics, checkpoints, logs. */
  Events: token<EventBus>('Events'),
} as const;

export type TokenName = keyof typeof Tokens;
