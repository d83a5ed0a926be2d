/** The eval stage: perplexity files and zero-shot tasks, in the shape results.json and the report use. */
import { runEvaluation, reportToJson, type EvalJson } from '@topiary/eval';
import { crossFieldIssue, z, type CausalLM, type OptionsOf, type Stage } from '@topiary/kernel';
import type { EvalSummary, StageResult } from '@topiary/report';
import type { StageEnv } from './env.js';

const fileList = z.union([z.string(), z.array(z.string())]);

/** An eval stage's options, declared once. */
export const evalStageOptions = z
  .object({
    perplexity: fileList.optional().meta({ description: 'text file(s) to measure perplexity on', path: true }),
    tasks: fileList
      .optional()
      .meta({ description: 'lm-eval task names (piqa, hellaswag, arc_easy, lambada_openai, ...) or task files by path', path: 'when-file-like' }),
    numFewshot: z.number().int().min(0).optional().meta({ description: "few-shot examples per item, drawn with lm-eval's sampler (default 0)" }),
    fewshotSeed: z.number().int().min(0).optional().meta({ description: "the few-shot sampler's seed (lm-eval's default 1234)" }),
    limit: z.number().int().min(1).optional().meta({ description: 'score at most this many windows / items each' }),
    seqlen: z.number().int().min(2).optional().meta({ description: "perplexity window length (default: the model's context)" }),
    stride: z.number().int().min(1).optional().meta({ description: 'strided (sliding-window) perplexity' }),
    bos: z.boolean().optional().meta({ description: 'put one BOS in front of each perplexity text (default: none)' }),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (listOf(v.perplexity).length === 0 && listOf(v.tasks).length === 0) ctx.addIssue(crossFieldIssue([], 'an eval stage needs perplexity files or tasks'));
  });

function listOf(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : typeof value === 'string' ? [value] : value;
}

export interface EvalStageInput {
  perplexity: string[];
  tasks: string[];
  limit?: number;
  seqLen?: number;
  stride?: number;
  /** Put one BOS in front of each perplexity text (default: none). */
  bos?: boolean;
  numFewshot?: number;
  fewshotSeed?: number;
}

/** The validated options in the shape the evaluation takes. */
export function evalStageInput(options: OptionsOf<typeof evalStageOptions>): EvalStageInput {
  return {
    perplexity: listOf(options.perplexity),
    tasks: listOf(options.tasks),
    ...(options.limit !== undefined ? { limit: options.limit } : {}),
    ...(options.seqlen !== undefined ? { seqLen: options.seqlen } : {}),
    ...(options.stride !== undefined ? { stride: options.stride } : {}),
    ...(options.bos !== undefined ? { bos: options.bos } : {}),
    ...(options.numFewshot !== undefined ? { numFewshot: options.numFewshot } : {}),
    ...(options.fewshotSeed !== undefined ? { fewshotSeed: options.fewshotSeed } : {}),
  };
}

export function toSummary(json: EvalJson): EvalSummary {
  const summary: EvalSummary = { perplexity: {}, tasks: {} };
  for (const [file, p] of Object.entries(json.perplexity)) summary.perplexity[file] = { ppl: p.ppl, tokens: p.tokens };
  for (const [name, t] of Object.entries(json.tasks)) {
    summary.tasks[name] = {
      acc: t.acc,
      acc_norm: t.acc_norm,
      n: t.n,
      ...(t.acc_stderr !== null ? { acc_stderr: t.acc_stderr } : {}),
      ...(t.acc_norm_stderr !== null ? { acc_norm_stderr: t.acc_norm_stderr } : {}),
    };
  }
  return summary;
}

export async function runEvalStage(env: StageEnv, model: CausalLM, input: EvalStageInput): Promise<{ json: EvalJson; summary: EvalSummary }> {
  const report = await runEvaluation(
    model,
    env.tokenizer,
    {
      perplexity: input.perplexity,
      tasks: input.tasks,
      seqLen: input.seqLen,
      stride: input.stride,
      bos: input.bos,
      task: { ...(input.numFewshot !== undefined ? { numFewshot: input.numFewshot } : {}), ...(input.fewshotSeed !== undefined ? { fewshotSeed: input.fewshotSeed } : {}) },
    },
    { events: env.events, limit: input.limit },
  );
  const json = reportToJson(report);
  return { json, summary: toSummary(json) };
}

export const evalStage: Stage<typeof evalStageOptions, EvalStageInput> = {
  kind: 'eval',
  description: 'measure perplexity and zero-shot task accuracy of the current model',
  options: evalStageOptions,
  prepare: (options) => evalStageInput(options),
  // perplexity and tasks score block by block (the block executor): a streamed model is evaluated as is
  streams: () => true,
  async run(model, input, ctx) {
    const started = performance.now();
    const { summary } = await runEvalStage(ctx, model, input);
    const result: StageResult = { index: ctx.index, kind: 'eval', name: 'eval', seconds: (performance.now() - started) / 1000, eval: summary };
    return { model, result, changedModel: false };
  },
};
