/**
 * The train stage of a recipe: (pruning-aware) pretraining from the current model, through @topiary/trainer.
 * Its own checkpoints live in the run folder under `stages/train-N/`, so an interrupted stage resumes mid-way.
 */
import { join } from 'node:path';
import { TopiaryError, type CausalLM, type Recipe, type RecipeStage } from '@topiary/kernel';
import { loadModel } from '@topiary/model-llama';
import type { StageResult } from '@topiary/report';
import { train, validateTrainStage, type TrainSpec } from '@topiary/trainer';
import type { RunContext } from '../context.js';
import { resolveTokenizerPath } from '../model-args.js';
import { architectureOf, type StageEnv } from './env.js';

export interface TrainStagePaths {
  /** The tokenizer of the run (its data is tokenized with the model's own tokenizer unless the stage names one). */
  tokenizerPath?: string;
  /** The model the stage starts from (the latest checkpoint, or the recipe's model). */
  modelPath: string;
  /** The stage's own folder inside the run folder. */
  stageDir: string;
}

function spec(stage: RecipeStage, recipe: Recipe, paths: TrainStagePaths): TrainSpec {
  try {
    return validateTrainStage({ ...stage.options }, stage.where, {
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

/** Validate before anything runs (paths are placeholders until the stage starts). */
export function prepareTrainStage(_run: RunContext, stage: RecipeStage, recipe: Recipe): RecipeStage {
  const modelPath = recipe.model?.from ?? '';
  spec(stage, recipe, { modelPath, stageDir: '.', tokenizerPath: modelPath ? resolveTokenizerPath(modelPath, recipe.model?.tokenizer) : undefined });
  return stage;
}

export async function runTrainStage(
  env: StageEnv,
  model: CausalLM,
  stage: RecipeStage,
  recipe: Recipe,
  paths: TrainStagePaths,
  index: number,
  signal: AbortSignal,
): Promise<{ model: CausalLM; result: StageResult; finished: boolean }> {
  const before = architectureOf(model);
  const result = await train(spec(stage, recipe, paths), { container: env.run.container, events: env.run.events, signal });
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
      name: stage.options.prune ? 'pruning-aware' : 'train',
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
