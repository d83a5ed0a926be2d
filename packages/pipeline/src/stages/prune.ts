/**
 * The prune stage: any installed Pruner plugin. Its options are the pruner's own schema (plus `method` and an
 * optional stage-level `calibration`); calibration windows are drawn exactly when the method or the saliency it is
 * given needs data (`Pruner.needsCalibration`, `Saliency.needs`).
 */
import {
  needsData,
  parseOptions,
  resolveNamed,
  Tokens,
  TopiaryError,
  z,
  type CausalLM,
  type OptionsOf,
  type PruneContext,
  type PruneReport,
  type Pruner,
  type Raw,
  type Saliency,
  type Stage,
  type StagePrepareContext,
} from '@topiary/kernel';
import type { StageResult } from '@topiary/report';
import { optionsJsonSchema, resolveAllOrNone } from '@topiary/kernel';
import { SlimmableStream, type LlamaModel } from '@topiary/model-llama';
import { architectureOf, calibrationWindows, type CalibrationSpec, type StageEnv } from './env.js';

/** A stage's own calibration (`{ path, samples, seqlen, seed }`), overriding the recipe's `data.calibration`. */
export const stageCalibration = z
  .object({
    path: z.string().meta({ description: 'text file, .jsonl or folder of documents', path: true }),
    samples: z.number().int().min(1).optional(),
    seqlen: z.number().int().min(2).optional(),
    seed: z.number().int().min(0).optional(),
  })
  .strict();

/** What the stage itself reads; every other key belongs to the method and is checked by its schema. */
export const pruneStageOptions = z
  .object({
    method: z.string().meta({ description: 'the pruner: magnitude, wanda, sparsegpt, llm-pruner, depth or an installed plugin' }),
    calibration: stageCalibration.optional().meta({ description: "this stage's calibration, overriding data.calibration" }),
  })
  .catchall(z.unknown());

export interface PruneStageInput {
  method: string;
  /** The pruner's own options, validated by its schema (errors name `where` + the field). */
  options: Raw;
  where: string;
  /** Where `method` came from, for the unknown-method message (`--method` or `stages[0].prune.method`). */
  methodWhere: string;
  calibration?: CalibrationSpec;
  /** Calibration windows already drawn (from `calibration`); skips drawing them again. */
  windows?: Int32Array[];
  /** Where the calibration came from (a flag or recipe path), for errors. */
  calibrationWhere: string;
  /** The recipe file, for errors. */
  file?: string;
  /** A streamed run's hooks (write each finished block; skip blocks an interrupted run wrote). */
  streaming?: Pick<PruneContext, 'blockDone' | 'resumedBlocks' | 'activationBytes' | 'spillDir'>;
}

/** Resolve a pruner and validate its options against its schema, before anything runs. */
export function preparePruner(
  env: Pick<StageEnv, 'container'>,
  input: Pick<PruneStageInput, 'method' | 'options' | 'where' | 'methodWhere' | 'file'>,
): { pruner: Pruner; options: Record<string, unknown> } {
  const pruner = resolveNamed(env.container, Tokens.Pruner, input.method, 'pruner', input.methodWhere) as Pruner;
  const options = parseOptions(pruner.options, input.options, input.where, input.file) as Record<string, unknown>;
  // the criterion it names must be installed: found now, not after the stages before it ran
  if (typeof options.saliency === 'string') resolveNamed(env.container, Tokens.Saliency, options.saliency, 'saliency', fieldAt(input.where, 'saliency'));
  return { pruner, options };
}

/** `stages[0].prune.saliency`, or just `saliency` for a single-stage command (which names the flag). */
function fieldAt(where: string, key: string): string {
  return where === '' ? key : `${where}.${key}`;
}

/** Whether a run of `pruner` with `options` needs calibration data: its own say, or the data its saliency needs. */
export function pruneNeedsData(env: Pick<StageEnv, 'container'>, pruner: Pruner, options: Record<string, unknown>, where: string): boolean {
  const own = typeof pruner.needsCalibration === 'function' ? pruner.needsCalibration(options) : pruner.needsCalibration;
  if (own) return true;
  const name = options.saliency;
  if (typeof name !== 'string') return false;
  return needsData(resolveNamed(env.container, Tokens.Saliency, name, 'saliency', fieldAt(where, 'saliency')));
}

export interface PruneStageOutput {
  model: CausalLM;
  report: PruneReport;
  result: StageResult;
  calibration?: readonly Int32Array[];
}

export async function runPruneStage(env: StageEnv, model: CausalLM, input: PruneStageInput, index = 0): Promise<PruneStageOutput> {
  const { pruner, options } = preparePruner(env, input);
  const needsCalibration = pruneNeedsData(env, pruner, options, input.where);
  let calibration: Int32Array[] | undefined = input.windows;
  if (calibration) {
    // drawn by the caller
  } else if (input.calibration && needsCalibration) {
    // only a method that needs data draws it: a recipe's data.calibration must not fail a magnitude stage
    calibration = await calibrationWindows(env, model, input.calibration, input.calibrationWhere, pruner.calibrationDefaults);
  } else if (!input.calibration && needsCalibration) {
    throw new TopiaryError('E_USAGE', `method ${pruner.name}${options.owl ? ' with owl' : ''} needs calibration data`, {
      where: input.calibrationWhere,
      hint: 'give a text file in the model’s domain (recipe: data.calibration.path; CLI: --calibration FILE)',
    });
  }
  const before = architectureOf(model);
  const ctx: PruneContext = {
    backend: env.backend,
    events: env.events,
    calibration,
    saliency: (name: string): Saliency => resolveNamed(env.container, Tokens.Saliency, name, 'saliency', fieldAt(input.where, 'saliency')),
    ...input.streaming,
  };
  const { model: pruned, report } = await pruner.prune(model, options, ctx);
  const details = report.details ?? {};
  const saliency = (details.groupScores ?? details.saliency) as Record<string, number[]> | undefined;
  const result: StageResult = {
    index,
    kind: 'prune',
    name: report.method,
    seconds: report.seconds,
    parametersBefore: report.parametersBefore,
    parametersAfter: report.parametersAfter,
    ...(report.sparsity !== undefined ? { sparsity: report.sparsity } : {}),
    layers: report.layers.map((l) => ({ param: l.param, layer: l.layer, sparsity: l.sparsity })),
    architectureBefore: before,
    architectureAfter: architectureOf(pruned),
    ...(saliency && typeof saliency === 'object' ? { saliency } : {}),
    details: {
      ...details,
      options: jsonSafe(options),
      ...(calibration && calibration.length > 0 ? { calibration: { samples: calibration.length, seqLen: calibration[0]!.length } } : {}),
    },
  };
  return { model: pruned, report, result, calibration };
}

/** Options as plain JSON (patterns and other objects kept; functions and typed arrays dropped). */
function jsonSafe(value: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (ArrayBuffer.isView(v) || typeof v === 'function' ? undefined : v))) as Record<string, unknown>;
}

interface PreparedPrune {
  method: string;
  options: Raw;
  calibration?: CalibrationSpec;
  calibrationWhere: string;
}

/** A stage's own calibration overrides the recipe's `data.calibration` field by field. */
function pruneCalibration(own: z.output<typeof stageCalibration> | undefined, ctx: StagePrepareContext): { spec?: CalibrationSpec; where: string } {
  const top = ctx.recipe.data.calibration;
  if (own) {
    return {
      spec: { path: own.path, samples: own.samples ?? top?.samples, seqLen: own.seqlen ?? top?.seqlen, seed: own.seed ?? top?.seed ?? ctx.recipe.seed },
      where: `${ctx.where}.calibration`,
    };
  }
  return { spec: top ? { path: top.path, samples: top.samples, seqLen: top.seqlen, seed: top.seed ?? ctx.recipe.seed } : undefined, where: 'data.calibration' };
}

/**
 * Whether a prune stage with this method reopens the model from disk when the run is streamed (a structured pruner
 * that removes by plan): the checkpoint before it must then hold the run's values exactly (float32).
 */
export function reopensModel(container: StagePrepareContext['container'], method: string): boolean {
  const pruner = resolveNamed(container, Tokens.Pruner, method, 'pruner', 'method') as Pruner;
  return pruner.streams !== true && pruner.streamsBySlimPlan === true;
}

export const pruneStage: Stage<typeof pruneStageOptions, PreparedPrune> = {
  kind: 'prune',
  description: 'prune the model once with an installed pruner (its options beside `method`)',
  options: pruneStageOptions,
  prepare(stageOptions: OptionsOf<typeof pruneStageOptions>, ctx) {
    const { method, calibration, ...options } = stageOptions;
    preparePruner(ctx, { method, options, where: ctx.where, methodWhere: `${ctx.where}.method`, file: ctx.recipe.file });
    const cal = pruneCalibration(calibration, ctx);
    return { method, options, calibration: cal.spec, calibrationWhere: cal.where };
  },
  streams(p, ctx) {
    const pruner = resolveNamed(ctx.container, Tokens.Pruner, p.method, 'pruner', `${ctx.where}.method`) as Pruner;
    return pruner.streams === true || pruner.streamsBySlimPlan === true;
  },
  async run(model, p, ctx) {
    // A structured method that removes by plan works on a model it can mask by group and slim as it is written: the
    // current model reopened from disk (the latest checkpoint, written in float32 for this — see `reopensModel` —
    // or the recipe's model), as `topiary prune` does. The streamed model's resident block leaves the heap first.
    const slimmable = model.streamed && reopensModel(ctx.container, p.method);
    if (slimmable) (model as Partial<Pick<LlamaModel, 'evict'>>).evict?.();
    const input: CausalLM = slimmable ? SlimmableStream.open(ctx.modelPath) : model;
    try {
      const out = await runPruneStage(
        ctx,
        input,
        { method: p.method, options: p.options, where: ctx.where, methodWhere: `${ctx.where}.method`, calibration: p.calibration, calibrationWhere: p.calibrationWhere, file: ctx.recipe.file },
        ctx.index,
      );
      if (slimmable && out.model !== input) input.dispose();
      return { model: out.model, result: out.result, changedModel: true };
    } catch (e) {
      if (slimmable) input.dispose();
      throw e;
    }
  },
  jsonSchema(container) {
    // one shape per installed pruner: `method` names it, its own options sit beside it
    const stage = optionsJsonSchema(pruneStageOptions) as { properties: Record<string, unknown> };
    return {
      description: 'prune once: `method` names an installed pruner, its options sit beside it',
      oneOf: resolveAllOrNone(container, Tokens.Pruner).map((pruner) => {
        const own = optionsJsonSchema(pruner.options) as { properties?: Record<string, unknown>; required?: string[] };
        return {
          type: 'object',
          title: pruner.name,
          description: pruner.description,
          properties: { method: { const: pruner.name }, calibration: stage.properties.calibration, ...(own.properties ?? {}) },
          required: ['method', ...(own.required ?? [])],
          additionalProperties: false,
        };
      }),
    };
  },
};
