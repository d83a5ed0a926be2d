/**
 * The train stage of a recipe: (pruning-aware) pretraining from the current model, through @topiary/trainer.
 * Its own checkpoints live in the run folder under `stages/train-N/`, so an interrupted stage resumes mid-way.
 */
import { join } from 'node:path';
import { TopiaryError, z, type CausalLM, type Raw, type Recipe, type Stage } from '@topiary/kernel';
import { loadModel } from '@topiary/model-llama';
import type { StageResult } from '@topiary/report';
import { train, validateTrainStage, type TrainSpec } from '@topiary/trainer';
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

function spec(options: Raw, where: string, recipe: Recipe, paths: TrainStagePaths): TrainSpec {
  try {
    return validateTrainStage({ ...options }, where, {
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
export function prepareTrainStage(options: Raw, where: string, recipe: Recipe): Raw {
  const modelPath = recipe.model?.from ?? '';
  spec(options, where, recipe, { modelPath, stageDir: '.', tokenizerPath: modelPath ? resolveTokenizerPath(modelPath, recipe.model?.tokenizer) : undefined });
  return options;
}

export async function runTrainStage(
  env: StageEnv,
  model: CausalLM,
  options: Raw,
  where: string,
  recipe: Recipe,
  paths: TrainStagePaths,
  index: number,
  signal: AbortSignal,
): Promise<{ model: CausalLM; result: StageResult; finished: boolean }> {
  const before = architectureOf(model);
  const result = await train(spec(options, where, recipe, paths), { container: env.container, events: env.events, signal });
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

/** Until the trainer declares its schema, the stage takes its fields as written and checks them in prepare. */
const trainStageOptions = z
  .object({
    model: z.union([z.string(), z.object({ from: z.string().optional().meta({ path: true }), architecture: z.string().optional().meta({ path: true }) }).catchall(z.unknown())]).optional().meta({ path: true }),
    data: z.object({ train: z.string().optional().meta({ path: true }), valid: z.string().optional().meta({ path: true }), tokenizer: z.string().optional().meta({ path: true }) }).catchall(z.unknown()).optional(),
    out: z.string().optional().meta({ path: true }),
  })
  .catchall(z.unknown());

export const trainStage: Stage<typeof trainStageOptions, Raw> = {
  kind: 'train',
  description: '(pruning-aware) pretraining from the current model, with checkpoints inside the run folder',
  options: trainStageOptions,
  prepare: (options, ctx) => prepareTrainStage(options, ctx.where, ctx.recipe),
  async run(model, options, ctx) {
    const paths = { modelPath: ctx.modelPath, tokenizerPath: ctx.tokenizerPath, stageDir: ctx.stageDir };
    const out = await runTrainStage(ctx, model, options, ctx.where, ctx.recipe, paths, ctx.index, ctx.signal);
    return { model: out.model, result: out.result, changedModel: out.finished, partial: !out.finished };
  },
};
