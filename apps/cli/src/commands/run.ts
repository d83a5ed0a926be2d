/**
 * `topiary run RECIPE`: a multi-stage recipe (prune stages in sequence, finetune, train, eval) into a run folder,
 * and `topiary run --resume DIR` to continue an interrupted one. Everything is validated before anything runs.
 * Relative paths in a recipe are resolved against the recipe file's folder.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { TopiaryError, validateRecipe, type Recipe } from '@topiary/kernel';
import { executeRecipe as executeStages, installedStages, RunFolder } from '@topiary/pipeline';
import type { RunResults } from '@topiary/report';
import { createRunContext, type GlobalOptions, type RunContext } from '../context.js';
import { dtypeFromFlag, DTYPE_HELP } from '../model-args.js';
import { loadWholeRecipe, resolveRecipeFiles } from '../recipes.js';

interface RunFlags {
  dtype?: string;
  resume?: string;
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
    .option('--dtype <f32|f16|bf16>', `${DTYPE_HELP}; for checkpoints and the final model`)
    .addHelpText(
      'after',
      `
The run folder (--out, else the recipe's output, else runs/<recipe>-<time>) gets recipe.resolved.yaml,
state.json, metrics.jsonl, checkpoints/stage-N/ (the model after each stage), model/ (the final model),
results.json and report.html. The whole recipe is checked first — every stage's options and every file it names —
and every problem is reported at once (exit 2) before the folder is created.
Ctrl-C stops after the current stage step and leaves a consistent folder;
\`topiary run --resume DIR\` continues it. Relative paths in a recipe are relative to the recipe file.

Examples:
  $ topiary run recipes/quickstart-wanda-50.yaml
  $ topiary run recipes/quickstart-wanda-2of4.yaml --out runs/wanda24
  $ topiary run --resume runs/wanda24`,
    )
    .action(async (recipeArg: string | undefined, flags: RunFlags, command: Command) => {
      const g = globals();
      const dtype = dtypeFromFlag(flags.dtype); // checked before any work
      let recipe: Recipe;
      let folder: RunFolder;
      if (flags.resume) {
        folder = new RunFolder(flags.resume);
        folder.readState();
        const file = folder.path('recipe.resolved.yaml');
        recipe = validateRecipe(parseYaml(readFileSync(file, 'utf8')), file);
      } else {
        if (!recipeArg) throw new TopiaryError('E_USAGE', 'missing the recipe file', { where: 'run', hint: 'topiary run RECIPE, or topiary run --resume DIR' });
        recipe = loadWholeRecipe(recipeArg);
        // the recipe's output is relative to the recipe file, like every path in it
        const output = recipe.output === undefined ? undefined : resolve(dirname(resolve(recipeArg)), recipe.output);
        folder = new RunFolder(g.out ?? output ?? defaultRunDir(recipeArg));
        if (folder.exists()) {
          throw new TopiaryError('E_USAGE', 'this run folder already holds a run', { where: folder.dir, hint: `continue it with --resume ${folder.dir}, or choose another --out` });
        }
      }
      const backendFromFlag = command.parent?.getOptionValueSource('backend') === 'cli';
      const options: GlobalOptions = { ...g, backend: backendFromFlag ? g.backend : recipe.backend, seed: recipe.seed };
      const run = await createRunContext(options, recipe.plugins);
      try {
        // paths are relative to the recipe file; which fields are paths, each stage's schema says
        if (!flags.resume) recipe = resolveRecipeFiles(recipe, dirname(resolve(recipeArg!)), installedStages(run));
        process.exitCode = await executeRecipe(run, recipe, folder, Boolean(flags.resume), { save: { dtype } });
      } finally {
        run.close();
      }
    });
}

/** Run (or resume) every stage of a recipe (the pipeline does it) and print the outcome; returns the exit code. */
export async function executeRecipe(run: RunContext, recipe: Recipe, folder: RunFolder, resume: boolean, options: Parameters<typeof executeStages>[4] = {}): Promise<number> {
  const outcome = await executeStages(run, recipe, folder, resume, options);
  const { results, report, model } = outcome;
  if ((run.options as GlobalOptions).json) {
    process.stdout.write(`${JSON.stringify({ run: folder.dir, status: results.status, stages: results.stages.length, report, model, results: results.stages })}\n`);
  } else {
    printSummary(results, folder, report);
  }
  return outcome.code;
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

