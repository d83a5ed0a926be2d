/**
 * The `train` stage of a recipe, declared once as a schema (`trainOptions`: types, defaults, checks with exact
 * paths, JSON Schema) and resolved at the door by `resolveTrainOptions`: every field is checked, the schedules are
 * looked up by name in the run's container and their options checked by the scheduler's own schema, all before a
 * single tensor exists. Every failure names the field. Fields that name files carry `.meta({ path: true })` (recipe
 * paths are made absolute from the schema; `keywords` are words that are not paths, like `tokenizer: bytes`).
 *
 * ```yaml
 * stages:
 *   - train:
 *       model: { dim: 128, nLayers: 4, nHeads: 4, hiddenDim: 384, vocabSize: 512 }   # or from: ./some-model
 *       data: { train: ../shared/data/text/tinystories_val_head.txt, tokenizer: assets/models/stories260K/tok512.bin, seqLen: 64 }
 *       batchSize: 8
 *       tokens: 2000000            # or steps: 4000
 *       lr: { schedule: cosine, lr: 3e-3, warmup: 100, minLr: 3e-4 }
 *       prune:                     # optional: pruning-aware pretraining
 *         targetRatio: 0.25        # or targetParams: 400000
 *         schedule: { name: linear, start: 200, end: 2000, every: 10 }
 *         saliency: taylor-fisher
 *         accumulator: { name: ema, beta: 0.9 }
 *         kinds: [head, ffn-channel, hidden-channel]
 * ```
 */
import {
  crossFieldIssue,
  parseOptions,
  resolveAllOrNone,
  resolveNamed,
  Tokens,
  TopiaryError,
  z,
  type DependencyContainer,
  type GroupAggregation,
  type GroupKind,
  type OptionsOf,
  type Raw,
  type ScheduleKind,
  type Scheduler,
} from '@topiary/kernel';
import type { AdamWOptions } from './optimizer.js';
import { aggregationField, NORMALISATIONS, type MinKeep, type Normalisation } from '@topiary/structured-core';

export interface ModelSpec {
  /** Raw config fields for createLlama (dim, nLayers, nHeads, nKvHeads, hiddenDim, vocabSize, ...). */
  config?: Raw;
  /** A model to start from (HF folder, .safetensors, llama2.c .bin). */
  from?: string;
  /** A config.json (or a folder holding one) whose shape — per-layer sizes included — is trained from scratch. */
  architecture?: string;
}

export interface DataSpec {
  train: string;
  /** A held-out text file (every block of `train` then trains); else the last `validFraction` of `train`. */
  valid?: string;
  tokenizer: string;
  seqLen: number;
  validFraction: number;
}

/** Distillation while training: the teacher (`source`: the stage's starting model) and the loss mix. */
export interface DistillSpec {
  from: string;
  temperature: number;
  alpha: number;
}

/** A plugin picked by name with its options (`{ name: x, ...options }` or a bare name in a recipe). */
export interface NamedOptions {
  name: string;
  options: Raw;
  where: string;
}

/** A schedule resolved from the run's container; `options` are the scheduler's (shares of the run turned into steps). */
export interface ScheduleSpec extends NamedOptions {
  scheduler: Scheduler;
}

export interface PruneSpec {
  targetParams?: number;
  targetRatio?: number;
  /** A sparsity schedule; the trainer adds `from: 0` (unless given) and `to` (from the target) when it starts. */
  schedule: ScheduleSpec;
  saliency: string;
  /** How member importances combine (`sum` for group-level criteria such as taylor-fisher). */
  aggregation: GroupAggregation;
  /** How a group-level criterion's steps add up (see `ESTIMATES`). */
  estimate: Estimate;
  saliencyEvery: number;
  accumulator: NamedOptions;
  kinds: GroupKind[];
  normalise: TrainNormalisation;
  /** With `normalise: calibrated`: groups per kind whose loss change is measured at each pruning step. */
  calibrationGroups: number;
  /** Slim when at least this fraction of the physical model is masked (and always when the target is reached). */
  slimAt: number;
  minKeep: MinKeep;
}

export interface TrainSpec {
  model: ModelSpec;
  data: DataSpec;
  seed: number;
  batchSize: number;
  accumulate: number;
  /** Optimiser steps (derived from `tokens` when that is given). */
  steps: number;
  /** A learning-rate schedule (`total` defaults to the run's steps when the scheduler has one). */
  lr: ScheduleSpec;
  optimizer: AdamWOptions;
  evalEvery: number;
  evalBatches: number;
  checkpointEvery: number;
  keepCheckpoints: number;
  /** Check every weight for NaN/Inf every this many steps (loss and gradients are checked every step). */
  guardEvery: number;
  resume: boolean;
  prune?: PruneSpec;
  distill?: DistillSpec;
  out: string;
}

/** What a recipe gives a train stage when the stage does not say: the recipe's seed, output, model and data. */
export interface TrainDefaults {
  seed?: number;
  out?: string;
  modelFrom?: string;
  trainData?: string;
  tokenizer?: string;
}

/**
 * How the per-step Taylor terms of a group-level criterion become its score:
 *  - `expected` (default): the accumulator averages the signed terms (−Σw·g + ½Σw²g²) over steps and the group scores
 *    |average| — the Taylor estimate of the expected loss change: gradient noise averages out of the first-order term
 *    and the second-order term becomes the Fisher diagonal E[g²], which adds up over a group's elements, so scores
 *    per parameter compare groups of any size.
 *  - `per-step`: each step's |ΔL| is accumulated. The |·| of a one-batch sum over n noisy terms grows like √n, not n,
 *    so per parameter it favours removing big groups (hidden channels span every layer) — kept for comparison.
 * Element- and vector-level criteria are non-negative per member either way.
 */
export const ESTIMATES = ['expected', 'per-step'] as const;

/**
 * How scores of different kinds are compared: structured-core's `per-param`, `zscore`, `none`, or `calibrated` —
 * per parameter after each kind's estimates are scaled by its measured / estimated loss change at the margin
 * (`kindScales`: the cheapest `calibrationGroups` groups of each kind removed one at a time on a held-out batch).
 */
export const TRAIN_NORMALISATIONS = [...NORMALISATIONS, 'calibrated'] as const;
export type TrainNormalisation = Normalisation | 'calibrated';
export type Estimate = (typeof ESTIMATES)[number];

export const GROUP_KINDS = ['head', 'kv-group', 'ffn-channel', 'hidden-channel'] as const satisfies readonly GroupKind[];
const DEFAULT_KINDS: (typeof GROUP_KINDS)[number][] = ['head', 'ffn-channel', 'hidden-channel'];
const REQUIRED_CONFIG = ['vocabSize', 'dim', 'nLayers', 'nHeads', 'hiddenDim'] as const;

/** `"10%"`: a share of the run's steps, so one recipe scales with its token budget. */
const SHARE = /^\s*\d+(\.\d+)?\s*%\s*$/;

const count = () => z.number().int().min(1);
const stepsOrShare = (description: string) =>
  z
    .union([count(), z.string().regex(SHARE, { message: 'must be a whole number of steps or a share of the run like "10%"' })])
    .optional()
    .meta({ description });

const nameField = () => z.string().min(1).meta({ description: 'the name it is registered under' });

/** A plugin named in a recipe as `{ name, ...options }` or as a bare name (a string): the string becomes `{ [key]: it }`. */
const bareName = (key: string) => (v: unknown) => (typeof v === 'string' ? { [key]: v } : v);

const modelOptions = z
  .object({
    from: z.string().min(1).optional().meta({ description: 'a model to start from (HF folder, .safetensors, llama2.c .bin); no other field then', path: true }),
    architecture: z
      .string()
      .min(1)
      .optional()
      .meta({ description: 'a config.json (or a folder holding one) whose shape, per-layer sizes included, is trained from scratch; no other field then', path: true }),
    vocabSize: count().optional().meta({ description: 'vocabulary size (the tokenizer’s)' }),
    dim: count().optional().meta({ description: 'hidden size' }),
    nLayers: count().optional().meta({ description: 'transformer blocks' }),
    nHeads: count().optional().meta({ description: 'query heads per layer' }),
    nKvHeads: count().optional().meta({ description: 'key/value heads per layer (default nHeads)' }),
    headDim: count().optional().meta({ description: 'size of one head (default dim / nHeads)' }),
    hiddenDim: count().optional().meta({ description: 'FFN channels per layer' }),
    maxSeqLen: count().optional().meta({ description: 'context length (default 2048)' }),
    normEps: z.number().positive().optional().meta({ description: 'RMSNorm epsilon (default 1e-5)' }),
    ropeTheta: z.number().positive().optional().meta({ description: 'RoPE base (default 10000)' }),
    tiedEmbeddings: z.boolean().optional().meta({ description: 'share the embedding and output matrices (default true)' }),
    bosId: z.number().int().min(0).optional().meta({ description: 'beginning-of-sequence token id (default 1)' }),
    eosId: z.number().int().min(0).optional().meta({ description: 'end-of-sequence token id (default 2)' }),
  })
  .strict()
  .superRefine((m, ctx) => {
    const given = Object.keys(m).filter((k) => (m as Record<string, unknown>)[k] !== undefined);
    const only = m.from !== undefined ? 'from' : m.architecture !== undefined ? 'architecture' : undefined;
    if (only) {
      for (const k of given) if (k !== only) ctx.addIssue(crossFieldIssue([k], 'unknown field', `model: { ${only} } takes no other field`));
      return;
    }
    for (const k of REQUIRED_CONFIG) {
      if (m[k] === undefined) ctx.addIssue(crossFieldIssue([k], 'is required', `a model config needs ${REQUIRED_CONFIG.join(', ')}`));
    }
  });

const dataOptions = z
  .object({
    train: z.string().min(1).optional().meta({ description: "the text file to train on (default: the recipe's data.train)", path: true }),
    valid: z.string().min(1).optional().meta({ description: 'a held-out text file for the held-out loss (then all of train trains and validFraction is unused)', path: true }),
    tokenizer: z.string().min(1).optional().meta({ description: "a tokenizer file, or `bytes` (default: the recipe model's tokenizer)", path: true, keywords: ['bytes'] }),
    seqLen: z.number().int().min(2).default(64).meta({ description: 'tokens per training sequence' }),
    validFraction: z.number().min(0).lt(1).default(0.05).meta({ description: 'share of the text held out for validation' }),
  })
  .strict();

const optimizerOptions = z
  .object({
    beta1: z.number().min(0).lt(1).default(0.9).meta({ description: 'AdamW first-moment decay' }),
    beta2: z.number().min(0).lt(1).default(0.95).meta({ description: 'AdamW second-moment decay' }),
    eps: z.number().positive().default(1e-8).meta({ description: 'AdamW epsilon' }),
    weightDecay: z.number().min(0).default(0.1).meta({ description: 'decoupled weight decay' }),
    clipNorm: z.number().min(0).default(1).meta({ description: 'global gradient-norm clip (0: none)' }),
  })
  .strict();

const pruneOptions = z
  .object({
    targetRatio: z.number().gt(0).lt(1).optional().meta({ description: 'the fraction of the source model’s parameters kept at the end (or targetParams)' }),
    targetParams: count().optional().meta({ description: 'the parameter count at the end (or targetRatio)' }),
    schedule: z.preprocess(bareName('name'), z.object({ name: nameField() }).catchall(z.unknown())).meta({
      description: 'the size schedule: { name, ...its options } (linear, cubic, one-shot ...); steps may be shares of the run ("10%"); `to` comes from the target',
    }),
    saliency: z.string().min(1).default('taylor-fisher').meta({ description: 'the group criterion, from the training gradients' }),
    aggregation: aggregationField('how member importances combine into a group importance (group-level criteria take sum)'),
    estimate: z.enum(ESTIMATES).default('expected').meta({ description: 'group-level criteria: accumulate the signed Taylor terms and score |mean| (expected), or accumulate each step\'s |ΔL| (per-step)' }),
    saliencyEvery: count().default(1).meta({ description: 'fold saliency into the accumulator every this many steps' }),
    accumulator: z
      .preprocess(bareName('name'), z.object({ name: nameField().default('ema') }).catchall(z.unknown()))
      .default({ name: 'ema' })
      .meta({ description: 'how step scores add up: { name: ema, beta } or { name: sum }' }),
    kinds: z
      .array(z.enum(GROUP_KINDS))
      .min(1, { message: `must be a non-empty list of: ${GROUP_KINDS.join(', ')}` })
      .default(DEFAULT_KINDS)
      .meta({ description: 'the group kinds that may be removed' }),
    normalise: z
      .enum(TRAIN_NORMALISATIONS)
      .default('calibrated')
      .meta({ description: 'how scores of groups of different kinds and sizes are compared: calibrated (per parameter, each kind scaled to measured loss changes), per-param, zscore, none' }),
    calibrationGroups: count().default(6).meta({ description: 'normalise: calibrated — groups per kind measured at each pruning step' }),
    slimAt: z.number().min(0).max(1).default(0.1).meta({ description: 'slim the model once this fraction of it is masked (and at the target)' }),
    minKeep: z
      .object({
        heads: z.number().int().min(0).default(1).meta({ description: 'query heads (and kv groups) kept per layer at least' }),
        ffn: z.number().int().min(0).default(1).meta({ description: 'FFN channels kept per layer at least' }),
        hidden: z.number().int().min(1).default(8).meta({ description: 'hidden channels kept at least' }),
      })
      .strict()
      .prefault({})
      .meta({ description: 'what every layer keeps at least' }),
  })
  .strict()
  .superRefine((p, ctx) => {
    if ((p.targetParams === undefined) === (p.targetRatio === undefined)) {
      ctx.addIssue(crossFieldIssue(['targetRatio'], 'give exactly one of targetRatio (fraction of the source kept) or targetParams'));
    }
  });

/** The `train` stage's options, declared once. */
export const trainOptions = z
  .object({
    model: z
      .preprocess((v) => (typeof v === 'string' ? { from: v } : v), modelOptions)
      .optional()
      .meta({
        description: "a model config ({ dim, nLayers, nHeads, hiddenDim, vocabSize, ... }), { from: path }, { architecture: path } or a path (default: the recipe's model)",
        path: true,
      }),
    data: dataOptions.prefault({}).meta({ description: '{ train, tokenizer, seqLen, validFraction }' }),
    seed: z.number().int().min(0).optional().meta({ description: "seed of the initial weights and the data order (default: the recipe's seed, else 0)" }),
    batchSize: count().default(8).meta({ description: 'sequences per micro-batch' }),
    accumulate: count().default(1).meta({ description: 'micro-batches per optimiser step' }),
    steps: count().optional().meta({ description: 'optimiser steps (default 100; or give tokens)' }),
    tokens: z.number().min(1).optional().meta({ description: 'the token budget instead of steps: steps = ⌈tokens / (batchSize · accumulate · seqLen)⌉' }),
    lr: z
      .preprocess(bareName('schedule'), z.object({ schedule: nameField().default('constant') }).catchall(z.unknown()))
      .default({ schedule: 'constant', lr: 1e-3 })
      .meta({ description: 'the learning-rate schedule: { schedule: cosine, lr, warmup, minLr, ... } (warmup and decaySteps may be shares of the run; total defaults to steps)' }),
    optimizer: optimizerOptions.prefault({}).meta({ description: '{ beta1, beta2, eps, weightDecay, clipNorm }' }),
    eval: z
      .object({
        every: stepsOrShare('measure held-out loss every this many steps, or a share of the run (default 10%)'),
        batches: count().default(8).meta({ description: 'held-out batches per measurement' }),
      })
      .strict()
      .prefault({})
      .meta({ description: '{ every, batches }' }),
    checkpoint: z
      .object({
        every: stepsOrShare('write a checkpoint every this many steps, or a share of the run (default 10%)'),
        keep: count().default(2).meta({ description: 'checkpoints kept' }),
      })
      .strict()
      .prefault({})
      .meta({ description: '{ every, keep }' }),
    guardEvery: count().default(1).meta({ description: 'check every weight for NaN/Inf every this many steps' }),
    resume: z.boolean().default(true).meta({ description: 'resume from the newest complete checkpoint in the run folder' }),
    prune: pruneOptions.optional().meta({ description: 'pruning-aware pretraining: { targetRatio | targetParams, schedule, saliency, ... }' }),
    distill: z
      .object({
        from: z.string().min(1).default('source').meta({ description: "the teacher: `source` (the stage's starting model, before any pruning) or a model path", path: true, keywords: ['source'] }),
        temperature: z.number().positive().default(2).meta({ description: 'distillation temperature' }),
        alpha: z.number().min(0).max(1).default(0.5).meta({ description: 'weight of the distillation term: α·T²·KL + (1 − α)·CE' }),
      })
      .strict()
      .optional()
      .meta({ description: 'distil from a teacher while training: { from: source | path, temperature, alpha }' }),
    out: z.string().min(1).optional().meta({ description: "the run folder (default: the recipe's output)", path: true }),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.steps !== undefined && o.tokens !== undefined) ctx.addIssue(crossFieldIssue(['tokens'], 'give steps or tokens, not both'));
  });

export type TrainOptionsInput = z.input<typeof trainOptions>;
export type TrainOptions = OptionsOf<typeof trainOptions>;

function fail(where: string, message: string, hint?: string): never {
  throw new TopiaryError('E_RECIPE', message, { where, hint });
}

function path(where: string, ...keys: string[]): string {
  return keys.reduce((p, k) => (p === '' ? k : `${p}.${k}`), where);
}

function isShare(v: unknown): v is string {
  return typeof v === 'string' && SHARE.test(v);
}

/** The share `v` ("10%") of `steps`, rounded. */
function shareOf(v: string, steps: number): number {
  return Math.round((steps * Number(v.trim().slice(0, -1))) / 100);
}

function stepsOf(v: number | string | undefined, steps: number): number {
  if (v === undefined) return Math.max(1, Math.ceil(steps / 10));
  return typeof v === 'number' ? v : Math.max(1, shareOf(v, steps));
}

/** The scheduler called `name`, of the kind asked for; the error names the field the name was written in. */
function scheduler(container: DependencyContainer, name: string, kind: ScheduleKind, where: string): Scheduler {
  const found = resolveNamed(container, Tokens.Scheduler, name, 'scheduler', where);
  if (found.kind !== kind) {
    const same = [...new Set(resolveAllOrNone(container, Tokens.Scheduler).filter((s) => s.kind === kind).map((s) => s.name))].sort();
    const label: Record<ScheduleKind, string> = { lr: 'learning-rate', sparsity: 'sparsity' };
    fail(where, `"${name}" is a ${label[found.kind]} schedule, not a ${label[kind]} one`, same.length ? `${label[kind]} schedules: ${same.join(', ')}` : undefined);
  }
  return found;
}

/** Split `{ [key]: name, ...options }`; `nameWhere` is the field the name came from (the field itself for a bare name or a default). */
function split(raw: unknown, given: Record<string, unknown>, key: string, where: string): { name: string; options: Raw; nameWhere: string } {
  const { [key]: name, ...options } = given;
  return { name: String(name), options, nameWhere: typeof raw === 'object' && raw !== null ? path(where, key) : where };
}

/**
 * Validate a `train` stage and resolve it for `train()`: the typed spec with every default settled (from `defaults`
 * where the recipe gives them), shares of the run ("10%") turned into steps, and the LR and size schedules resolved
 * by name from `container` (the run's; E_PLUGIN_UNKNOWN when a scheduler is not installed) with their options
 * checked by the scheduler's own schema. Errors are TopiaryErrors naming `where` + the field.
 */
export function resolveTrainOptions(raw: unknown, where: string, container: DependencyContainer, defaults: TrainDefaults = {}): TrainSpec {
  const o = parseOptions(trainOptions, raw, where);
  const rawRecord = (typeof raw === 'object' && raw !== null ? raw : {}) as Raw;

  // model
  const modelWhere = path(where, 'model');
  let model: ModelSpec;
  if (o.model === undefined) {
    if (!defaults.modelFrom) fail(modelWhere, 'is required: a config ({ dim, nLayers, ... }) or { from: path }');
    model = { from: defaults.modelFrom };
  } else if (o.model.from !== undefined) model = { from: o.model.from };
  else if (o.model.architecture !== undefined) model = { architecture: o.model.architecture };
  else model = { config: Object.fromEntries(Object.entries(o.model).filter(([, v]) => v !== undefined)) };

  // data
  const dataWhere = path(where, 'data');
  const train = o.data.train ?? defaults.trainData;
  if (!train) fail(path(dataWhere, 'train'), 'is required (a text file)');
  const tokenizer = o.data.tokenizer ?? defaults.tokenizer;
  if (!tokenizer) fail(path(dataWhere, 'tokenizer'), 'is required (a tokenizer file, or `bytes`)');
  const data: DataSpec = { train, tokenizer, seqLen: o.data.seqLen, validFraction: o.data.validFraction };
  if (o.data.valid !== undefined) data.valid = o.data.valid;

  const tokensPerStep = o.batchSize * o.accumulate * data.seqLen;
  const steps = o.tokens !== undefined ? Math.ceil(o.tokens / tokensPerStep) : (o.steps ?? 100);

  // lr: the schedule's own fields are checked by the scheduler's schema; `total` defaults to the run's steps
  const lrWhere = path(where, 'lr');
  const lrNamed = split(rawRecord.lr, o.lr, 'schedule', lrWhere);
  const lrScheduler = scheduler(container, lrNamed.name, 'lr', lrNamed.nameWhere);
  const lrOptions: Raw = { ...lrNamed.options };
  for (const key of ['warmup', 'decaySteps']) if (isShare(lrOptions[key])) lrOptions[key] = shareOf(lrOptions[key], steps);
  if ('total' in lrScheduler.options.shape && lrOptions.total === undefined) lrOptions.total = steps;
  parseOptions(lrScheduler.options, lrOptions, lrWhere);

  const spec: TrainSpec = {
    model,
    data,
    seed: o.seed ?? defaults.seed ?? 0,
    batchSize: o.batchSize,
    accumulate: o.accumulate,
    steps,
    lr: { name: lrNamed.name, scheduler: lrScheduler, options: lrOptions, where: lrWhere },
    optimizer: o.optimizer,
    evalEvery: stepsOf(o.eval.every, steps),
    evalBatches: o.eval.batches,
    checkpointEvery: stepsOf(o.checkpoint.every, steps),
    keepCheckpoints: o.checkpoint.keep,
    guardEvery: o.guardEvery,
    resume: o.resume,
    out: o.out ?? defaults.out ?? fail(path(where, 'out'), 'is required (the run folder): set `output` in the recipe or pass --out'),
  };
  if (o.distill !== undefined) {
    if (o.distill.from === 'source' && model.from === undefined) {
      fail(path(where, 'distill', 'from'), 'is `source`, but this stage does not start from a model', 'start from a model (model: { from: path }) or name the teacher: distill: { from: path }');
    }
    spec.distill = { from: o.distill.from === 'source' ? model.from! : o.distill.from, temperature: o.distill.temperature, alpha: o.distill.alpha };
  }
  if (o.prune !== undefined) spec.prune = resolvePrune(o.prune, (rawRecord.prune ?? {}) as Raw, path(where, 'prune'), steps, container);
  return spec;
}

function resolvePrune(p: NonNullable<TrainOptions['prune']>, raw: Raw, where: string, steps: number, container: DependencyContainer): PruneSpec {
  const scheduleWhere = path(where, 'schedule');
  const named = split(raw.schedule, p.schedule, 'name', scheduleWhere);
  const sizeScheduler = scheduler(container, named.name, 'sparsity', named.nameWhere);
  const options: Raw = { ...named.options };
  if (options.to !== undefined) fail(path(scheduleWhere, 'to'), 'is set by the trainer from targetRatio / targetParams', 'remove `to` from the schedule');
  // Steps may be written as a share of the run ("10%"), so one recipe scales with its token budget.
  for (const key of ['start', 'end', 'at', 'every']) {
    const v = options[key];
    if (!isShare(v)) continue;
    if (Number(v.trim().slice(0, -1)) > 100) fail(path(scheduleWhere, key), `must be at most 100%, got ${v}`);
    options[key] = Math.max(key === 'every' ? 1 : 0, shareOf(v, steps));
  }
  // The scheduler's schema checks its fields now (with a stand-in for `to`, which the target sets at the start).
  const checked = parseOptions(sizeScheduler.options, { from: 0, ...options, to: 0.5 }, scheduleWhere) as Raw;
  // Where the schedule ends, checked against the budget.
  const endKey = named.name === 'one-shot' ? 'at' : 'end';
  const end = checked[endKey];
  if (options[endKey] !== undefined && typeof end === 'number' && end > steps) {
    fail(path(scheduleWhere, endKey), `the schedule ends at step ${end}, after the token budget (${steps} steps)`, 'end the schedule before the last step, or train for more tokens');
  }
  const accumulatorWhere = path(where, 'accumulator');
  const { name: accumulator, options: accumulatorOptions } = split(raw.accumulator, p.accumulator, 'name', accumulatorWhere);
  return {
    targetParams: p.targetParams,
    targetRatio: p.targetRatio,
    schedule: { name: named.name, scheduler: sizeScheduler, options, where: scheduleWhere },
    saliency: p.saliency,
    aggregation: p.aggregation,
    estimate: p.estimate,
    saliencyEvery: p.saliencyEvery,
    accumulator: { name: accumulator, options: accumulatorOptions, where: accumulatorWhere },
    kinds: p.kinds,
    normalise: p.normalise,
    calibrationGroups: p.calibrationGroups,
    slimAt: p.slimAt,
    minKeep: p.minKeep,
  };
}
