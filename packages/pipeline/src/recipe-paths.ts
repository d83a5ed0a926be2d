/**
 * Paths in a recipe are relative to the recipe file's folder (so a recipe works from any working directory); this
 * makes every path field absolute. Which fields are paths is said once, by the stage's schema: a field with
 * `.meta({ path: true })` (a string, a list of strings, or the string branch of a union), at any depth, or
 * `.meta({ path: 'when-file-like' })` for lists that mix names and files (eval tasks). The
 * result is what `recipe.resolved.yaml` records.
 */
import { isAbsolute, resolve } from 'node:path';
import { isRecord, optionsJsonSchema, type Raw, type Recipe, type Stage } from '@topiary/kernel';

type Abs = (p: string) => string;

interface JsonNode {
  /** `true`: every string is a path; `'when-file-like'`: only strings with a path separator or a file extension
   * (task lists mix names like `piqa` with files like `./mine.jsonl`). */
  path?: boolean | 'when-file-like';
  /** Words that are not paths (`distillFrom: source`). */
  keywords?: string[];
  properties?: Record<string, JsonNode>;
  anyOf?: JsonNode[];
  oneOf?: JsonNode[];
  items?: JsonNode;
}

/** A string that names a file rather than a registered name: a path separator, or a file extension. */
export function isFileLike(text: string): boolean {
  return /[\\/]/.test(text) || /\.[A-Za-z0-9]+$/.test(text);
}

function resolveValue(value: unknown, node: JsonNode | undefined, abs: Abs): unknown {
  if (!node) return value;
  if (node.path) {
    const isPath = (v: string) => !(node.keywords ?? []).includes(v) && (node.path === true || isFileLike(v));
    const one = (v: unknown) => (typeof v === 'string' && isPath(v) ? abs(v) : v);
    if (typeof value === 'string') return one(value);
    if (Array.isArray(value)) return value.map(one);
  }
  if (isRecord(value)) {
    const branches = [node, ...(node.anyOf ?? []), ...(node.oneOf ?? [])];
    const props = Object.assign({}, ...branches.map((b) => b.properties ?? {})) as Record<string, JsonNode>;
    const out: Raw = { ...value };
    for (const [key, child] of Object.entries(props)) if (out[key] !== undefined) out[key] = resolveValue(out[key], child, abs);
    return out;
  }
  return value;
}

/** A stage's options with every path field its schema marks made absolute. */
export function resolveStagePaths(stage: Pick<Stage, 'options'>, options: Raw, abs: Abs): Raw {
  return resolveValue(options, optionsJsonSchema(stage.options) as JsonNode, abs) as Raw;
}

/** The recipe with its model, data and every stage's path fields absolute (unknown stage kinds are left as written). */
export function resolveRecipePaths(recipe: Recipe, baseDir: string, stages: readonly Pick<Stage, 'kind' | 'options'>[]): Recipe {
  const abs: Abs = (p) => (isAbsolute(p) ? p : resolve(baseDir, p));
  return {
    ...recipe,
    ...(recipe.model ? { model: { from: abs(recipe.model.from), ...(recipe.model.tokenizer ? { tokenizer: abs(recipe.model.tokenizer) } : {}) } } : {}),
    data: {
      ...(recipe.data.calibration ? { calibration: { ...recipe.data.calibration, path: abs(recipe.data.calibration.path) } } : {}),
      ...(recipe.data.train ? { train: abs(recipe.data.train) } : {}),
      ...(recipe.data.valid ? { valid: abs(recipe.data.valid) } : {}),
    },
    stages: recipe.stages.map((s) => {
      const stage = stages.find((k) => k.kind === s.kind);
      return stage ? { ...s, options: resolveStagePaths(stage, s.options, abs) } : s;
    }),
    ...(recipe.output ? { output: abs(recipe.output) } : {}),
  };
}
