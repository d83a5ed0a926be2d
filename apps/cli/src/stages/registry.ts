/**
 * One runner per recipe stage kind: `prepare` validates a stage's options before anything runs, `run` executes
 * it on the current model. `topiary run` drives these; the single-stage commands call the same functions.
 */
import { checkNumber, fieldPath, optionalNumber, TopiaryError, type CausalLM, type Recipe, type RecipeStage, type Raw } from '@topiary/kernel';
import type { StageResult } from '@topiary/report';
import type { RunContext } from '../context.js';
import type { CalibrationSpec, StageEnv } from './env.js';
import { runEvalStage, validateEvalStage, type EvalStageInput } from './eval.js';
import { preparePruner, runPruneStage } from './prune.js';
import { prepareTrainStage, runTrainStage } from './train.js';
import { runFinetuneStage, validateFinetuneStage, type FinetuneStage } from './finetune.js';
import { join } from 'node:path';

export interface StageOutcome {
  model: CausalLM;
  result: StageResult;
  /** Whether the stage changed the weights (then a checkpoint is written). */
  changedModel: boolean;
  /** True when the stage stopped early on an interrupt (it is then redone on resume). */
  partial?: boolean;
}

export interface PlannedStage {
  stage: RecipeStage;
  index: number;
  prepared: unknown;
}

/** Where the run stands when a stage starts. */
export interface StagePlace {
  /** Folder of the current model on disk (the latest checkpoint, or the recipe's model). */
  modelPath: string;
  /** The run folder. */
  runDir: string;
}

export interface StageRunner<Prepared = unknown> {
  prepare(run: RunContext, stage: RecipeStage, recipe: Recipe): Prepared;
  run(env: StageEnv, model: CausalLM, plan: PlannedStage & { prepared: Prepared }, recipe: Recipe, signal: AbortSignal, place: StagePlace): Promise<StageOutcome>;
}

interface PreparedPrune {
  method: string;
  options: Raw;
  calibration?: CalibrationSpec;
  calibrationWhere: string;
}

/** A stage's own `calibration: {path, samples, seqlen, seed}` overrides the recipe's `data.calibration`. */
function pruneCalibration(stage: RecipeStage, recipe: Recipe): { spec?: CalibrationSpec; where: string } {
  const own = stage.options.calibration as Raw | undefined;
  if (own !== undefined) {
    const where = `${stage.where}.calibration`;
    if (typeof own !== 'object' || own === null || typeof own.path !== 'string') {
      throw new TopiaryError('E_RECIPE', 'must be { path, samples, seqlen, seed }', { file: recipe.file, where });
    }
    return {
      spec: {
        path: own.path,
        samples: own.samples === undefined ? recipe.data.calibration?.samples : checkNumber(own.samples, fieldPath(where, 'samples'), { integer: true, min: 1 }),
        seqLen: own.seqlen === undefined ? recipe.data.calibration?.seqlen : checkNumber(own.seqlen, fieldPath(where, 'seqlen'), { integer: true, min: 2 }),
        seed: optionalNumber(own, 'seed', where, recipe.data.calibration?.seed ?? recipe.seed, { integer: true, min: 0 }),
      },
      where,
    };
  }
  const cal = recipe.data.calibration;
  return { spec: cal ? { path: cal.path, samples: cal.samples, seqLen: cal.seqlen, seed: cal.seed } : undefined, where: 'data.calibration' };
}

const prune: StageRunner<PreparedPrune> = {
  prepare(run, stage, recipe) {
    const { method, calibration: _c, ...options } = stage.options;
    const input = { method: String(method), options, where: stage.where, methodWhere: `${stage.where}.method` };
    try {
      preparePruner({ run }, input);
      const cal = pruneCalibration(stage, recipe);
      return { method: input.method, options, calibration: cal.spec, calibrationWhere: cal.where };
    } catch (e) {
      throw e instanceof TopiaryError && recipe.file && !e.file ? e.inFile(recipe.file) : e;
    }
  },
  async run(env, model, plan) {
    const p = plan.prepared;
    const out = await runPruneStage(env, model, {
      method: p.method,
      options: p.options,
      where: plan.stage.where,
      methodWhere: `${plan.stage.where}.method`,
      calibration: p.calibration,
      calibrationWhere: p.calibrationWhere,
    }, plan.index);
    return { model: out.model, result: out.result, changedModel: true };
  },
};

const evaluate: StageRunner<EvalStageInput> = {
  prepare(_run, stage, recipe) {
    try {
      return validateEvalStage(stage.options, stage.where);
    } catch (e) {
      throw e instanceof TopiaryError && recipe.file && !e.file ? e.inFile(recipe.file) : e;
    }
  },
  async run(env, model, plan) {
    const started = performance.now();
    const { summary } = await runEvalStage(env, model, plan.prepared);
    const result: StageResult = { index: plan.index, kind: 'eval', name: 'eval', seconds: (performance.now() - started) / 1000, eval: summary };
    return { model, result, changedModel: false };
  },
};

const trainStage: StageRunner<RecipeStage> = {
  prepare: prepareTrainStage,
  async run(env, model, plan, recipe, signal, place) {
    const out = await runTrainStage(env, model, plan.stage, recipe, { modelPath: place.modelPath, tokenizerPath: env.tokenizerPath, stageDir: join(place.runDir, 'stages', `train-${plan.index + 1}`) }, plan.index, signal);
    return { model: out.model, result: out.result, changedModel: out.finished, partial: !out.finished };
  },
};

const finetuneStage: StageRunner<FinetuneStage> = {
  prepare(_run, stage, recipe) {
    try {
      return validateFinetuneStage(stage.options, stage.where, recipe);
    } catch (e) {
      throw e instanceof TopiaryError && recipe.file && !e.file ? e.inFile(recipe.file) : e;
    }
  },
  async run(env, model, plan, recipe) {
    const result = await runFinetuneStage(env, model, plan.prepared, recipe, plan.stage.where, plan.index);
    return { model, result, changedModel: true };
  },
};

export const stageRunners: Record<RecipeStage['kind'], StageRunner> = {
  prune: prune as StageRunner,
  eval: evaluate as StageRunner,
  finetune: finetuneStage as StageRunner,
  train: trainStage as StageRunner,
};
