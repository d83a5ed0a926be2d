/**
 * A training job: plain pretraining, and pruning-aware pretraining (EfficientLLM-style) of a LLaMA model, with
 * distillation from the source when asked. The steps run in the one training loop (`loop.ts`); pruning decisions
 * are `PruningPlan`'s (`pruning.ts`, on structured-core's group-scoring stack). This file sets a job up (data,
 * model or the newest verified checkpoint, plan, teacher), records what the loop does (metrics.jsonl, progress,
 * held-out loss, checkpoints) and finishes it (slim, save, architecture.json, summary.json).
 *
 * Resume restores weights, masks, optimiser moments and step, accumulator, and the data cursor, so the loss curve
 * equals an uninterrupted run's. Local OBS-style compensation of the touched layers after masking is not
 * implemented (the EfficientLLM summary mentions it; marked *unverified* there).
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ioError, parseOptions, resolveAllOrNone, TopiaryError, EventBus, type CausalLM, type DependencyContainer, type ModelConfig, type Raw, type Schedule, type Tokenizer } from '@topiary/kernel';
import { writeFileAtomic, writeJsonAtomic } from '@topiary/files';
import { loadTokenizer } from '@topiary/corpus';
import { configToHf, readHfConfig, createLlama, LlamaModel, loadModel, makeConfig, saveModel, type CreateConfig } from '@topiary/model-llama';
import { PruneTracker, type ArchitectureSnapshot } from '@topiary/structured-core';
import { AccumulatorToken, builtinAccumulators, createAccumulator, type SaliencyAccumulator } from './accumulators.js';
import { cleanCheckpointLeftovers, loadLatestCheckpoint, pruneOldCheckpoints, writeCheckpoint, type CheckpointData } from './checkpoint.js';
import { BatchSampler, loadTrainingBlocks, type TokenBlocks } from './data.js';
import { numericError, TrainingLoop, type StepOutcome, type Teacher } from './loop.js';
import { AdamW, firstNonFinite } from './optimizer.js';
import type { NamedOptions, ScheduleSpec, TrainSpec } from './options.js';
import { findCriterion, PruningPlan, type PruneState } from './pruning.js';

export interface TrainHooks {
  /** Called after each optimiser update (before the guards): tests inject faults here. */
  afterUpdate?(step: number, model: CausalLM): void;
}

export interface TrainDeps {
  /**
   * Where saliency criteria and accumulators are resolved by name (the trainer's own are always there). Schedulers
   * are not: `resolveTrainOptions` resolved them from the run's container into the spec.
   */
  container?: DependencyContainer;
  events?: EventBus;
  hooks?: TrainHooks;
  /** Stop after this many steps of this call (the run can be resumed later); for tests and time-boxed jobs. */
  stopAfter?: number;
  /** Stop at the next step boundary (Ctrl-C): a checkpoint of the current step is written first, so nothing is lost. */
  signal?: AbortSignal;
}

export interface TrainResult {
  steps: number;
  tokens: number;
  finalLoss: number;
  validLoss: number;
  validPerplexity: number;
  params: number;
  sourceParams: number;
  architecture: ArchitectureSnapshot;
  config: ModelConfig;
  resumedFrom: number | null;
  seconds: number;
  /** False when `stopAfter` ended the call early. */
  finished: boolean;
  out: string;
}

/** What a checkpoint restores besides weights and optimiser state. */
interface RunState {
  step: number;
  tokens: number;
  cursor: number;
  pruneEvents: number;
  targetReached: boolean;
  sourceParams: number;
  targetParams: number | null;
}

/** The schedule a resolved spec describes, its options (plus what the trainer sets) checked by the scheduler's schema. */
function createSchedule(spec: ScheduleSpec, options: Raw = spec.options): Schedule {
  return spec.scheduler.create(parseOptions(spec.scheduler.options, options, spec.where));
}

function findAccumulator(container: DependencyContainer | undefined, spec: NamedOptions): SaliencyAccumulator {
  const all = [...(container ? resolveAllOrNone(container, AccumulatorToken) : []), ...builtinAccumulators];
  const f = all.find((a) => a.name === spec.name);
  if (!f) throw new TopiaryError('E_PLUGIN_UNKNOWN', `unknown accumulator "${spec.name}"`, { where: spec.where, hint: `known: ${all.map((a) => a.name).join(', ')}` });
  return createAccumulator(f, spec.options, spec.where);
}

function hostWeights(model: CausalLM): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const name of model.parameters().keys()) out.set(name, model.readWeight(name));
  return out;
}

/** Mean loss over up to `batches` held-out batches. */
export function heldOutLoss(model: CausalLM, blocks: TokenBlocks, batchSize: number, batches: number): number {
  const n = Math.min(blocks.valid.length, batches * batchSize);
  if (n === 0) return Number.NaN;
  let sum = 0;
  let count = 0;
  for (let s = 0; s < n; s += batchSize) {
    const b = Math.min(batchSize, n - s);
    const flat = new Int32Array(b * blocks.blockLen);
    for (let i = 0; i < b; i++) flat.set(blocks.valid[s + i]!, i * blocks.blockLen);
    const loss = tf.tidy(() => model.loss(tf.tensor2d(flat, [b, blocks.blockLen], 'int32')).dataSync()[0]!);
    sum += loss * b;
    count += b;
  }
  return sum / count;
}


/**
 * The tokenizer must be the source model's: the same vocabulary size, and — when the model folder carries its own
 * tokenizer — the same text for the same ids (a different 512-token vocabulary would train garbage silently). The
 * probe is the training text itself: encoded with the given tokenizer, decoded by both, it must read the same
 * (single ids are not compared: formats differ in how a lone token's leading space is shown).
 */
async function checkSourceTokenizer(from: string, tokenizer: Tokenizer, tokenizerFile: string, probe: string): Promise<void> {
  let dir: string;
  try {
    dir = statSync(from).isDirectory() ? from : dirname(from);
  } catch {
    return;
  }
  const own = ['tokenizer.json', 'tokenizer.model'].map((f) => join(dir, f)).find((f) => existsSync(f) && f !== tokenizerFile);
  if (!own) return;
  let theirs: Tokenizer;
  try {
    theirs = await loadTokenizer(own);
  } catch {
    return; // a tokenizer file we cannot read says nothing either way
  }
  const ids = tokenizer.encode(probe);
  const mine = tokenizer.decode(ids);
  const read = theirs.decode(ids);
  if (mine === read) return;
  let at = 0;
  while (at < mine.length && mine[at] === read[at]) at++;
  throw new TopiaryError('E_CONFIG', `the tokenizer does not match the source model's (${own}): the same ids read ${JSON.stringify(mine.slice(at, at + 24))} here and ${JSON.stringify(read.slice(at, at + 24))} there`, {
    file: tokenizerFile,
    where: 'data.tokenizer',
    hint: `use the tokenizer the source was trained with (${own})`,
  });
}

/** A job set up: the loop over its model, its data, plan and state — fresh, or from the newest verified checkpoint. */
interface Job {
  loop: TrainingLoop;
  blocks: TokenBlocks;
  plan: PruningPlan | null;
  accumulator: SaliencyAccumulator | null;
  teacher: Teacher | null;
  st: RunState;
  resumedFrom: number | null;
}

async function openJob(spec: TrainSpec, deps: TrainDeps, events: EventBus, ckRoot: string, metricsPath: string): Promise<Job> {
  // ---- everything that can be checked before a tensor exists
  const lrSchedule = createSchedule(spec.lr);
  const tokenizer = await loadTokenizer(spec.data.tokenizer);
  const blocks = loadTrainingBlocks(spec.data, tokenizer);
  const sampler = new BatchSampler(blocks, spec.batchSize, spec.seed);
  const prune = spec.prune;
  const pruneWhere = prune ? prune.schedule.where.replace(/\.schedule$/, '') : '';
  const criterion = prune ? findCriterion(deps.container, prune.saliency, `${pruneWhere}.saliency`) : null;
  const accumulator = prune ? findAccumulator(deps.container, prune.accumulator) : null;

  let model: CausalLM;
  let opt: AdamW;
  let resumedFrom: number | null = null;
  const st: RunState = { step: 0, tokens: 0, cursor: 0, pruneEvents: 0, targetReached: false, sourceParams: 0, targetParams: null };
  const ck: CheckpointData | null = spec.resume
    ? loadLatestCheckpoint(ckRoot, (path, reason) => events.log('warn', `skipping checkpoint ${path}: ${reason}`))
    : null;
  if (ck) {
    const s = ck.state as { config: ModelConfig; masked: string[]; run: RunState; accumulator?: unknown; optimizerStep: number };
    model = new LlamaModel(s.config, ck.weights, 'checkpoint');
    if (s.masked.length) model.maskGroups(s.masked);
    opt = new AdamW(spec.optimizer, { t: s.optimizerStep, m: ck.m, v: ck.v });
    Object.assign(st, s.run);
    if (accumulator && s.accumulator !== undefined) accumulator.load(s.accumulator);
    resumedFrom = ck.step;
    // metrics after the checkpoint belong to the lost part of the run
    if (existsSync(metricsPath)) {
      const kept = readFileSync(metricsPath, 'utf8')
        .split('\n')
        .filter((line) => line.trim() !== '')
        .filter((line) => {
          try {
            return (JSON.parse(line) as { step?: number }).step! < ck.step;
          } catch {
            return false;
          }
        });
      writeFileAtomic(metricsPath, kept.map((l) => `${l}\n`).join(''));
    }
    events.log('info', `resumed from checkpoint step ${ck.step}`);
  } else {
    if (spec.model.from) {
      model = await loadModel(spec.model.from, { tokenizer, tokenizerFile: spec.data.tokenizer });
      await checkSourceTokenizer(spec.model.from, tokenizer, spec.data.tokenizer, tokenizer.decode(Array.from(blocks.train[0]!))).catch((e: unknown) => {
        model.dispose();
        throw e;
      });
    } else if (spec.model.architecture) {
      const file = spec.model.architecture;
      if (!existsSync(file)) throw new TopiaryError('E_IO', 'architecture config not found', { where: file, hint: 'give a config.json or a model folder (e.g. <run>/model)' });
      model = createLlama(readHfConfig(statSync(file).isDirectory() ? file : dirname(file)), { seed: spec.seed });
    } else model = createLlama(makeConfig(spec.model.config as unknown as CreateConfig, 'model'), { seed: spec.seed });
    if (model.config.vocabSize !== tokenizer.vocabSize) {
      model.dispose();
      throw new TopiaryError('E_CONFIG', `the model's vocabulary (${model.config.vocabSize}) differs from the tokenizer's (${tokenizer.vocabSize})`, {
        where: 'model.vocabSize',
        hint: `set vocabSize: ${tokenizer.vocabSize}`,
      });
    }
    if (model.config.maxSeqLen < spec.data.seqLen + 1) {
      model.dispose();
      throw new TopiaryError('E_CONFIG', `seqLen ${spec.data.seqLen} (+1) exceeds the model's maxSeqLen ${model.config.maxSeqLen}`, { where: 'data.seqLen' });
    }
    opt = new AdamW(spec.optimizer);
    st.sourceParams = model.parameterCount();
    writeFileAtomic(metricsPath, '');
  }

  // ---- pruning plan
  let plan: PruningPlan | null = null;
  if (prune) {
    if (st.targetParams === null) {
      const target = prune.targetParams ?? Math.round(st.sourceParams * prune.targetRatio!);
      if (target >= st.sourceParams) {
        model.dispose();
        opt.dispose();
        throw new TopiaryError('E_RECIPE', `target size ${target} is not smaller than the source model (${st.sourceParams} parameters)`, {
          where: `${pruneWhere}.${prune.targetParams !== undefined ? 'targetParams' : 'targetRatio'}`,
          hint: 'prune to fewer parameters than the source has, or train without `prune`',
        });
      }
      st.targetParams = target;
    }
    const sizeSchedule = createSchedule(prune.schedule, { from: 0, ...prune.schedule.options, to: 1 - st.targetParams / st.sourceParams });
    // the plan's state is the run state's own fields (one copy: checkpoints save `st`)
    const state = st as unknown as PruneState;
    // the calibration probe: a fixed batch of held-out blocks (the training blocks when nothing is held out)
    const probeBlocks = (blocks.valid.length > 0 ? blocks.valid : blocks.train).slice(0, spec.batchSize);
    const probe = { ...blocks, valid: probeBlocks };
    plan = new PruningPlan(prune, criterion!, accumulator!, sizeSchedule, state, spec.optimizer, model, (m) => heldOutLoss(m, probe, spec.batchSize, 1));
  }

  // ---- teacher: the unpruned source, frozen
  let teacher: Teacher | null = null;
  if (spec.distill) {
    const t = await loadModel(spec.distill.from, { tokenizer, tokenizerFile: spec.data.tokenizer });
    teacher = { model: t, temperature: spec.distill.temperature, alpha: spec.distill.alpha };
  }

  const loop = new TrainingLoop({
    model,
    optimizer: opt,
    batches: sampler,
    lr: lrSchedule,
    accumulate: spec.accumulate,
    teacher,
    keep: plan?.keepTensors(),
    observe: plan ? (step, _params, grads) => plan.observe(step, grads) : undefined,
    afterUpdate: deps.hooks?.afterUpdate,
  });
  return { loop, blocks, plan, accumulator, teacher, st, resumedFrom };
}

/** Run (or resume) one training job described by a validated spec. */
export async function train(spec: TrainSpec, deps: TrainDeps = {}): Promise<TrainResult> {
  const started = Date.now();
  const events = deps.events ?? new EventBus();
  const out = spec.out;
  const ckRoot = join(out, 'checkpoints');
  const metricsPath = join(out, 'metrics.jsonl');
  try {
    mkdirSync(out, { recursive: true });
  } catch (e) {
    throw ioError(e, out, 'create the run folder');
  }
  cleanCheckpointLeftovers(ckRoot);
  const job = await openJob(spec, deps, events, ckRoot, metricsPath);
  const { loop, blocks, plan, accumulator, st } = job;

  const metric = (record: Record<string, unknown>): void => {
    try {
      appendFileSync(metricsPath, `${JSON.stringify(record)}\n`);
    } catch (e) {
      throw ioError(e, metricsPath, 'append to metrics.jsonl');
    }
  };
  const architecture = (): ArchitectureSnapshot => plan?.architecture() ?? new PruneTracker(loop.model).architecture();
  const snapshot = (step: number, reason: string): void => {
    if (plan) metric({ step, type: 'architecture', reason, tokens: st.tokens, physicalParams: loop.model.parameterCount(), ...plan.architecture() });
  };
  const writeCk = (step: number): void => {
    const model = loop.model;
    const state = loop.optimizer.exportState(model.parameters());
    const params = [...model.parameters()].map(([name, v]) => ({ name, shape: [...v.shape] }));
    const weights = hostWeights(model);
    // a checkpoint is the last good state: never write one holding NaN/Inf (guardEvery may be > 1)
    for (const [name, w] of weights) {
      if (!w.every(Number.isFinite)) throw numericError(step - 1, `the weight ${name}`);
    }
    const path = writeCheckpoint(ckRoot, {
      step,
      params,
      weights,
      m: state.m,
      v: state.v,
      state: { config: model.config, masked: [...model.maskedGroups()], run: { ...st, step }, optimizerStep: state.t, accumulator: accumulator?.toJSON(), seed: spec.seed },
    });
    pruneOldCheckpoints(ckRoot, spec.keepCheckpoints);
    lastCheckpoint = step;
    events.emit({ type: 'checkpoint', path, step });
  };
  let lastCheckpoint: number | null = job.resumedFrom;

  const tokensPerStep = spec.batchSize * spec.accumulate * spec.data.seqLen;
  if (st.step === 0 && job.resumedFrom === null) {
    snapshot(0, 'start');
    // the curve's first point: the held-out loss of the starting model (a pretrained source is not at chance)
    const start = heldOutLoss(loop.model, blocks, spec.batchSize, spec.evalBatches);
    if (Number.isFinite(start)) metric({ step: -1, type: 'eval', tokens: 0, validLoss: start, validPerplexity: Math.exp(start) });
  }
  let lastLoss = Number.NaN;
  let validLoss = Number.NaN;
  const loopStart = Date.now();
  const startStep = st.step;
  let stepsThisCall = 0;
  let end;
  try {
    end = loop.run({
      from: st.step,
      to: spec.steps,
      cursor: st.cursor,
      stopAfter: deps.stopAfter,
      signal: deps.signal,
      beforeStep: (step) => {
        if (!plan) return;
        const { event, slimmed } = plan.beforeStep(step, loop);
        if (event) {
          metric({ type: 'prune', ...event });
          snapshot(step, 'prune');
        }
        if (slimmed) {
          snapshot(step, 'slim');
          events.log('info', `step ${step}: slimmed to ${loop.model.parameterCount()} parameters${st.targetReached ? ' (target reached)' : ''}`);
        }
      },
      afterStep: (step, o: StepOutcome, cursor) => {
        if ((step + 1) % spec.guardEvery === 0 || step + 1 === spec.steps) {
          const bad = firstNonFinite(loop.model.parameters());
          if (bad) throw numericError(step, `the weight ${bad}`);
        }
        st.tokens += tokensPerStep;
        st.cursor = cursor;
        st.step = step + 1;
        lastLoss = o.loss;
        stepsThisCall++;
        const seconds = (Date.now() - loopStart) / 1000;
        const tokPerSec = (stepsThisCall * tokensPerStep) / Math.max(seconds, 1e-9);
        const params = plan ? plan.tracker.effectiveCount() : loop.model.parameterCount();
        metric({ step, type: 'train', tokens: st.tokens, loss: o.loss, lr: o.lr, gradNorm: o.gradNorm, params, physicalParams: loop.model.parameterCount(), tokPerSec: Math.round(tokPerSec) });
        const eta = ((spec.steps - step - 1) * tokensPerStep) / Math.max(tokPerSec, 1e-9);
        events.progress('train', step + 1, spec.steps, `loss ${o.loss.toFixed(3)} · ${Math.round(tokPerSec)} tok/s · eta ${Math.round(eta)}s`, 'steps');
        if (st.step % spec.evalEvery === 0 || st.step === spec.steps) {
          validLoss = heldOutLoss(loop.model, blocks, spec.batchSize, spec.evalBatches);
          metric({ step, type: 'eval', tokens: st.tokens, validLoss, validPerplexity: Math.exp(validLoss) });
          events.metric('valid_perplexity', Math.exp(validLoss), st.step);
        }
        if (st.step % spec.checkpointEvery === 0 || st.step === spec.steps) writeCk(st.step);
      },
    });
    // Ctrl-C: the current step is checkpointed first, so nothing is lost
    if (end.reason === 'signal' && st.step % spec.checkpointEvery !== 0 && stepsThisCall > 0) writeCk(st.step);
  } catch (e) {
    if (e instanceof TopiaryError && e.code === 'E_NUMERIC') {
      const kept = lastCheckpoint === null ? 'no checkpoint was written yet' : `the last good checkpoint is step ${lastCheckpoint} (resume continues from it)`;
      metric({ step: st.step, type: 'fault', code: e.code, message: e.message, lastCheckpoint });
      events.log('error', `${e.message}; ${kept}`);
      closeJob(job);
      throw new TopiaryError('E_NUMERIC', `${e.message}; ${kept}`, { where: e.where, hint: e.hint, cause: e });
    }
    closeJob(job);
    throw e;
  }

  const finished = st.step >= spec.steps;
  if (finished) {
    if (plan) plan.slim(loop);
    if (Number.isNaN(validLoss)) validLoss = heldOutLoss(loop.model, blocks, spec.batchSize, spec.evalBatches);
    await saveModel(loop.model, join(out, 'model'));
    writeJsonAtomic(join(out, 'architecture.json'), {
      params: loop.model.parameterCount(),
      sourceParams: st.sourceParams,
      config: configToHf(loop.model.config, 'float32'),
      layers: architecture().layers,
      hidden: loop.model.config.dim,
    });
  }
  const result: TrainResult = {
    steps: st.step,
    tokens: st.tokens,
    finalLoss: lastLoss,
    validLoss,
    validPerplexity: Math.exp(validLoss),
    params: loop.model.parameterCount(),
    sourceParams: st.sourceParams,
    architecture: architecture(),
    config: loop.model.config,
    resumedFrom: job.resumedFrom,
    seconds: (Date.now() - started) / 1000,
    finished,
    out,
  };
  if (finished) writeJsonAtomic(join(out, 'summary.json'), { ...result, stepsThisCall, startStep });
  closeJob(job);
  return result;
}

function closeJob(job: Job): void {
  for (const k of job.loop.keep.values()) k.dispose();
  job.loop.optimizer.dispose();
  job.loop.model.dispose();
  job.teacher?.model.dispose();
}
