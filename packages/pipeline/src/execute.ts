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
  type Raw,
  type Recipe,
  type RecipeStage,
  type Stage,
  type StageContext,
} from '@topiary/kernel';
import type { SaveOptions } from '@topiary/model-llama';
import { writeReport, type RunResults, type StageResult } from '@topiary/report';
import { loadModelWithTokenizer } from './model-io.js';
import type { RunContext } from './run.js';
import { RunFolder } from './run-folder.js';
import { stagePathFields } from './recipe-paths.js';
import { localModelPath, looksLikeHubId, resolveHubSnapshot } from './hub-cache.js';
import { saveModelWithTokenizer } from './stages/env.js';
import { reopensModel } from './stages/prune.js';

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
 * Several problems found at once (a recipe with a typo in one stage and a missing file in another): it reads as the
 * first — its code, message, file, place and hint, so `error.describe()` and exit codes are unchanged — and
 * `errors` lists them all, in recipe order.
 */
export class RecipeErrors extends TopiaryError {
  readonly errors: readonly TopiaryError[];

  constructor(errors: readonly TopiaryError[]) {
    const first = errors[0]!;
    super(first.code, first.message, { file: first.file, where: first.where, hint: first.hint, cause: first });
    this.errors = errors;
  }
}

/** Throw nothing for no errors, the error itself for one, a `RecipeErrors` for several. */
export function throwAll(errors: readonly TopiaryError[]): void {
  if (errors.length === 1) throw errors[0]!;
  if (errors.length > 1) throw new RecipeErrors(errors);
}

/** Every error an exception carries: the list of a `RecipeErrors`, else the one. */
export function errorsOf(error: unknown): unknown[] {
  return error instanceof RecipeErrors ? [...error.errors] : [error];
}

/**
 * Why a model path cannot be used, or undefined when it can: a local path that exists, or a Hub id (`org/name`)
 * whose snapshot is in the local Hugging Face cache. A Hub id that is not cached gets a sentence saying where it was
 * looked for and that nothing is downloaded (E_USAGE for a flag); another missing path is E_IO (exit 1, as a missing
 * file always was on the command line). In a recipe (`recipe: true`) both are E_RECIPE (exit 2).
 */
export function modelPathError(path: string, where: string, options: { file?: string; recipe?: boolean } = {}): TopiaryError | undefined {
  if (localModelPath(path) !== undefined) return undefined;
  if (looksLikeHubId(path)) {
    const { looked } = resolveHubSnapshot(path);
    return new TopiaryError(options.recipe ? 'E_RECIPE' : 'E_USAGE', `"${path}" is not a local path nor in the local Hugging Face cache (looked for ${looked}); nothing is downloaded`, {
      file: options.file,
      where,
      hint: `fetch it yourself (e.g. huggingface-cli download ${path.split('@')[0]}), set HF_HUB_CACHE / HF_HOME to the cache that holds it, or give a local folder (an HF folder, a .safetensors file or a llama2.c .bin)`,
    });
  }
  return new TopiaryError(options.recipe ? 'E_RECIPE' : 'E_IO', `no such file or folder: ${path}`, {
    file: options.file,
    where,
    hint: 'an HF folder, a .safetensors file (config.json beside it) or a llama2.c .bin',
  });
}

/** Path fields that name what a stage writes, not what it reads (the run folder): not checked for existence. */
const OUTPUT_FIELDS = new Set(['out', 'output']);

/** Every input path a stage's options name (the fields its schema marks as paths), with its place. */
export function stageInputPaths(stage: Pick<Stage, 'options'>, options: Raw, where: string): Array<{ where: string; path: string }> {
  return stagePathFields(stage, options, where)
    .filter((f) => !OUTPUT_FIELDS.has(f.key))
    .map(({ where: place, path }) => ({ where: place, path }));
}

/**
 * Every input a recipe names that is not there: its model (a Hub id gets its own sentence), tokenizer, data files
 * and each known stage's path fields. Paths are as given (the CLI makes them absolute from the recipe's folder first).
 */
export function recipePathErrors(recipe: Recipe, stages: readonly Pick<Stage, 'kind' | 'options'>[]): TopiaryError[] {
  const errors: TopiaryError[] = [];
  const file = recipe.file;
  const missing = (path: string, where: string) => {
    if (!existsSync(path)) errors.push(new TopiaryError('E_RECIPE', `no such file or folder: ${path}`, { file, where }));
  };
  if (recipe.model) {
    const model = modelPathError(recipe.model.from, 'model', { file, recipe: true });
    if (model) errors.push(model);
    if (recipe.model.tokenizer !== undefined) missing(recipe.model.tokenizer, 'model.tokenizer');
  }
  if (recipe.data.calibration) missing(recipe.data.calibration.path, 'data.calibration.path');
  if (recipe.data.train !== undefined) missing(recipe.data.train, 'data.train');
  if (recipe.data.valid !== undefined) missing(recipe.data.valid, 'data.valid');
  for (const stage of recipe.stages) {
    const runner = stages.find((s) => s.kind === stage.kind);
    if (!runner) continue;
    for (const { where, path } of stageInputPaths(runner, stage.options, stage.where)) missing(path, where);
  }
  return errors;
}

/**
 * Check every stage of a recipe before any compute: unknown kinds, options against each stage's schema, what needs
 * the run's plugins (unknown methods, a method's own options) and, with `paths: true` (what `executeRecipe` asks
 * for a new run), that every file the recipe names is there. Collects every problem, each naming file and path:
 * throws the one, or a `RecipeErrors` listing them all.
 */
export function planRecipe(run: Pick<RunContext, 'container'>, recipe: Recipe, options: { paths?: boolean } = {}): PlannedStage[] {
  const stages = installedStages(run);
  const errors: TopiaryError[] = [];
  const planned: PlannedStage[] = [];
  recipe.stages.forEach((stage, index) => {
    const runner = stages.find((s) => s.kind === stage.kind);
    if (!runner) {
      errors.push(
        new TopiaryError('E_RECIPE', `unknown stage "${stage.kind}"`, {
          file: recipe.file,
          where: `stages[${index}]`,
          hint: `stages are: ${stages.map((s) => s.kind).join(', ')}`,
        }),
      );
      return;
    }
    const optionProblems = optionErrors(runner.options, stage.options, stage.where, recipe.file);
    if (optionProblems.length > 0) {
      errors.push(...optionProblems);
      return;
    }
    const parsed = runner.options.parse(stage.options) as never;
    try {
      const prepared = runner.prepare ? runner.prepare(parsed, { container: run.container, recipe, where: stage.where }) : parsed;
      planned.push({ stage, runner, index, prepared });
    } catch (e) {
      if (!(e instanceof TopiaryError)) throw e;
      errors.push(...(errorsOf(e) as TopiaryError[]).map((one) => (recipe.file && !one.file ? one.inFile(recipe.file) : one)));
    }
  });
  if (options.paths === true) errors.push(...recipePathErrors(recipe, stages));
  throwAll(errors);
  return planned;
}

/** The recipe as written back to recipe.resolved.yaml (the same shape a user writes). */
export function recipeDocument(recipe: Recipe): Record<string, unknown> {
  return {
    ...(recipe.name !== undefined ? { name: recipe.name } : {}),
    ...(recipe.description !== undefined ? { description: recipe.description } : {}),
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
  options: { signal?: AbortSignal; save?: SaveOptions } = {},
): Promise<RecipeOutcome> {
  if (!recipe.model) throw new TopiaryError('E_RECIPE', 'is required for a run (the model the stages start from)', { file: recipe.file, where: 'model' });
  // the whole recipe (options, plugins, files) is checked before the backend starts and before the folder exists;
  // a resumed run's files were checked when it started (a finished stage's data may be gone since)
  const planned = planRecipe(run, recipe, { paths: !resume });
  const choice = await run.activateBackend();

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
  // every stage can work one block at a time (block-by-block pruners, evaluation): the model is streamed
  const streamed = planned.slice(state.completed).every((p) => p.runner.streams?.(p.prepared as never, { container: run.container, recipe, where: p.stage.where }) === true);
  const loaded = await loadModelWithTokenizer(
    { model: modelPath, tokenizer: state.modelDir ? undefined : recipe.model.tokenizer },
    { needTokenizer: true, ...(streamed ? { model: { residency: 'block' as const } } : {}) },
  );
  if (streamed) run.events.log('info', 'every stage works block by block: the model is streamed (one block in memory at a time)');
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
  if (options.signal?.aborted) abort.abort(); // aborted before the run started listening
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
        modelPath: state.modelDir ? folder.path(state.modelDir) : loaded.modelPath,
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
        // a later stage that reopens the model from this checkpoint (a structured pruner on a streamed run) must read
        // the values the run holds, not their rounding to the input's dtype: that checkpoint is float32
        const reopened = streamed && planned.slice(plan.index + 1).some((p) => p.stage.kind === 'prune' && reopensModel(run.container, String((p.prepared as { method?: unknown }).method)));
        const save = reopened ? { ...options.save, dtype: 'float32' as const } : options.save;
        state.modelDir = await folder.checkpoint(plan.index + 1, (dir) => saveModelWithTokenizer(model, dir, tokenizerPath, save));
        run.events.emit({ type: 'checkpoint', path: folder.path(state.modelDir), step: plan.index + 1 });
      }
      state.completed = plan.index + 1;
      folder.writeResults(results);
      folder.writeState(state);
    }
    if (state.completed === planned.length) {
      await folder.finalModel((dir) => saveModelWithTokenizer(model, dir, tokenizerPath, options.save));
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
