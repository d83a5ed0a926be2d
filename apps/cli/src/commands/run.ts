/**
 * `topiary run RECIPE`: a multi-stage recipe (prune stages in sequence, finetune, train, eval) into a run folder,
 * and `topiary run --resume DIR` to continue an interrupted one. Everything is validated before anything runs.
 * Relative paths in a recipe are resolved against the recipe file's folder.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { loadRecipe, TopiaryError, validateRecipe, type Recipe } from '@topiary/kernel';
import { writeReport, type RunResults, type StageResult } from '@topiary/report';
import type { CausalLM } from '@topiary/kernel';
import { createRunContext, type GlobalOptions, type RunContext } from '../context.js';
import { loadModelFromFlags } from '../model-args.js';
import { RunFolder } from '../run-folder.js';
import { resolveRecipePaths } from '../recipe-paths.js';
import { architectureOf, saveModelWithTokenizer, type StageEnv } from '../stages/env.js';
import { preparePruner, runPruneStage } from '../stages/prune.js';
import { runEvalStage, validateEvalStage } from '../stages/eval.js';
import { stageRunners, type PlannedStage } from '../stages/registry.js';

interface RunFlags {
  resume?: string;
}

/** The recipe as written back to recipe.resolved.yaml (the same shape a user writes). */
function recipeDocument(recipe: Recipe): Record<string, unknown> {
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

function defaultRunDir(recipeFile: string): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  return resolve('runs', `${basename(recipeFile, extname(recipeFile))}-${stamp}`);
}

export function registerRun(program: Command, globals: () => GlobalOptions): void {
  program
    .command('run')
    .argument('[recipe]', 'recipe file (YAML or JSON)')
    .description('Run a multi-stage recipe (prune, finetune, train, eval) into a run folder with metrics, checkpoints, the model and a report')
    .option('--resume <dir>', 'continue an interrupted run from its folder (uses its recipe.resolved.yaml)')
    .addHelpText(
      'after',
      `
The run folder (--out, else the recipe's output, else runs/<recipe>-<time>) gets recipe.resolved.yaml,
state.json, metrics.jsonl, checkpoints/stage-N/ (the model after each stage), model/ (the final model),
results.json and report.html. Ctrl-C stops after the current stage step and leaves a consistent folder;
\`topiary run --resume DIR\` continues it. Relative paths in a recipe are relative to the recipe file.

Examples:
  $ topiary run recipes/quickstart-wanda-50.yaml
  $ topiary run recipes/quickstart-wanda-2of4.yaml --out runs/wanda24
  $ topiary run --resume runs/wanda24`,
    )
    .action(async (recipeArg: string | undefined, flags: RunFlags, command: Command) => {
      const g = globals();
      let recipe: Recipe;
      let folder: RunFolder;
      if (flags.resume) {
        folder = new RunFolder(flags.resume);
        folder.readState();
        const file = folder.path('recipe.resolved.yaml');
        recipe = validateRecipe(parseYaml(readFileSync(file, 'utf8')), file);
      } else {
        if (!recipeArg) throw new TopiaryError('E_USAGE', 'missing the recipe file', { where: 'run', hint: 'topiary run RECIPE, or topiary run --resume DIR' });
        recipe = resolveRecipePaths(loadRecipe(recipeArg), dirname(resolve(recipeArg)));
        folder = new RunFolder(g.out ?? recipe.output ?? defaultRunDir(recipeArg));
        if (folder.exists()) {
          throw new TopiaryError('E_USAGE', 'this run folder already holds a run', { where: folder.dir, hint: `continue it with --resume ${folder.dir}, or choose another --out` });
        }
      }
      const backendFromFlag = command.parent?.getOptionValueSource('backend') === 'cli';
      const options: GlobalOptions = { ...g, backend: backendFromFlag ? g.backend : recipe.backend, seed: recipe.seed };
      const run = await createRunContext(options, recipe.plugins);
      try {
        process.exitCode = await executeRecipe(run, recipe, folder, Boolean(flags.resume));
      } finally {
        run.close();
      }
    });
}

/** Run (or resume) every stage of a recipe; returns the exit code (0, or 130 when interrupted). */
export async function executeRecipe(
  run: RunContext,
  recipe: Recipe,
  folder: RunFolder,
  resume: boolean,
  options: { signal?: AbortSignal } = {},
): Promise<number> {
  if (!recipe.model) throw new TopiaryError('E_RECIPE', 'is required for a run (the model the stages start from)', { file: recipe.file, where: 'model' });
  const choice = await run.activateBackend();
  // Check every stage before any compute: unknown methods, bad options and missing data fail here.
  const planned: PlannedStage[] = recipe.stages.map((stage, index) => {
    const runner = stageRunners[stage.kind];
    return { stage, index, prepared: runner.prepare(run, stage, recipe) };
  });

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
  const loaded = await loadModelFromFlags({ model: modelPath, tokenizer: state.modelDir ? undefined : recipe.model.tokenizer }, { needTokenizer: true });
  let model: CausalLM = loaded.model;
  const env: StageEnv = { run, backend: choice.backend, tokenizer: loaded.tokenizer!, tokenizerPath: loaded.tokenizerPath!, seed: recipe.seed };
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
      const place = { modelPath: state.modelDir ? folder.path(state.modelDir) : recipe.model.from, runDir: folder.dir };
      const outcome = await stageRunners[plan.stage.kind].run(env, model, plan, recipe, abort.signal, place);
      const result: StageResult = { ...outcome.result, index: plan.index, seconds: outcome.result.seconds || (performance.now() - started) / 1000 };
      if (outcome.model !== model) {
        model.dispose();
        model = outcome.model;
      }
      if (abort.signal.aborted && outcome.partial) break; // a stage cut short is redone on resume
      results.stages.push(result);
      if (outcome.changedModel) {
        state.modelDir = await folder.checkpoint(plan.index + 1, (dir) => saveModelWithTokenizer(model, dir, env.tokenizerPath));
        run.events.emit({ type: 'checkpoint', path: folder.path(state.modelDir), step: plan.index + 1 });
      }
      state.completed = plan.index + 1;
      folder.writeResults(results);
      folder.writeState(state);
    }
    if (state.completed === planned.length) {
      await folder.finalModel((dir) => saveModelWithTokenizer(model, dir, env.tokenizerPath));
      results.status = 'completed';
    } else {
      results.status = 'interrupted';
    }
    results.finished = new Date().toISOString();
    folder.writeResults(results);
    const report = writeReport(folder.dir);
    const summary = { run: folder.dir, status: results.status, stages: results.stages.length, report, model: existsSync(folder.path('model')) ? folder.path('model') : null, results: results.stages };
    if (run.options.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else printSummary(results, folder, report);
    return results.status === 'completed' ? 0 : 130;
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

function printSummary(results: RunResults, folder: RunFolder, report: string): void {
  const lines = [`run ${results.status}: ${folder.dir}`];
  for (const s of results.stages) {
    const parts = [`  ${s.index + 1}. ${s.kind}${s.name !== s.kind ? ` ${s.name}` : ''}`, `${s.seconds.toFixed(1)} s`];
    if (s.sparsity !== undefined) parts.push(`sparsity ${(s.sparsity * 100).toFixed(1)}%`);
    if (s.parametersBefore !== undefined && s.parametersAfter !== undefined && s.parametersBefore !== s.parametersAfter) {
      parts.push(`parameters ${s.parametersBefore} → ${s.parametersAfter}`);
    }
    for (const [file, p] of Object.entries(s.eval?.perplexity ?? {})) parts.push(`ppl(${basename(file)}) ${p.ppl.toFixed(3)}`);
    for (const [task, t] of Object.entries(s.eval?.tasks ?? {})) parts.push(`${task} acc ${(t.acc * 100).toFixed(1)}%`);
    lines.push(parts.join(' · '));
  }
  lines.push(`report: ${report}`);
  if (results.status === 'completed') lines.push(`model: ${join(folder.dir, 'model')}`);
  else lines.push(`continue with: topiary run --resume ${folder.dir}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

export { architectureOf, preparePruner, runPruneStage, runEvalStage, validateEvalStage };
