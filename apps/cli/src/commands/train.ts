/** `topiary train RECIPE`: plain or pruning-aware pretraining from a recipe's `train` stage. */
import type { Command } from 'commander';
import { checkNumber, TopiaryError } from '@topiary/kernel';
import { activateBackend, builtinStages, errorsOf, recipePathErrors, throwAll } from '@topiary/pipeline';
import { resolveTrainOptions, train } from '@topiary/trainer';
import { dirname, resolve } from 'node:path';
import { createRunContext, type GlobalOptions } from '../context.js';
import { loadWholeRecipe, resolveRecipeFiles } from '../recipes.js';

interface TrainFlags {
  steps?: string;
  resume: boolean;
}

export function registerTrain(program: Command, globals: () => GlobalOptions): void {
  program
    .command('train')
    .description('Pretrain a LLaMA model, or pretrain while pruning it to a target size (pruning-aware pretraining)')
    .argument('<recipe>', 'recipe file (YAML or JSON) with a `train` stage')
    .option('--steps <n>', 'override the number of optimiser steps')
    .option('--no-resume', 'start fresh even if the run folder holds checkpoints')
    .addHelpText(
      'after',
      `
The run folder (--out, or the recipe's \`output\`) receives metrics.jsonl, checkpoints/, model/ (safetensors +
config.json with per-layer sizes), architecture.json and summary.json. Running the same command again resumes
from the newest complete checkpoint. Relative paths in the recipe are relative to the recipe file's folder.

Examples:
  $ topiary train recipes/efficientllm-a-pruning-aware.yaml
  $ topiary train recipes/efficientllm-c-uniform.yaml --out runs/b --json
  $ topiary --backend cpu train my-recipe.yaml --steps 50 --no-resume`,
    )
    .action(async (recipePath: string, flags: TrainFlags) => {
      const g = globals();
      const recipe = resolveRecipeFiles(loadWholeRecipe(recipePath), dirname(resolve(recipePath)), builtinStages);
      const stage = recipe.stages.find((s) => s.kind === 'train');
      if (!stage) {
        throw new TopiaryError('E_RECIPE', 'the recipe has no `train` stage', { file: recipePath, where: 'stages', hint: 'add `- train: { ... }`' });
      }
      const raw = { ...stage.options };
      if (flags.steps !== undefined) {
        delete raw.tokens;
        raw.steps = checkNumber(flags.steps, '--steps', { min: 1, integer: true });
      }
      if (flags.resume === false) raw.resume = false;
      const ctx = await createRunContext(g, recipe.plugins);
      try {
        let spec;
        const problems: TopiaryError[] = [];
        try {
          // schedules, saliency criteria and accumulators come from the run's installed plugins
          spec = resolveTrainOptions(raw, stage.where, ctx.container, {
            seed: recipe.seed,
            out: g.out ? resolve(g.out) : recipe.output,
            modelFrom: recipe.model?.from,
            tokenizer: recipe.model?.tokenizer,
            trainData: recipe.data.train,
          });
        } catch (e) {
          if (!(e instanceof TopiaryError)) throw e;
          problems.push(...(errorsOf(e) as TopiaryError[]).map((one) => (one.file ? one : one.inFile(recipePath))));
        }
        // and every file the model, the data and the train stage name: all the problems at once, before anything starts
        problems.push(...recipePathErrors({ ...recipe, stages: [stage] }, builtinStages));
        throwAll(problems);
        if (!spec) throw new TopiaryError('E_INTERNAL', 'the train options resolved to nothing', { where: stage.where });
        const choice = await activateBackend(ctx.container, g.backend !== 'wasm' ? g.backend : recipe.backend);
        ctx.events.log('info', choice.message);
        const result = await train(spec, { container: ctx.container, events: ctx.events });
        const summary = {
          out: result.out,
          steps: result.steps,
          tokens: result.tokens,
          sourceParams: result.sourceParams,
          params: result.params,
          validLoss: result.validLoss,
          validPerplexity: result.validPerplexity,
          resumedFrom: result.resumedFrom,
          seconds: result.seconds,
          architecture: result.architecture,
        };
        if (g.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
        else {
          const layers = result.architecture.layers.map((l, i) => `  layer ${i}: ${l.heads} heads (${l.kvHeads} kv), FFN ${l.ffn}`).join('\n');
          process.stdout.write(
            `trained ${result.steps} steps, ${result.tokens} tokens in ${result.seconds.toFixed(1)} s\n` +
              `parameters ${result.sourceParams} → ${result.params}; held-out perplexity ${result.validPerplexity.toFixed(3)}\n` +
              `hidden ${result.architecture.hidden}\n${layers}\nrun folder: ${result.out}\n`,
          );
        }
      } finally {
        ctx.close();
      }
    });
}
