/** The `eval` plugin: the perplexity and multiple-choice evaluators on Tokens.Evaluator. */
import { definePlugin, Tokens, type Evaluator } from '@topiary/kernel';
import { evaluatePerplexity, type PerplexitySpec } from './perplexity.js';
import { evaluateTask, type TaskRunOptions } from './mc.js';
import { defaultTaskRegistry, type TaskRegistry } from './tasks.js';

export const perplexityEvaluator: Evaluator<PerplexitySpec> = {
  name: 'perplexity',
  description: 'Perplexity of a text file (non-overlapping or strided sliding windows)',
  run: (model, tokenizer, spec, ctx) => evaluatePerplexity(model, tokenizer, spec, ctx),
};

export interface MultipleChoiceSpec extends TaskRunOptions {
  task: string;
}

export function multipleChoiceEvaluator(registry: TaskRegistry = defaultTaskRegistry()): Evaluator<MultipleChoiceSpec> {
  return {
    name: 'multiple-choice',
    description: `Zero-shot multiple choice, lm-eval-harness style (tasks: ${registry.names().join(', ')})`,
    run: (model, tokenizer, spec, ctx) => evaluateTask(model, tokenizer, registry.get(spec.task), ctx, spec),
  };
}

export const evalPlugin = definePlugin({
  name: 'eval',
  description: 'Perplexity and zero-shot multiple-choice evaluators',
  register(container) {
    container.register(Tokens.Evaluator, { useValue: perplexityEvaluator as Evaluator });
    container.register(Tokens.Evaluator, { useValue: multipleChoiceEvaluator() as Evaluator });
  },
});
