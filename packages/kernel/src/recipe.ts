/**
 * Recipes: YAML or JSON files describing a run — model, backend, data, a list of stages, an output folder.
 * The kernel validates the envelope (`recipeEnvelope`, one schema) at the door; each stage's options are validated
 * by the stage's own schema, and a method's options by the plugin that owns the method, before anything runs.
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { TopiaryError, ioError } from './errors.js';
import { optionErrors, z } from './options.js';
import { isRecord, type Raw } from './validate.js';

export interface RecipeModel {
  /** HF folder, .safetensors file (config beside it) or llama2.c .bin. */
  from: string;
  tokenizer?: string;
}

/** The recipe's fields around its stages, declared once: validation, defaults, and the recipe JSON Schema. */
export const recipeEnvelope = z
  .object({
    name: z.string().optional().meta({ description: 'a name for the run (shown in the report)' }),
    description: z.string().optional(),
    model: z
      .union([z.string(), z.object({ from: z.string(), tokenizer: z.string().optional() }).strict()])
      .optional()
      .meta({ description: 'HF folder, .safetensors file or llama2.c .bin; or { from, tokenizer }' }),
    backend: z.string().default('wasm').meta({ description: 'tensor backend: wasm, native, cpu, node, node-gpu, gpujs or auto' }),
    seed: z.number().int().min(0).default(0).meta({ description: 'random seed (calibration draws, data order)' }),
    plugins: z.array(z.string()).default([]).meta({ description: 'plugins the recipe needs (each must be installed)' }),
    data: z
      .object({
        calibration: z
          .object({
            path: z.string().meta({ description: 'text file, .jsonl or folder of documents' }),
            samples: z.number().int().min(1).optional().meta({ description: "windows; default: the method's own, else 128" }),
            seqlen: z.number().int().min(2).optional().meta({ description: "window length; default: the method's own, else the model's context" }),
            seed: z.number().int().min(0).optional().meta({ description: 'seed of the calibration draw; default: the recipe’s seed' }),
          })
          .strict()
          .optional(),
        train: z.string().optional(),
        valid: z.string().optional(),
      })
      .strict()
      .default({}),
    stages: z.array(z.unknown()).meta({ description: 'the stages, in order: each a mapping with exactly one stage kind' }),
    output: z.string().optional().meta({ description: 'the run folder' }),
  })
  .strict();

export type CalibrationData = NonNullable<z.output<typeof recipeEnvelope>['data']['calibration']>;

export interface RecipeStage {
  /** The stage kind (`prune`, `eval`, ... or a plugin's own). */
  kind: string;
  /** The stage's options as written; validated by the stage's own schema. */
  options: Raw;
  /** Path of the options in the recipe, e.g. `stages[2].prune`. */
  where: string;
}

export interface Recipe {
  /** What the run is called (the report's title). */
  name?: string;
  description?: string;
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

/**
 * Every problem with a parsed recipe object, each naming the file and the path. `stageKinds` are the installed
 * stage kinds; without them any kind is accepted here (the pipeline checks them against its registered stages).
 */
export function recipeErrors(raw: unknown, file?: string, stageKinds?: readonly string[]): TopiaryError[] {
  if (!isRecord(raw)) return [new TopiaryError('E_RECIPE', 'a recipe must be a mapping at the top level', { file, where: '(root)' })];
  if (raw.stages === undefined) return [new TopiaryError('E_RECIPE', 'is required (a list of stages)', { file, where: 'stages' })];
  const errors = optionErrors(recipeEnvelope, raw, '', file);
  if (!Array.isArray(raw.stages) || raw.stages.length === 0) {
    return [...errors.filter((e) => e.where !== 'stages'), new TopiaryError('E_RECIPE', 'must be a non-empty list of stages', { file, where: 'stages' })];
  }
  const kinds = stageKinds?.join(', ') ?? 'prune, finetune, train, eval';
  raw.stages.forEach((stage: unknown, i: number) => {
    const where = `stages[${i}]`;
    if (!isRecord(stage) || Object.keys(stage).length !== 1) {
      errors.push(new TopiaryError('E_RECIPE', `each stage is a mapping with exactly one of: ${kinds}`, { file, where }));
      return;
    }
    const kind = Object.keys(stage)[0]!;
    if (stageKinds && !stageKinds.includes(kind)) {
      errors.push(new TopiaryError('E_RECIPE', `unknown stage "${kind}"`, { file, where, hint: `stages are: ${kinds}` }));
      return;
    }
    const options = stage[kind] ?? {};
    if (!isRecord(options)) errors.push(new TopiaryError('E_RECIPE', 'stage options must be a mapping', { file, where: `${where}.${kind}` }));
  });
  return errors;
}

/** Validate a parsed recipe object (the first problem is thrown; `recipeErrors` lists them all). */
export function validateRecipe(raw: unknown, file?: string, stageKinds?: readonly string[]): Recipe {
  const errors = recipeErrors(raw, file, stageKinds);
  if (errors.length > 0) throw errors[0]!;
  const envelope = recipeEnvelope.parse(raw);
  const stages = (envelope.stages as Record<string, unknown>[]).map((stage, i) => {
    const kind = Object.keys(stage)[0]!;
    return { kind, options: (stage[kind] ?? {}) as Raw, where: `stages[${i}].${kind}` };
  });
  const model = typeof envelope.model === 'string' ? { from: envelope.model } : envelope.model;
  return {
    ...(envelope.name !== undefined ? { name: envelope.name } : {}),
    ...(envelope.description !== undefined ? { description: envelope.description } : {}),
    ...(model ? { model } : {}),
    backend: envelope.backend,
    seed: envelope.seed,
    plugins: envelope.plugins,
    data: envelope.data,
    stages,
    ...(envelope.output !== undefined ? { output: envelope.output } : {}),
    file,
  };
}

/** Parse YAML or JSON text (JSON is YAML); syntax errors name the line. */
export function parseRecipeText(text: string, file = '(recipe)', stageKinds?: readonly string[]): Recipe {
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
  return validateRecipe(value, file, stageKinds);
}

export function loadRecipe(path: string, stageKinds?: readonly string[]): Recipe {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw ioError(e, path, 'read the recipe');
  }
  return parseRecipeText(text, path, stageKinds);
}

/** A stage option, as a typed sub-record, with its path. */
export function stageOptions(stage: RecipeStage): { raw: Raw; where: string } {
  return { raw: stage.options, where: stage.where };
}
