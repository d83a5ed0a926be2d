/**
 * Paths in a recipe are relative to the recipe file's folder (so a recipe works from any working directory);
 * this makes every path field absolute. One place for the rule, used by `run` and `train`; the result is what
 * `recipe.resolved.yaml` records.
 */
import { isAbsolute, resolve } from 'node:path';
import { isRecord, type Raw, type Recipe, type RecipeStage } from '@topiary/kernel';

type Abs = (p: string) => string;

function mapKeys(record: Raw, keys: readonly string[], abs: Abs): Raw {
  const out = { ...record };
  for (const key of keys) if (typeof out[key] === 'string') out[key] = abs(out[key] as string);
  return out;
}

function stageOptions(stage: RecipeStage, abs: Abs): Raw {
  const options = { ...stage.options };
  switch (stage.kind) {
    case 'eval':
      if (options.perplexity !== undefined) {
        const list = Array.isArray(options.perplexity) ? options.perplexity : [options.perplexity];
        options.perplexity = list.map((p) => (typeof p === 'string' ? abs(p) : p));
      }
      return options;
    case 'prune':
      if (isRecord(options.calibration)) options.calibration = mapKeys(options.calibration, ['path'], abs);
      return options;
    case 'finetune': {
      const resolved = mapKeys(options, ['data', 'valid', 'eval', 'distillFrom'], abs);
      if (options.distillFrom === 'source') resolved.distillFrom = 'source'; // a keyword: the recipe's input model
      return resolved;
    }
    case 'train':
      if (typeof options.model === 'string') options.model = abs(options.model);
      else if (isRecord(options.model)) options.model = mapKeys(options.model, ['from', 'architecture'], abs);
      if (isRecord(options.data)) options.data = mapKeys(options.data, ['train', 'valid', 'tokenizer'], abs);
      return mapKeys(options, ['out'], abs);
  }
}

export function resolveRecipePaths(recipe: Recipe, baseDir: string): Recipe {
  const abs: Abs = (p) => (isAbsolute(p) ? p : resolve(baseDir, p));
  return {
    ...recipe,
    ...(recipe.model ? { model: { from: abs(recipe.model.from), ...(recipe.model.tokenizer ? { tokenizer: abs(recipe.model.tokenizer) } : {}) } } : {}),
    data: {
      ...(recipe.data.calibration ? { calibration: { ...recipe.data.calibration, path: abs(recipe.data.calibration.path) } } : {}),
      ...(recipe.data.train ? { train: abs(recipe.data.train) } : {}),
      ...(recipe.data.valid ? { valid: abs(recipe.data.valid) } : {}),
    },
    stages: recipe.stages.map((s) => ({ ...s, options: stageOptions(s, abs) })),
    ...(recipe.output ? { output: abs(recipe.output) } : {}),
  };
}
