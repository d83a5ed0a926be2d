/**
 * Running a recipe: every stage's options are checked against its schema (and prepared with the run's plugins)
 * before anything runs; then the stages run in order into a run folder, with a checkpoint after every stage that
 * changed the model, results.json after every stage, and a report at the end. An interrupted run resumes at the
 * first stage not completed.
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  optionErrors,
  resolveAllOrNone,
  Tokens,
  TopiaryError,
  type CausalLM,
  type Recipe,
  type RecipeStage,
  type Stage,
  type StageContext,
} from '@topiary/kernel';
import { writeReport, type RunResults, type StageResult } from '@topiary/report';
import { loadModelWithTokenizer } from './model-io.js';
import type { RunContext } from './run.js';
import { RunFolder } from './run-folder.js';
import { saveModelWithTokenizer } from './stages/env.js';

export interface PlannedStage {
  stage: RecipeStage;
  runner: Stage;
  index: number;
  prepared: unknown;
}

/** The stage kinds installed in a run (the pipeline's own and any plugin's). */
export function installedStages(run: Pick<RunContext, 'container'>): Stage[] {
  return resolveAllOrNone(run.container, Tokens.Stage);
}

/**
 * Check every stage of a recipe before any compute: unknown kinds, options against each stage's schema, and what
 * needs the run's plugins (unknown methods, a method's own options). Throws the first problem, naming file and path.
 */
export function planRecipe(run: Pick<RunContext, 'container'>, recipe: Recipe): PlannedStage[] {
  const stages = installedStages(run);
  return recipe.stages.map((stage, index) => {
    const runner = stages.find((s) => s.kind === stage.kind);
    if (!runner) {
      throw new TopiaryError('E_RECIPE', `unknown stage "${stage.kind}"`, {
        file: recipe.file,
        where: `stages[${index}]`,
        hint: `stages are: ${stages.map((s) => s.kind).join(', ')}`,
      });
    }
    const errors = optionErrors(runner.options, stage.options, stage.where, recipe.file);
    if (errors.length > 0) throw errors[0]!;
    const options = runner.options.parse(stage.options) as never;
    try {
      const prepared = runner.prepare ? runner.prepare(options, { container: run.container, recipe, where: stage.where }) : options;
      return { stage, runner, index, prepared };
    } catch (e) {
      throw e instanceof TopiaryError && recipe.file && !e.file ? e.inFile(recipe.file) : e;
    }
  });
}

/** The recipe as written back to recipe.resolved.yaml (the same shape a user writes). */
export function recipeDocument(recipe: Recipe): Record<string, unknown> {
  return {
    ...(recipe.model ? { model: recipe.model } : {}),
    backend: recipe.backend,
    seed: recipe.seed,
    ...(recipe.plugins.length ? { plugins: recipe.plugins } : {}),
    data: recipe.data,
    stages: recipe.stages.map((s) => ({ [s.kind]: s.options })),
    ...(recipe.output ? { output: recipe.output } : {}),
  };
}

export interface RecipeOutcome {
  /** 0 when completed, 130 when interrupted. */
  code: number;
  results: RunResults;
  folder: RunFolder;
  /** The report's path. */
  report: string;
  /** The final model's folder, when the run completed. */
  model: string | null;
}

/** Run (or resume) every stage of a recipe into `folder`. */
export async function executeRecipe(
  run: RunContext,
  recipe: Recipe,
  folder: RunFolder,
  resume: boolean,
  options: { signal?: AbortSignal } = {},
): Promise<RecipeOutcome> {
  if (!recipe.model) throw new TopiaryError('E_RECIPE', 'is required for a run (the model the stages start from)', { file: recipe.file, where: 'model' });
  const choice = await run.activateBackend();
  const planned = planRecipe(run, recipe);

  const state = resume ? folder.readState() : { completed: 0, source: recipe.model.from };
  if (!resume) {
    folder.create();
    folder.writeRecipe(recipeDocument(recipe));
    folder.writeState(state);
  } else {
    folder.repairMetrics();
  }
  const results: RunResults = (resume ? folder.readResults() : undefined) ?? {
    name: basename(folder.dir),
    recipe: recipe.file,
    model: recipe.model.from,
    backend: choice.backend.name,
    started: new Date().toISOString(),
    status: 'running',
    stages: [],
  };
  results.status = 'running';
  results.stages = results.stages.slice(0, state.completed);
  delete results.error;

  const modelPath = state.modelDir ? folder.path(state.modelDir) : recipe.model.from;
  const loaded = await loadModelWithTokenizer({ model: modelPath, tokenizer: state.modelDir ? undefined : recipe.model.tokenizer }, { needTokenizer: true });
  let model: CausalLM = loaded.model;
  const tokenizerPath = loaded.tokenizerPath!;
  if (resume) run.events.log('info', `resuming ${folder.dir} at stage ${state.completed + 1} of ${planned.length} (model from ${modelPath})`);

  const abort = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts += 1;
    if (interrupts > 1) process.exit(130); // the folder is consistent at every moment: checkpoints are atomic
    run.events.log('warn', 'interrupted: stopping after the current step (Ctrl-C again to stop now); resume with topiary run --resume');
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  options.signal?.addEventListener('abort', () => abort.abort(), { once: true });
  let current = state.completed;
  const stopMetrics = folder.recordMetrics(run.events, () => current);
  try {
    for (const plan of planned.slice(state.completed)) {
      if (abort.signal.aborted) break;
      current = plan.index;
      run.events.log('info', `stage ${plan.index + 1}/${planned.length}: ${plan.stage.kind}${plan.stage.options.method ? ` (${String(plan.stage.options.method)})` : ''}`);
      const started = performance.now();
      const ctx: StageContext = {
        container: run.container,
        recipe,
        where: plan.stage.where,
        backend: choice.backend,
        events: run.events,
        tokenizer: loaded.tokenizer!,
        tokenizerPath,
        seed: recipe.seed,
        index: plan.index,
        signal: abort.signal,
        modelPath: state.modelDir ? folder.path(state.modelDir) : recipe.model.from,
        runDir: folder.dir,
        stageDir: join(folder.dir, 'stages', `${plan.stage.kind}-${plan.index + 1}`),
      };
      const outcome = await plan.runner.run(model, plan.prepared as never, ctx);
      const result = { ...outcome.result, index: plan.index, seconds: outcome.result.seconds || (performance.now() - started) / 1000 } as StageResult;
      if (outcome.model !== model) {
        model.dispose();
        model = outcome.model;
      }
      if (abort.signal.aborted && outcome.partial) break; // a stage cut short is redone on resume
      results.stages.push(result);
      if (outcome.changedModel) {
        state.modelDir = await folder.checkpoint(plan.index + 1, (dir) => saveModelWithTokenizer(model, dir, tokenizerPath));
        run.events.emit({ type: 'checkpoint', path: folder.path(state.modelDir), step: plan.index + 1 });
      }
      state.completed = plan.index + 1;
      folder.writeResults(results);
      folder.writeState(state);
    }
    if (state.completed === planned.length) {
      await folder.finalModel((dir) => saveModelWithTokenizer(model, dir, tokenizerPath));
      results.status = 'completed';
    } else {
      results.status = 'interrupted';
    }
    results.finished = new Date().toISOString();
    folder.writeResults(results);
    const report = writeReport(folder.dir);
    return {
      code: results.status === 'completed' ? 0 : 130,
      results,
      folder,
      report,
      model: existsSync(folder.path('model')) ? folder.path('model') : null,
    };
  } catch (error) {
    results.status = 'failed';
    results.finished = new Date().toISOString();
    results.error = error instanceof TopiaryError ? { code: error.code, message: error.describe() } : { code: 'E_INTERNAL', message: String(error) };
    try {
      folder.writeResults(results);
      writeReport(folder.dir);
    } catch {
      /* the original error matters more */
    }
    throw error;
  } finally {
    stopMetrics();
    process.off('SIGINT', onSigint);
    model.dispose();
  }
}
