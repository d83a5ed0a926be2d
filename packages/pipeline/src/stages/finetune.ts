/** The finetune stage of a recipe: recovery fine-tuning of the current model, optionally distilling a teacher. */
import {
  checkNumber,
  checkOneOf,
  checkString,
  isRecord,
  rejectUnknownKeys,
  TopiaryError,
  type CausalLM,
  type Raw,
  type Recipe,
  type Stage,
  z,
} from '@topiary/kernel';
import { packBlocks, tokenizeCached } from '@topiary/corpus';
import { DECAY_KINDS, finetune, type DecayKind, type FinetuneReport } from '@topiary/finetune';
import { AdamW, loadModel } from '@topiary/model-llama';
import type { StageResult } from '@topiary/report';
import { architectureOf, type StageEnv } from './env.js';

export const FINETUNE_KEYS = ['data', 'steps', 'lr', 'minLr', 'warmup', 'decay', 'batchSize', 'seqlen', 'weightDecay', 'distillFrom', 'temperature', 'alpha'] as const;

export interface FinetuneStage {
  data: string;
  steps: number;
  lr: number;
  minLr: number;
  warmup?: number;
  decay: DecayKind;
  batchSize: number;
  seqLen?: number;
  weightDecay: number;
  /** A teacher model path, or `source`: the model the recipe started from (the dense model before pruning). */
  distillFrom?: string;
  temperature: number;
  alpha: number;
}

export function validateFinetuneStage(raw: Raw, where: string, recipe: Recipe): FinetuneStage {
  if (!isRecord(raw)) throw new TopiaryError('E_RECIPE', 'must be a mapping', { where });
  rejectUnknownKeys(raw, where, FINETUNE_KEYS);
  const at = (k: string) => `${where}.${k}`;
  const num = (k: string, fallback: number, rule: Parameters<typeof checkNumber>[2]) => (raw[k] === undefined ? fallback : checkNumber(raw[k], at(k), rule));
  const data = raw.data === undefined ? recipe.data.train : checkString(raw.data, at('data'));
  if (!data) throw new TopiaryError('E_RECIPE', 'is required (a text file to fine-tune on), or set data.train at the top', { where: at('data') });
  if (raw.steps === undefined) throw new TopiaryError('E_RECIPE', 'is required (optimiser steps)', { where: at('steps') });
  const steps = checkNumber(raw.steps, at('steps'), { min: 1, integer: true });
  const lr = num('lr', 1e-4, { above: 0 });
  return {
    data,
    steps,
    lr,
    minLr: num('minLr', 0, { min: 0, max: lr }),
    ...(raw.warmup !== undefined ? { warmup: checkNumber(raw.warmup, at('warmup'), { min: 0, max: steps, integer: true }) } : {}),
    decay: raw.decay === undefined ? 'cosine' : checkOneOf(raw.decay, at('decay'), DECAY_KINDS),
    batchSize: num('batchSize', 8, { min: 1, integer: true }),
    ...(raw.seqlen !== undefined ? { seqLen: checkNumber(raw.seqlen, at('seqlen'), { min: 2, integer: true }) } : {}),
    weightDecay: num('weightDecay', 0, { min: 0 }),
    ...(raw.distillFrom !== undefined ? { distillFrom: checkString(raw.distillFrom, at('distillFrom')) } : {}),
    temperature: num('temperature', 2, { above: 0 }),
    alpha: num('alpha', 0.5, { min: 0, max: 1 }),
  };
}

export interface FinetuneSpec {
  data: string;
  steps: number;
  lr: number;
  minLr: number;
  warmup: number;
  decay: DecayKind;
  batchSize: number;
  seqLen: number;
  weightDecay: number;
  teacher: CausalLM | null;
  temperature: number;
  alpha: number;
}

/** The recovery stage itself (shared by the command and a recipe `finetune` stage). */
export async function runFinetune(env: StageEnv, model: CausalLM, spec: FinetuneSpec): Promise<FinetuneReport> {
  let corpus;
  try {
    corpus = await tokenizeCached(spec.data, env.tokenizer);
  } catch (e) {
    if (e instanceof TopiaryError && (e.code === 'E_IO' || e.code === 'E_DATA')) throw new TopiaryError(e.code, e.message, { file: spec.data, where: '--data', hint: e.hint, cause: e });
    throw e;
  }
  const windows = packBlocks(corpus, spec.seqLen);
  if (windows.length === 0) {
    throw new TopiaryError('E_DATA', `the training text has ${corpus.tokens.length} tokens, fewer than one window of ${spec.seqLen}`, {
      file: spec.data,
      where: '--seqlen',
      hint: 'use a longer --data file or a smaller --seqlen',
    });
  }
  const optimizer = new AdamW({ lr: spec.lr, weightDecay: spec.weightDecay, clipNorm: 1 });
  return finetune(model, {
    schedule: { lr: spec.lr, minLr: spec.minLr, steps: spec.steps, warmup: spec.warmup, decay: spec.decay },
    windows,
    batchSize: spec.batchSize,
    seed: env.seed,
    teacher: spec.teacher,
    distill: { temperature: spec.temperature, alpha: spec.alpha },
    optimizer,
    events: env.events,
  });
}

export async function runFinetuneStage(env: StageEnv, model: CausalLM, stage: FinetuneStage, recipe: Recipe, where: string, index: number): Promise<StageResult> {
  const seqLen = stage.seqLen ?? Math.min(256, model.config.maxSeqLen);
  if (seqLen > model.config.maxSeqLen) throw new TopiaryError('E_RECIPE', `${seqLen} is longer than the model's context (${model.config.maxSeqLen})`, { file: recipe.file, where: `${where}.seqlen` });
  const teacherPath = stage.distillFrom === 'source' ? recipe.model?.from : stage.distillFrom;
  const teacher = teacherPath ? await loadModel(teacherPath) : null;
  const before = architectureOf(model);
  try {
    const report = await runFinetune(env, model, {
      data: stage.data,
      steps: stage.steps,
      lr: stage.lr,
      minLr: stage.minLr,
      warmup: stage.warmup ?? Math.floor(stage.steps / 10),
      decay: stage.decay,
      batchSize: stage.batchSize,
      seqLen,
      weightDecay: stage.weightDecay,
      teacher,
      temperature: stage.temperature,
      alpha: stage.alpha,
    });
    report.losses.forEach((loss, step) => env.events.metric('finetune/loss', loss, step, { stage: index }));
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



/** Until the finetune package declares its schema, the stage takes its fields as written and checks them in prepare. */
const finetuneStageOptions = z
  .object({
    data: z.string().optional().meta({ path: true }),
    distillFrom: z.string().optional().meta({ path: true, keywords: ['source'] }),
  })
  .catchall(z.unknown());

export const finetuneStage: Stage<typeof finetuneStageOptions, FinetuneStage> = {
  kind: 'finetune',
  description: 'recovery fine-tuning of the current model, optionally distilling a teacher (the dense source model)',
  options: finetuneStageOptions,
  prepare: (options, ctx) => validateFinetuneStage(options, ctx.where, ctx.recipe),
  async run(model, stage, ctx) {
    const result = await runFinetuneStage(ctx, model, stage, ctx.recipe, ctx.where, ctx.index);
    return { model, result, changedModel: true };
  },
};
