/**
 * @topiary/eval — perplexity (non-overlapping and strided sliding windows) and lm-eval-harness style zero-shot
 * multiple-choice tasks; JSON and Markdown results; side-by-side comparisons. Default export: the `eval` plugin.
 */
import { evalPlugin } from './plugin.js';

export * from './scoring.js';
export * from './data.js';
export * from './perplexity.js';
export * from './tasks.js';
export * from './schemas.js';
export * from './pyrandom.js';
export * from './lmeval.js';
export * from './mc.js';
export * from './results.js';
export * from './runner.js';
export { perplexityEvaluator, multipleChoiceEvaluator, type MultipleChoiceSpec } from './plugin.js';
export { evalPlugin };
export default evalPlugin;
