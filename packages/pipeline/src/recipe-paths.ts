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

/** One path a stage's options name: its value, its place (`stages[1].finetune.data`, `tasks[2]`) and its field. */
export interface PathField {
  path: string;
  where: string;
  /** The field's name (`data`, `out`, `tasks`). */
  key: string;
}

/**
 * Walk options along their schema: `onPath` is called for every string the schema marks as a path (and returns
 * its replacement); everything else is copied as is. The one walker both path resolution and path checks use.
 */
function walkPaths(value: unknown, node: JsonNode | undefined, at: string, key: string, onPath: (field: PathField) => string): unknown {
  if (!node) return value;
  if (node.path) {
    const isPath = (v: string) => !(node.keywords ?? []).includes(v) && (node.path === true || isFileLike(v));
    const one = (v: unknown, place: string) => (typeof v === 'string' && isPath(v) ? onPath({ path: v, where: place, key }) : v);
    if (typeof value === 'string') return one(value, at);
    if (Array.isArray(value)) return value.map((v, i) => one(v, `${at}[${i}]`));
  }
  if (isRecord(value)) {
    const branches = [node, ...(node.anyOf ?? []), ...(node.oneOf ?? [])];
    const props = Object.assign({}, ...branches.map((b) => b.properties ?? {})) as Record<string, JsonNode>;
    const out: Raw = { ...value };
    for (const [k, child] of Object.entries(props)) if (out[k] !== undefined) out[k] = walkPaths(out[k], child, at ? `${at}.${k}` : k, k, onPath);
    return out;
  }
  return value;
}

/** Every path a stage's options name, with its place in the recipe (`where` is the stage's own path). */
export function stagePathFields(stage: Pick<Stage, 'options'>, options: Raw, where: string): PathField[] {
  const found: PathField[] = [];
  walkPaths(options, optionsJsonSchema(stage.options) as JsonNode, where, '', (field) => (found.push(field), field.path));
  return found;
}

/** A stage's options with every path field its schema marks made absolute. */
export function resolveStagePaths(stage: Pick<Stage, 'options'>, options: Raw, abs: Abs): Raw {
  return walkPaths(options, optionsJsonSchema(stage.options) as JsonNode, '', '', ({ path }) => abs(path)) as Raw;
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
