/**
 * The train stage of a recipe: (pruning-aware) pretraining from the current model, through @topiary/trainer, whose
 * `trainOptions` schema is the stage's options. Its own checkpoints live in the run folder under `stages/train-N/`,
 * so an interrupted stage resumes mid-way.
 */
import { join } from 'node:path';
import { TopiaryError, type CausalLM, type DependencyContainer, type Recipe, type Stage } from '@topiary/kernel';
import { loadModel } from '@topiary/model-llama';
import type { StageResult } from '@topiary/report';
import { resolveTrainOptions, train, trainOptions, type TrainOptions, type TrainSpec } from '@topiary/trainer';
import { resolveTokenizerPath } from '../model-io.js';
import { architectureOf, type StageEnv } from './env.js';

export interface TrainStagePaths {
  /** The tokenizer of the run (its data is tokenized with the model's own tokenizer unless the stage names one). */
  tokenizerPath?: string;
  /** The model the stage starts from (the latest checkpoint, or the recipe's model). */
  modelPath: string;
  /** The stage's own folder inside the run folder. */
  stageDir: string;
}

function spec(options: TrainOptions, where: string, recipe: Recipe, container: DependencyContainer, paths: TrainStagePaths): TrainSpec {
  try {
    return resolveTrainOptions(options, where, container, {
      seed: recipe.seed,
      out: paths.stageDir,
      modelFrom: paths.modelPath,
      tokenizer: paths.tokenizerPath ?? recipe.model?.tokenizer,
      trainData: recipe.data.train,
    });
  } catch (e) {
    throw e instanceof TopiaryError && recipe.file && !e.file ? e.inFile(recipe.file) : e;
  }
}

export async function runTrainStage(
  env: StageEnv,
  model: CausalLM,
  options: TrainOptions,
  where: string,
  recipe: Recipe,
  paths: TrainStagePaths,
  index: number,
  signal: AbortSignal,
): Promise<{ model: CausalLM; result: StageResult; finished: boolean }> {
  const before = architectureOf(model);
  const result = await train(spec(options, where, recipe, env.container, paths), { container: env.container, events: env.events, signal });
  if (!result.finished) {
    return { model, finished: false, result: { index, kind: 'train', name: 'train', seconds: result.seconds } };
  }
  const trained = await loadModel(join(result.out, 'model'));
  return {
    model: trained,
    finished: true,
    result: {
      index,
      kind: 'train',
      name: options.prune ? 'pruning-aware' : 'train',
      seconds: result.seconds,
      parametersBefore: result.sourceParams,
      parametersAfter: result.params,
      architectureBefore: before,
      architectureAfter: architectureOf(trained),
      eval: { perplexity: { 'held-out (train stage)': { ppl: result.validPerplexity, tokens: 0 } }, tasks: {} },
      details: { steps: result.steps, tokens: result.tokens, finalLoss: result.finalLoss, validLoss: result.validLoss, resumedFrom: result.resumedFrom },
    },
  };
}

export const trainStage: Stage<typeof trainOptions, TrainOptions> = {
  kind: 'train',
  description: '(pruning-aware) pretraining from the current model, with checkpoints inside the run folder',
  options: trainOptions,
  prepare(options, ctx) {
    // everything is checked before any stage runs (paths are placeholders until the stage starts)
    const modelPath = ctx.recipe.model?.from ?? '';
    spec(options, ctx.where, ctx.recipe, ctx.container, {
      modelPath,
      stageDir: '.',
      tokenizerPath: modelPath ? resolveTokenizerPath(modelPath, ctx.recipe.model?.tokenizer) : undefined,
    });
    return options;
  },
  async run(model, options, ctx) {
    const paths = { modelPath: ctx.modelPath, tokenizerPath: ctx.tokenizerPath, stageDir: ctx.stageDir };
    const out = await runTrainStage(ctx, model, options, ctx.where, ctx.recipe, paths, ctx.index, ctx.signal);
    return { model: out.model, result: out.result, changedModel: out.finished, partial: !out.finished };
  },
};
