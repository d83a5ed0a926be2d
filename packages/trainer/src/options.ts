/**
 * The `train` stage of a recipe, validated at the door: every field is checked (with kernel validate.ts helpers)
 * before a single tensor exists, and every failure names the field.
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
import type { GroupKind } from '@topiary/kernel';
import {
  checkOneOf,
  checkString,
  fieldPath,
  isRecord,
  optionalBoolean,
  optionalNumber,
  optionalOneOf,
  optionalString,
  rejectUnknownKeys,
  requiredString,
  TopiaryError,
  type Raw,
} from '@topiary/kernel';
import { defaultAdamW, type AdamWOptions } from './optimizer.js';
import { NORMALISATIONS, type MinKeep, type Normalisation } from './prune.js';

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
  tokenizer: string;
  seqLen: number;
  validFraction: number;
}

export interface NamedOptions {
  name: string;
  options: Raw;
  where: string;
}

export interface PruneSpec {
  targetParams?: number;
  targetRatio?: number;
  schedule: NamedOptions;
  saliency: string;
  saliencyEvery: number;
  accumulator: NamedOptions;
  kinds: GroupKind[];
  normalise: Normalisation;
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
  lr: NamedOptions;
  optimizer: AdamWOptions;
  evalEvery: number;
  evalBatches: number;
  checkpointEvery: number;
  keepCheckpoints: number;
  /** Check every weight for NaN/Inf every this many steps (loss and gradients are checked every step). */
  guardEvery: number;
  resume: boolean;
  prune?: PruneSpec;
  out: string;
}

const GROUP_KINDS: readonly GroupKind[] = ['head', 'kv-group', 'ffn-channel', 'hidden-channel'];

function fail(where: string, message: string, hint?: string): never {
  throw new TopiaryError('E_RECIPE', message, { where, hint });
}

function record(raw: unknown, where: string, what: string): Raw {
  if (!isRecord(raw)) fail(where, `must be a mapping (${what})`);
  return raw;
}

/** `{ name: x, ...options }` or a bare name. */
function named(raw: unknown, where: string, fallback: string | undefined, nameKey = 'name'): NamedOptions {
  if (raw === undefined) {
    if (fallback === undefined) fail(where, 'is required');
    return { name: fallback, options: {}, where };
  }
  if (typeof raw === 'string') return { name: checkString(raw, where), options: {}, where };
  const r = record(raw, where, `{ ${nameKey}, ...options }`);
  const { [nameKey]: name, ...options } = r;
  return { name: name === undefined && fallback !== undefined ? fallback : checkString(name, fieldPath(where, nameKey)), options, where };
}

/** `"10%"` of `steps` (at least 1), or a plain positive integer. */
function stepsOrShare(raw: Raw, key: string, where: string, fallback: number, steps: number): number {
  const v = raw[key];
  if (typeof v === 'string' && /^\s*\d+(\.\d+)?\s*%\s*$/.test(v)) return Math.max(1, Math.round((steps * Number(v.trim().slice(0, -1))) / 100));
  return positiveInt(raw, key, where, fallback);
}

function positiveInt(raw: Raw, key: string, where: string, fallback: number): number {
  return optionalNumber(raw, key, where, fallback, { integer: true, min: 1 });
}

export function validateTrainStage(
  raw: Raw,
  where: string,
  defaults: { seed?: number; out?: string; modelFrom?: string; trainData?: string; tokenizer?: string } = {},
): TrainSpec {
  rejectUnknownKeys(raw, where, [
    'model', 'data', 'seed', 'batchSize', 'accumulate', 'steps', 'tokens', 'lr', 'optimizer', 'eval', 'checkpoint', 'guardEvery', 'resume', 'prune', 'out',
  ]);
  // model
  const modelWhere = fieldPath(where, 'model');
  let model: ModelSpec;
  if (raw.model === undefined) {
    if (!defaults.modelFrom) fail(modelWhere, 'is required: a config ({ dim, nLayers, ... }) or { from: path }');
    model = { from: defaults.modelFrom };
  } else if (typeof raw.model === 'string') {
    model = { from: checkString(raw.model, modelWhere) };
  } else {
    const r = record(raw.model, modelWhere, 'a model config or { from: path }');
    if (r.from !== undefined) {
      rejectUnknownKeys(r, modelWhere, ['from']);
      model = { from: requiredString(r, 'from', modelWhere) };
    } else if (r.architecture !== undefined) {
      rejectUnknownKeys(r, modelWhere, ['architecture']);
      model = { architecture: requiredString(r, 'architecture', modelWhere) };
    } else {
      rejectUnknownKeys(r, modelWhere, ['vocabSize', 'dim', 'nLayers', 'nHeads', 'nKvHeads', 'headDim', 'hiddenDim', 'maxSeqLen', 'normEps', 'ropeTheta', 'tiedEmbeddings', 'bosId', 'eosId']);
      for (const k of ['vocabSize', 'dim', 'nLayers', 'nHeads', 'hiddenDim']) optionalNumber(r, k, modelWhere, 1, { integer: true, min: 1 });
      for (const k of ['vocabSize', 'dim', 'nLayers', 'nHeads', 'hiddenDim']) if (r[k] === undefined) fail(fieldPath(modelWhere, k), 'is required');
      model = { config: r };
    }
  }
  // data
  const dataWhere = fieldPath(where, 'data');
  const d = raw.data === undefined ? {} : record(raw.data, dataWhere, '{ train, tokenizer, seqLen }');
  rejectUnknownKeys(d, dataWhere, ['train', 'tokenizer', 'seqLen', 'validFraction']);
  const train = optionalString(d, 'train', dataWhere) ?? defaults.trainData;
  if (!train) fail(fieldPath(dataWhere, 'train'), 'is required (a text file)');
  const tokenizer = optionalString(d, 'tokenizer', dataWhere) ?? defaults.tokenizer;
  if (!tokenizer) fail(fieldPath(dataWhere, 'tokenizer'), 'is required (a tokenizer file, or `bytes`)');
  const data: DataSpec = {
    train,
    tokenizer,
    seqLen: optionalNumber(d, 'seqLen', dataWhere, 64, { integer: true, min: 2 }),
    validFraction: optionalNumber(d, 'validFraction', dataWhere, 0.05, { min: 0, below: 1 }),
  };
  const batchSize = positiveInt(raw, 'batchSize', where, 8);
  const accumulate = positiveInt(raw, 'accumulate', where, 1);
  if (raw.steps !== undefined && raw.tokens !== undefined) fail(fieldPath(where, 'tokens'), 'give steps or tokens, not both');
  const tokensPerStep = batchSize * accumulate * data.seqLen;
  const steps =
    raw.tokens !== undefined
      ? Math.ceil(optionalNumber(raw, 'tokens', where, 0, { min: 1 }) / tokensPerStep)
      : positiveInt(raw, 'steps', where, 100);
  // lr: the schedule's own fields are validated by the scheduler plugin; `total` defaults to the run's steps
  const lr = named(raw.lr ?? { schedule: 'constant', lr: 1e-3 }, fieldPath(where, 'lr'), 'constant', 'schedule');
  for (const key of ['warmup', 'decaySteps']) {
    const v = lr.options[key];
    if (typeof v === 'string' && /^\s*\d+(\.\d+)?\s*%\s*$/.test(v)) lr.options = { ...lr.options, [key]: Math.round((steps * Number(v.trim().slice(0, -1))) / 100) };
  }
  const schedulesNeedingTotal = ['cosine', 'wsd'];
  if (schedulesNeedingTotal.includes(lr.name) && lr.options.total === undefined) lr.options = { ...lr.options, total: steps };
  // optimizer
  const optWhere = fieldPath(where, 'optimizer');
  const o = raw.optimizer === undefined ? {} : record(raw.optimizer, optWhere, '{ beta1, beta2, eps, weightDecay, clipNorm }');
  rejectUnknownKeys(o, optWhere, ['beta1', 'beta2', 'eps', 'weightDecay', 'clipNorm']);
  const optimizer: AdamWOptions = {
    beta1: optionalNumber(o, 'beta1', optWhere, defaultAdamW.beta1, { min: 0, below: 1 }),
    beta2: optionalNumber(o, 'beta2', optWhere, defaultAdamW.beta2, { min: 0, below: 1 }),
    eps: optionalNumber(o, 'eps', optWhere, defaultAdamW.eps, { above: 0 }),
    weightDecay: optionalNumber(o, 'weightDecay', optWhere, defaultAdamW.weightDecay, { min: 0 }),
    clipNorm: optionalNumber(o, 'clipNorm', optWhere, defaultAdamW.clipNorm, { min: 0 }),
  };
  const evWhere = fieldPath(where, 'eval');
  const ev = raw.eval === undefined ? {} : record(raw.eval, evWhere, '{ every, batches }');
  rejectUnknownKeys(ev, evWhere, ['every', 'batches']);
  const ckWhere = fieldPath(where, 'checkpoint');
  const ck = raw.checkpoint === undefined ? {} : record(raw.checkpoint, ckWhere, '{ every, keep }');
  rejectUnknownKeys(ck, ckWhere, ['every', 'keep']);
  const out = optionalString(raw, 'out', where) ?? defaults.out;
  if (!out) fail(fieldPath(where, 'out'), 'is required (the run folder): set `output` in the recipe or pass --out');
  const spec: TrainSpec = {
    model,
    data,
    seed: optionalNumber(raw, 'seed', where, defaults.seed ?? 0, { integer: true, min: 0 }),
    batchSize,
    accumulate,
    steps,
    lr,
    optimizer,
    evalEvery: stepsOrShare(ev, 'every', evWhere, Math.max(1, Math.ceil(steps / 10)), steps),
    evalBatches: positiveInt(ev, 'batches', evWhere, 8),
    checkpointEvery: stepsOrShare(ck, 'every', ckWhere, Math.max(1, Math.ceil(steps / 10)), steps),
    keepCheckpoints: positiveInt(ck, 'keep', ckWhere, 2),
    guardEvery: positiveInt(raw, 'guardEvery', where, 1),
    resume: optionalBoolean(raw, 'resume', where, true),
    out,
  };
  if (raw.prune !== undefined) spec.prune = validatePrune(raw.prune, fieldPath(where, 'prune'), steps);
  return spec;
}

function validatePrune(rawPrune: unknown, where: string, steps: number): PruneSpec {
  const p = record(rawPrune, where, '{ targetRatio | targetParams, schedule, saliency, ... }');
  rejectUnknownKeys(p, where, ['targetParams', 'targetRatio', 'schedule', 'saliency', 'saliencyEvery', 'accumulator', 'kinds', 'normalise', 'slimAt', 'minKeep']);
  if ((p.targetParams === undefined) === (p.targetRatio === undefined)) {
    fail(fieldPath(where, 'targetRatio'), 'give exactly one of targetRatio (fraction of the source kept) or targetParams');
  }
  const schedule = named(p.schedule, fieldPath(where, 'schedule'), undefined);
  const scheduleWhere = schedule.where;
  // Steps may be written as a share of the run ("10%"), so one recipe scales with its token budget.
  for (const key of ['start', 'end', 'at', 'every']) {
    const v = schedule.options[key];
    if (typeof v === 'string' && /^\s*\d+(\.\d+)?\s*%\s*$/.test(v)) {
      const pct = Number(v.trim().slice(0, -1));
      if (pct > 100) fail(fieldPath(scheduleWhere, key), `must be at most 100%, got ${v}`);
      schedule.options = { ...schedule.options, [key]: Math.max(key === 'every' ? 1 : 0, Math.round((steps * pct) / 100)) };
    }
  }
  // Where the schedule ends, checked against the budget here (the scheduler validates the rest).
  const end = schedule.name === 'one-shot' ? schedule.options.at : schedule.options.end;
  if (end !== undefined) {
    const endKey = schedule.name === 'one-shot' ? 'at' : 'end';
    const e = optionalNumber(schedule.options, endKey, scheduleWhere, 0, { integer: true, min: 0 });
    if (e > steps) {
      fail(fieldPath(scheduleWhere, endKey), `the schedule ends at step ${e}, after the token budget (${steps} steps)`, 'end the schedule before the last step, or train for more tokens');
    }
  }
  const kindsWhere = fieldPath(where, 'kinds');
  const kinds = p.kinds === undefined ? (['head', 'ffn-channel', 'hidden-channel'] as GroupKind[]) : p.kinds;
  if (!Array.isArray(kinds) || kinds.length === 0) fail(kindsWhere, `must be a non-empty list of: ${GROUP_KINDS.join(', ')}`);
  const mk = p.minKeep === undefined ? {} : record(p.minKeep, fieldPath(where, 'minKeep'), '{ heads, ffn, hidden }');
  rejectUnknownKeys(mk, fieldPath(where, 'minKeep'), ['heads', 'ffn', 'hidden']);
  return {
    targetParams: p.targetParams === undefined ? undefined : optionalNumber(p, 'targetParams', where, 1, { integer: true, min: 1 }),
    targetRatio: p.targetRatio === undefined ? undefined : optionalNumber(p, 'targetRatio', where, 1, { above: 0, below: 1 }),
    schedule,
    saliency: optionalString(p, 'saliency', where) ?? 'taylor-fisher',
    saliencyEvery: positiveInt(p, 'saliencyEvery', where, 1),
    accumulator: named(p.accumulator, fieldPath(where, 'accumulator'), 'ema'),
    kinds: kinds.map((k: unknown, i: number) => checkOneOf(k, `${kindsWhere}[${i}]`, GROUP_KINDS)),
    normalise: optionalOneOf(p, 'normalise', where, NORMALISATIONS, 'per-param'),
    slimAt: optionalNumber(p, 'slimAt', where, 0.1, { min: 0, max: 1 }),
    minKeep: {
      heads: optionalNumber(mk, 'heads', fieldPath(where, 'minKeep'), 1, { integer: true, min: 0 }),
      ffn: optionalNumber(mk, 'ffn', fieldPath(where, 'minKeep'), 1, { integer: true, min: 0 }),
      hidden: optionalNumber(mk, 'hidden', fieldPath(where, 'minKeep'), 8, { integer: true, min: 1 }),
    },
  };
}
