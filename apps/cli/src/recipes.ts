/** Reading a recipe file for a command: every problem of its envelope at once, not only the first; its paths. */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadRecipe, recipeErrors, TopiaryError, type Recipe, type Stage } from '@topiary/kernel';
import { looksLikeHubId, resolveRecipePaths, throwAll } from '@topiary/pipeline';

/** `loadRecipe`, but a recipe with several envelope problems reports them all (a `RecipeErrors`). */
export function loadWholeRecipe(file: string): Recipe {
  try {
    return loadRecipe(file);
  } catch (e) {
    if (!(e instanceof TopiaryError) || e.code !== 'E_RECIPE') throw e;
    let raw: unknown;
    try {
      raw = parseYaml(readFileSync(file, 'utf8'));
    } catch {
      throw e; // not YAML: the loader's own error names the line
    }
    throwAll(recipeErrors(raw, file));
    throw e;
  }
}

/**
 * The recipe's paths made absolute from its folder (`resolveRecipePaths`), except a model that reads as a Hugging
 * Face Hub id and is no local path: left as written, so it is read from the local Hugging Face cache (or reported as
 * a Hub id that is not cached) rather than looked for as a missing file in the recipe's folder.
 */
export function resolveRecipeFiles(recipe: Recipe, baseDir: string, stages: readonly Pick<Stage, 'kind' | 'options'>[]): Recipe {
  const resolved = resolveRecipePaths(recipe, baseDir, stages);
  const from = recipe.model?.from;
  if (from === undefined || !looksLikeHubId(from) || existsSync(resolve(baseDir, from))) return resolved;
  return { ...resolved, model: { ...resolved.model!, from } };
}
