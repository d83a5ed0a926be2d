/** The prune stage: any installed Pruner plugin, with calibration windows when the method needs them. */
import { resolveNamed, Tokens, TopiaryError, type CausalLM, type PruneContext, type PruneReport, type Pruner, type Raw, type Saliency } from '@topiary/kernel';
import type { StageResult } from '@topiary/report';
import { architectureOf, calibrationWindows, type CalibrationSpec, type StageEnv } from './env.js';

export interface PruneStageInput {
  method: string;
  /** The pruner's own options, validated by the pruner (errors name `where` + the field). */
  options: Raw;
  where: string;
  /** Where `method` came from, for the unknown-method message (`--method` or `stages[0].prune.method`). */
  methodWhere: string;
  calibration?: CalibrationSpec;
  /** Calibration windows already drawn (from `calibration`); skips drawing them again. */
  windows?: Int32Array[];
  /** Where the calibration came from (a flag or recipe path), for errors. */
  calibrationWhere: string;
}

/** Resolve and validate a pruner before anything runs (recipes are checked at the door). */
export function preparePruner(env: Pick<StageEnv, 'run'>, input: Pick<PruneStageInput, 'method' | 'options' | 'where' | 'methodWhere'>): { pruner: Pruner; options: Record<string, unknown> } {
  const pruner = resolveNamed(env.run.container, Tokens.Pruner, input.method, 'pruner', input.methodWhere) as Pruner;
  return { pruner, options: pruner.validate(input.options, input.where) };
}

function needsData(pruner: Pruner, options: Record<string, unknown>): boolean {
  const saliency = options.saliency;
  return pruner.needsCalibration || Boolean(options.owl) || (typeof saliency === 'string' && saliency !== 'magnitude');
}

export interface PruneStageOutput {
  model: CausalLM;
  report: PruneReport;
  result: StageResult;
  calibration?: readonly Int32Array[];
}

export async function runPruneStage(env: StageEnv, model: CausalLM, input: PruneStageInput, index = 0): Promise<PruneStageOutput> {
  const { pruner, options } = preparePruner(env, input);
  let calibration: Int32Array[] | undefined = input.windows;
  if (calibration) {
    // drawn by the caller
  } else if (input.calibration && needsData(pruner, options)) {
    // only a method that needs data draws it: a recipe's data.calibration must not fail a magnitude stage
    calibration = await calibrationWindows(env, model, input.calibration, input.calibrationWhere, pruner.calibrationDefaults);
  } else if (!input.calibration && needsData(pruner, options)) {
    throw new TopiaryError('E_USAGE', `method ${pruner.name}${options.owl ? ' with owl' : ''} needs calibration data`, {
      where: input.calibrationWhere,
      hint: 'give a text file in the model’s domain (recipe: data.calibration.path; CLI: --calibration FILE)',
    });
  }
  const before = architectureOf(model);
  const ctx: PruneContext = {
    backend: env.backend,
    events: env.run.events,
    calibration,
    saliency: (name: string): Saliency => resolveNamed(env.run.container, Tokens.Saliency, name, 'saliency', `${input.where}.saliency`),
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
