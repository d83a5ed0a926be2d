/**
 * Recipes: YAML or JSON files describing a run — model, backend, data, a list of stages, an output folder.
 * The kernel validates the envelope and the common fields at the door; each stage's method options are
 * validated by the plugin that owns the method (`Pruner.validate`) before anything runs.
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { TopiaryError, ioError } from './errors.js';
import {
  checkNumber,
  checkString,
  fieldPath,
  isRecord,
  optionalNumber,
  optionalString,
  rejectUnknownKeys,
  requiredString,
  type Raw,
} from './validate.js';

export const STAGE_KINDS = ['prune', 'finetune', 'train', 'eval'] as const;
export type StageKind = (typeof STAGE_KINDS)[number];

export interface RecipeModel {
  /** HF folder, .safetensors file (config beside it) or llama2.c .bin. */
  from: string;
  tokenizer?: string;
}

export interface CalibrationData {
  path: string;
  /** Absent: the method's own default (its paper's; 128 when it declares none). */
  samples?: number;
  /** Absent: the method's own default, else the model's context. */
  seqlen?: number;
  seed: number;
}

export interface RecipeStage {
  kind: StageKind;
  /** The stage's options as written; validated by the owning plugin/app. */
  options: Raw;
  /** Path of the options in the recipe, e.g. `stages[2].prune`. */
  where: string;
}

export interface Recipe {
  model?: RecipeModel;
  backend: string;
  seed: number;
  plugins: string[];
  data: { calibration?: CalibrationData; train?: string; valid?: string };
  stages: RecipeStage[];
  output?: string;
  /** The file it came from, for error messages. */
  file?: string;
}

const TOP_LEVEL = ['model', 'backend', 'seed', 'plugins', 'data', 'stages', 'output', 'name', 'description'] as const;

function validateModel(raw: unknown, where: string): RecipeModel {
  if (typeof raw === 'string') return { from: checkString(raw, where) };
  if (!isRecord(raw)) throw new TopiaryError('E_RECIPE', 'must be a path or { from, tokenizer }', { where });
  rejectUnknownKeys(raw, where, ['from', 'tokenizer']);
  return { from: requiredString(raw, 'from', where), tokenizer: optionalString(raw, 'tokenizer', where) };
}

function validateCalibration(raw: unknown, where: string): CalibrationData {
  if (!isRecord(raw)) throw new TopiaryError('E_RECIPE', 'must be { path, samples, seqlen, seed }', { where });
  rejectUnknownKeys(raw, where, ['path', 'samples', 'seqlen', 'seed']);
  return {
    path: requiredString(raw, 'path', where),
    ...(raw.samples !== undefined ? { samples: checkNumber(raw.samples, fieldPath(where, 'samples'), { integer: true, min: 1 }) } : {}),
    ...(raw.seqlen !== undefined ? { seqlen: checkNumber(raw.seqlen, fieldPath(where, 'seqlen'), { integer: true, min: 2 }) } : {}),
    seed: optionalNumber(raw, 'seed', where, 0, { integer: true, min: 0 }),
  };
}

/** Validate a parsed recipe object. `file` is only used for messages. */
export function validateRecipe(raw: unknown, file?: string): Recipe {
  try {
    if (!isRecord(raw)) throw new TopiaryError('E_RECIPE', 'a recipe must be a mapping at the top level', { where: '(root)' });
    rejectUnknownKeys(raw, '', TOP_LEVEL);
    const recipe: Recipe = {
      backend: raw.backend === undefined ? 'wasm' : checkString(raw.backend, 'backend'),
      seed: raw.seed === undefined ? 0 : checkNumber(raw.seed, 'seed', { integer: true, min: 0 }),
      plugins: [],
      data: {},
      stages: [],
      file,
    };
    if (raw.model !== undefined) recipe.model = validateModel(raw.model, 'model');
    if (raw.output !== undefined) recipe.output = checkString(raw.output, 'output');
    if (raw.plugins !== undefined) {
      if (!Array.isArray(raw.plugins)) throw new TopiaryError('E_RECIPE', 'must be a list of plugin names', { where: 'plugins' });
      recipe.plugins = raw.plugins.map((p, i) => checkString(p, `plugins[${i}]`));
    }
    if (raw.data !== undefined) {
      if (!isRecord(raw.data)) throw new TopiaryError('E_RECIPE', 'must be a mapping', { where: 'data' });
      rejectUnknownKeys(raw.data, 'data', ['calibration', 'train', 'valid']);
      if (raw.data.calibration !== undefined) recipe.data.calibration = validateCalibration(raw.data.calibration, 'data.calibration');
      recipe.data.train = optionalString(raw.data, 'train', 'data');
      recipe.data.valid = optionalString(raw.data, 'valid', 'data');
    }
    if (raw.stages === undefined) throw new TopiaryError('E_RECIPE', 'is required (a list of stages)', { where: 'stages' });
    if (!Array.isArray(raw.stages) || raw.stages.length === 0) {
      throw new TopiaryError('E_RECIPE', 'must be a non-empty list of stages', { where: 'stages' });
    }
    raw.stages.forEach((stage: unknown, i: number) => {
      const where = `stages[${i}]`;
      if (!isRecord(stage) || Object.keys(stage).length !== 1) {
        throw new TopiaryError('E_RECIPE', `each stage is a mapping with exactly one of: ${STAGE_KINDS.join(', ')}`, { where });
      }
      const kind = Object.keys(stage)[0]!;
      if (!(STAGE_KINDS as readonly string[]).includes(kind)) {
        throw new TopiaryError('E_RECIPE', `unknown stage "${kind}"`, { where, hint: `stages are: ${STAGE_KINDS.join(', ')}` });
      }
      const options = stage[kind] ?? {};
      if (!isRecord(options)) throw new TopiaryError('E_RECIPE', 'stage options must be a mapping', { where: fieldPath(where, kind) });
      if (kind === 'prune') requiredString(options, 'method', `${where}.prune`);
      recipe.stages.push({ kind: kind as StageKind, options, where: `${where}.${kind}` });
    });
    return recipe;
  } catch (e) {
    if (e instanceof TopiaryError && file && !e.file) throw e.inFile(file);
    throw e;
  }
}

/** Parse YAML or JSON text (JSON is YAML); syntax errors name the line. */
export function parseRecipeText(text: string, file = '(recipe)'): Recipe {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const err = doc.errors[0]!;
    const line = err.linePos?.[0]?.line;
    throw new TopiaryError('E_RECIPE', `not valid YAML/JSON: ${err.message.split('\n')[0]}`, {
      file,
      where: line !== undefined ? `line ${line}` : undefined,
    });
  }
  let value: unknown;
  try {
    value = doc.toJS();
  } catch (e) {
    // e.g. yaml's alias-count guard ("billion laughs"): a ReferenceError, not a recipe error, unless we say so
    throw new TopiaryError('E_RECIPE', `cannot read the recipe: ${(e as Error).message}`, { file, where: '(aliases)', cause: e });
  }
  return validateRecipe(value, file);
}

export function loadRecipe(path: string): Recipe {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw ioError(e, path, 'read the recipe');
  }
  return parseRecipeText(text, path);
}

/** A stage option, as a typed sub-record, with its path. */
export function stageOptions(stage: RecipeStage): { raw: Raw; where: string } {
  return { raw: stage.options, where: stage.where };
}
