/**
 * The finetune stage: recovery fine-tuning of the current model, optionally distilling a teacher (the dense source
 * model, `distillFrom: source`). Its options are @topiary/finetune's `finetuneOptions`, declared once; the
 * learning-rate schedule comes from the run's installed schedulers.
 */
import { TopiaryError, type CausalLM, type Recipe, type Stage } from '@topiary/kernel';
import { packBlocks, tokenizeCached } from '@topiary/corpus';
import { finetune, finetuneOptions, resolveFinetuneOptions, type FinetuneReport, type ResolvedFinetuneOptions } from '@topiary/finetune';
import { AdamW, loadModel } from '@topiary/model-llama';
import type { StageResult } from '@topiary/report';
import { architectureOf, type StageEnv } from './env.js';

export interface FinetuneSpec {
  /** The resolved options (defaults settled, the schedule's scheduler checked). */
  options: ResolvedFinetuneOptions;
  /** Window length (the options' `seqlen`, else min(256, the model's context)). */
  seqLen: number;
  teacher: CausalLM | null;
  /** Where the data path came from, for errors (`--data`, `stages[2].finetune.data`). */
  dataWhere: string;
  /** Where the window length came from. */
  seqLenWhere: string;
}

/** The window length a finetune uses on `model`: the given one (checked against the context), else min(256, context). */
export function finetuneSeqLen(options: Pick<ResolvedFinetuneOptions, 'seqlen'>, model: CausalLM, where: string, file?: string): number {
  const context = model.config.maxSeqLen;
  const seqLen = options.seqlen ?? Math.min(256, context);
  if (seqLen > context) throw new TopiaryError('E_RECIPE', `${seqLen} is longer than the model's context (${context})`, { file, where });
  return seqLen;
}

/**
 * The recovery itself (shared by `topiary finetune` and a recipe's `finetune` stage). `finetune()` emits the
 * `finetune/loss` metric live, once per optimiser step, at step = that optimiser step counted from 1 (the run
 * folder tags it with the stage); nothing here emits it again.
 */
export async function runFinetune(env: StageEnv, model: CausalLM, spec: FinetuneSpec): Promise<FinetuneReport> {
  const { options, seqLen } = spec;
  let corpus;
  try {
    corpus = await tokenizeCached(options.data, env.tokenizer);
  } catch (e) {
    if (e instanceof TopiaryError && (e.code === 'E_IO' || e.code === 'E_DATA')) throw new TopiaryError(e.code, e.message, { file: options.data, where: spec.dataWhere, hint: e.hint, cause: e });
    throw e;
  }
  const windows = packBlocks(corpus, seqLen);
  if (windows.length === 0) {
    throw new TopiaryError('E_DATA', `the training text has ${corpus.tokens.length} tokens, fewer than one window of ${seqLen}`, {
      file: options.data,
      where: spec.seqLenWhere,
      hint: 'use a longer data file or a smaller window length',
    });
  }
  const optimizer = new AdamW({ lr: options.lr, weightDecay: options.weightDecay, clipNorm: 1 });
  return finetune(model, {
    schedule: options,
    container: env.container,
    windows,
    batchSize: options.batchSize,
    seed: env.seed,
    teacher: spec.teacher,
    distill: { temperature: options.temperature, alpha: options.alpha },
    optimizer,
    events: env.events,
    // finetune() is the one emitter of `finetune/loss`: every optimiser step, step = that step, 1-based
    logEvery: 1,
  });
}

export async function runFinetuneStage(env: StageEnv, model: CausalLM, options: ResolvedFinetuneOptions, recipe: Recipe, where: string, index: number): Promise<StageResult> {
  const seqLen = finetuneSeqLen(options, model, `${where}.seqlen`, recipe.file);
  const teacherPath = options.distillFrom === 'source' ? recipe.model?.from : options.distillFrom;
  const teacher = teacherPath ? await loadModel(teacherPath) : null;
  const before = architectureOf(model);
  try {
    const report = await runFinetune(env, model, { options, seqLen, teacher, dataWhere: `${where}.data`, seqLenWhere: `${where}.seqlen` });
    return {
      index,
      kind: 'finetune',
      name: teacher ? 'finetune (distilled)' : 'finetune',
      seconds: report.seconds,
      parametersBefore: before.parameters,
      parametersAfter: model.parameterCount(),
      details: { steps: report.steps, tokens: report.tokens, firstLoss: report.firstLoss, lastLoss: report.lastLoss, distillFrom: teacherPath ?? null },
    };
  } finally {
    teacher?.dispose();
  }
}

export const finetuneStage: Stage<typeof finetuneOptions, ResolvedFinetuneOptions> = {
  kind: 'finetune',
  description: 'recovery fine-tuning of the current model, optionally distilling a teacher (the dense source model)',
  options: finetuneOptions,
  prepare(options, ctx) {
    try {
      return resolveFinetuneOptions(options, ctx.where, ctx.container, { data: ctx.recipe.data.train });
    } catch (e) {
      throw e instanceof TopiaryError && ctx.recipe.file && !e.file ? e.inFile(ctx.recipe.file) : e;
    }
  },
  async run(model, options, ctx) {
    const result = await runFinetuneStage(ctx, model, options, ctx.recipe, ctx.where, ctx.index);
    return { model, result, changedModel: true };
  },
};
