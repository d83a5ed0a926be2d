/**
 * The training loop: plain pretraining, and pruning-aware pretraining (EfficientLLM-style) of a LLaMA model.
 *
 *   for each step:
 *     [prune]  the size schedule says how many parameters may remain; groups ranked globally by accumulated
 *              saliency (normalised per parameter) are masked until the live count is at or just below it; their
 *              optimiser state is zeroed; once enough is masked (or the target is reached) the model is slimmed
 *              and the optimiser moments / accumulator are carried to the smaller shapes by kept indices
 *     forward/backward over `accumulate` micro-batches; NaN/Inf guard on the loss and every gradient
 *     gradients of masked elements zeroed → masked groups receive no update
 *     [prune]  fold this step's group saliency (from these same gradients) into the accumulator
 *     AdamW update with global-norm clipping; masks re-applied; weights guarded
 *     metrics.jsonl line; progress event; periodic held-out perplexity and checkpoint
 *
 * Resume restores weights, masks, optimiser moments and step, accumulator, and the data cursor, so the loss curve
 * equals an uninterrupted run's. Local OBS-style compensation of the touched layers after masking is not
 * implemented yet (the EfficientLLM summary mentions it; marked *unverified* there).
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ioError, parseOptions, resolveAllOrNone, Tokens, TopiaryError, EventBus, type CausalLM, type DependencyContainer, type ModelConfig, type Raw, type Schedule } from '@topiary/kernel';
import { writeFileAtomic, writeJsonAtomic } from '@topiary/files';
import { loadTokenizer } from '@topiary/corpus';
import { configToHf, readHfConfig, createLlama, LlamaModel, loadModel, makeConfig, saveModel, slimWeights, type CreateConfig } from '@topiary/model-llama';
import { AccumulatorToken, builtinAccumulators, createAccumulator, type SaliencyAccumulator } from './accumulators.js';
import { cleanCheckpointLeftovers, loadLatestCheckpoint, pruneOldCheckpoints, writeCheckpoint, type CheckpointData } from './checkpoint.js';
import { BatchSampler, loadTokenBlocks, type TokenBlocks } from './data.js';
import { AdamW, firstNonFinite, gradientNorm, type AdamWOptions } from './optimizer.js';
import type { NamedOptions, ScheduleSpec, TrainSpec } from './options.js';
import { PruneTracker, selectGroups, slimIdMapping, type ArchitectureSnapshot } from './prune.js';
import { builtinScorers, scorerFromSaliency, type GroupScorer } from './saliency.js';

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

interface RunState {
  step: number;
  tokens: number;
  cursor: number;
  pruneEvents: number;
  targetReached: boolean;
  sourceParams: number;
  targetParams: number | null;
}

function numericError(step: number, what: string): TopiaryError {
  return new TopiaryError('E_NUMERIC', `non-finite value at step ${step} in ${what}; training stopped`, {
    where: `step ${step}: ${what}`,
    hint: 'the last good checkpoint was kept; lower the learning rate or check the data, then resume',
  });
}

/** The schedule a resolved spec describes, its options (plus what the trainer sets) checked by the scheduler's schema. */
function createSchedule(spec: ScheduleSpec, options: Raw = spec.options): Schedule {
  return spec.scheduler.create(parseOptions(spec.scheduler.options, options, spec.where));
}

function findScorer(container: DependencyContainer | undefined, name: string, where: string): GroupScorer {
  const builtin = builtinScorers.find((s) => s.name === name);
  if (builtin) return builtin;
  const sal = container ? resolveAllOrNone(container, Tokens.Saliency).find((s) => s.name === name) : undefined;
  if (sal) {
    const unsupported = sal.needs.filter((n) => n !== 'weights' && n !== 'grads');
    if (unsupported.length) {
      throw new TopiaryError('E_RECIPE', `saliency "${name}" needs ${unsupported.join(', ')}, which training steps do not collect`, {
        where,
        hint: 'during training only weights and gradients (and their squares) are available',
      });
    }
    return scorerFromSaliency(sal);
  }
  const known = [...builtinScorers.map((s) => s.name), ...(container ? resolveAllOrNone(container, Tokens.Saliency).map((s) => s.name) : [])];
  throw new TopiaryError('E_PLUGIN_UNKNOWN', `unknown saliency "${name}"`, { where, hint: `known: ${known.join(', ')}` });
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

/**
 * Physically remove the masked groups and carry the optimiser moments to the smaller shapes by kept indices
 * (the same `slimWeights` rules the model uses). Returns the new model and optimiser and how group ids moved;
 * the caller disposes the old ones.
 */
export function slimWithState(model: CausalLM, opt: AdamW, options: AdamWOptions): { model: CausalLM; opt: AdamW; mapping: Map<string, string> } {
  const masked = new Set(model.maskedGroups());
  const state = opt.exportState(model.parameters());
  const mapping = slimIdMapping(model.config, masked);
  const m = slimWeights(model.config, state.m, masked, new Map()).weights;
  const v = slimWeights(model.config, state.v, masked, new Map()).weights;
  const slimmed = model.slim();
  return { model: slimmed, opt: new AdamW(options, { t: state.t, m, v }), mapping };
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

  // ---- everything that can be checked before a tensor exists
  const lrSchedule = createSchedule(spec.lr);
  const tokenizer = await loadTokenizer(spec.data.tokenizer);
  const blocks = loadTokenBlocks(spec.data.train, tokenizer, spec.data.seqLen, spec.data.validFraction);
  const sampler = new BatchSampler(blocks, spec.batchSize, spec.seed);
  const prune = spec.prune;
  const scorer = prune ? findScorer(deps.container, prune.saliency, `${prune.schedule.where.replace(/\.schedule$/, '')}.saliency`) : null;
  const accumulator = prune ? findAccumulator(deps.container, prune.accumulator) : null;

  // ---- model and state: fresh, or from the newest verified checkpoint
  let model: CausalLM;
  let opt: AdamW;
  let resumedFrom: number | null = null;
  const st: RunState = { step: 0, tokens: 0, cursor: 0, pruneEvents: 0, targetReached: false, sourceParams: 0, targetParams: null };
  const ck: CheckpointData | null = spec.resume
    ? loadLatestCheckpoint(ckRoot, (path, reason) => events.log('warn', `skipping checkpoint ${path}: ${reason}`))
    : null;
  if (ck) {
    const s = ck.state as { config: ModelConfig; masked: string[]; run: RunState; accumulator?: unknown; optimizerStep: number };
    model = new LlamaModel(s.config, ck.weights, ck.params.length ? 'checkpoint' : 'checkpoint');
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
    if (spec.model.from) model = await loadModel(spec.model.from, { tokenizer, tokenizerFile: spec.data.tokenizer });
    else if (spec.model.architecture) {
      const file = spec.model.architecture;
      if (!existsSync(file)) throw new TopiaryError('E_IO', 'architecture config not found', { where: file, hint: 'give a config.json or a model folder (e.g. <run>/model)' });
      model = createLlama(readHfConfig(statSync(file).isDirectory() ? file : dirname(file)), { seed: spec.seed });
    } else model = createLlama(makeConfig(spec.model.config as unknown as CreateConfig, 'model'), { seed: spec.seed });
    if (model.config.vocabSize !== tokenizer.vocabSize) {
      throw new TopiaryError('E_CONFIG', `the model's vocabulary (${model.config.vocabSize}) differs from the tokenizer's (${tokenizer.vocabSize})`, {
        where: 'model.vocabSize',
        hint: `set vocabSize: ${tokenizer.vocabSize}`,
      });
    }
    if (model.config.maxSeqLen < spec.data.seqLen + 1) {
      throw new TopiaryError('E_CONFIG', `seqLen ${spec.data.seqLen} (+1) exceeds the model's maxSeqLen ${model.config.maxSeqLen}`, { where: 'data.seqLen' });
    }
    opt = new AdamW(spec.optimizer);
    st.sourceParams = model.parameterCount();
    writeFileAtomic(metricsPath, '');
  }

  // ---- pruning plan
  let tracker = new PruneTracker(model);
  let sizeSchedule: Schedule | null = null;
  if (prune) {
    if (st.targetParams === null) {
      const target = prune.targetParams ?? Math.round(st.sourceParams * prune.targetRatio!);
      if (target >= st.sourceParams) {
        throw new TopiaryError('E_RECIPE', `target size ${target} is not smaller than the source model (${st.sourceParams} parameters)`, {
          where: prune.schedule.where.replace(/\.schedule$/, '.targetParams'),
          hint: 'prune to fewer parameters than the source has, or train without `prune`',
        });
      }
      st.targetParams = target;
    }
    const finalSparsity = 1 - st.targetParams / st.sourceParams;
    sizeSchedule = createSchedule(prune.schedule, { from: 0, ...prune.schedule.options, to: finalSparsity });
  }
  let keep = tracker.keepTensors();

  const metric = (record: Record<string, unknown>): void => {
    try {
      appendFileSync(metricsPath, `${JSON.stringify(record)}\n`);
    } catch (e) {
      throw ioError(e, metricsPath, 'append to metrics.jsonl');
    }
  };
  const snapshot = (step: number, reason: string): void => {
    const arch = tracker.architecture();
    metric({ step, type: 'architecture', reason, physicalParams: model.parameterCount(), ...arch });
  };

  const writeCk = (step: number): void => {
    const state = opt.exportState(model.parameters());
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
      state: {
        config: model.config,
        masked: [...model.maskedGroups()],
        run: { ...st, step },
        optimizerStep: state.t,
        accumulator: accumulator?.toJSON(),
        seed: spec.seed,
      },
    });
    pruneOldCheckpoints(ckRoot, spec.keepCheckpoints);
    events.emit({ type: 'checkpoint', path, step });
  };

  const slim = (): void => {
    if (model.maskedGroups().length === 0) return;
    const next = slimWithState(model, opt, spec.optimizer);
    opt.dispose();
    model.dispose();
    ({ model, opt } = next);
    accumulator?.remap(next.mapping);
    for (const k of keep.values()) k.dispose();
    tracker = new PruneTracker(model);
    keep = tracker.keepTensors();
  };

  const maybePrune = (step: number): void => {
    if (!prune || !sizeSchedule || st.targetReached) return;
    const target = Math.max(st.targetParams!, Math.round(st.sourceParams * (1 - sizeSchedule(step))));
    const need = tracker.effectiveCount() - target;
    if (need > 0) {
      const { ids, removed } = selectGroups(tracker, {
        kinds: prune.kinds,
        normalise: prune.normalise,
        minKeep: prune.minKeep,
        need,
        score: (id) => accumulator!.value(id),
      });
      if (ids.length === 0) {
        throw new TopiaryError('E_RECIPE', `cannot remove ${need} more parameters: every remaining group is at its minimum`, {
          where: prune.schedule.where.replace(/\.schedule$/, '.minKeep'),
          hint: 'lower minKeep, add group kinds, or choose a larger target',
        });
      }
      model.maskGroups(ids);
      for (const k of keep.values()) k.dispose();
      keep = tracker.keepTensors();
      opt.maskState(keep);
      st.pruneEvents++;
      const byKind: Record<string, number> = {};
      for (const id of ids) {
        const kind = tracker.group(id).kind;
        byKind[kind] = (byKind[kind] ?? 0) + 1;
      }
      metric({ step, type: 'prune', scheduleTarget: target, params: tracker.effectiveCount(), removed, groups: ids.length, byKind });
      snapshot(step, 'prune');
    }
    if (tracker.effectiveCount() <= st.targetParams!) st.targetReached = true;
    const maskedFraction = 1 - tracker.effectiveCount() / tracker.total;
    if (st.targetReached || (need > 0 && maskedFraction >= prune.slimAt)) {
      slim();
      snapshot(step, 'slim');
      events.log('info', `step ${step}: slimmed to ${model.parameterCount()} parameters${st.targetReached ? ' (target reached)' : ''}`);
    }
  };

  // ---- the loop
  const tokensPerStep = spec.batchSize * spec.accumulate * spec.data.seqLen;
  if (st.step === 0 && resumedFrom === null) snapshot(0, 'start');
  let lastLoss = Number.NaN;
  let validLoss = Number.NaN;
  let stepsThisCall = 0;
  const loopStart = Date.now();
  const startStep = st.step;
  try {
    for (let step = st.step; step < spec.steps; step++) {
      if (deps.stopAfter !== undefined && stepsThisCall >= deps.stopAfter) break;
      if (deps.signal?.aborted) {
        if (st.step % spec.checkpointEvery !== 0 && stepsThisCall > 0) writeCk(st.step);
        break;
      }
      maybePrune(step);
      const params = model.parameters();
      const names = [...params.keys()];
      const vars = names.map((n) => params.get(n)!);
      const grads = new Map<string, tf.Tensor>();
      let lossSum = 0;
      for (let micro = 0; micro < spec.accumulate; micro++) {
        const ids = sampler.batch(st.cursor++);
        const { value, grads: g } = tf.variableGrads(() => model.loss(ids), vars);
        ids.dispose();
        lossSum += value.dataSync()[0]!;
        value.dispose();
        names.forEach((name, i) => {
          const gi = g[vars[i]!.name];
          if (!gi) return;
          const prev = grads.get(name);
          if (prev) {
            grads.set(name, tf.add(prev, gi));
            prev.dispose();
            gi.dispose();
          } else grads.set(name, gi);
        });
      }
      const loss = lossSum / spec.accumulate;
      try {
        if (!Number.isFinite(loss)) throw numericError(step, 'the loss');
        for (const [name, g] of grads) {
          const k = keep.get(name);
          if (spec.accumulate === 1 && !k) continue;
          const scaled = tf.tidy(() => {
            const mean = spec.accumulate === 1 ? g : tf.div(g, spec.accumulate);
            return k ? tf.mul(mean, k) : mean;
          });
          g.dispose();
          grads.set(name, scaled);
        }
        const { norm, nonFinite } = gradientNorm(grads);
        if (nonFinite) throw numericError(step, `the gradient of ${nonFinite}`);
        if (prune && scorer && !st.targetReached && step % prune.saliencyEvery === 0) {
          const live = tracker.allGroups(prune.kinds).filter((g) => !tracker.masked.has(g.id));
          accumulator!.fold(scorer.score(live, params, grads));
        }
        const lr = lrSchedule(step);
        opt.step(params, grads, lr, norm);
        model.applyMasks();
        deps.hooks?.afterUpdate?.(step, model);
        if ((step + 1) % spec.guardEvery === 0 || step + 1 === spec.steps) {
          const bad = firstNonFinite(params);
          if (bad) throw numericError(step, `the weight ${bad}`);
        }
        st.tokens += tokensPerStep;
        lastLoss = loss;
        stepsThisCall++;
        const seconds = (Date.now() - loopStart) / 1000;
        const tokPerSec = (stepsThisCall * tokensPerStep) / Math.max(seconds, 1e-9);
        metric({ step, type: 'train', tokens: st.tokens, loss, lr, gradNorm: norm, params: tracker.effectiveCount(), physicalParams: model.parameterCount(), tokPerSec: Math.round(tokPerSec) });
        const eta = ((spec.steps - step - 1) * tokensPerStep) / Math.max(tokPerSec, 1e-9);
        events.progress('train', step + 1, spec.steps, `loss ${loss.toFixed(3)} · ${Math.round(tokPerSec)} tok/s · eta ${Math.round(eta)}s`, 'steps');
      } finally {
        for (const g of grads.values()) g.dispose();
      }
      st.step = step + 1;
      if (st.step % spec.evalEvery === 0 || st.step === spec.steps) {
        validLoss = heldOutLoss(model, blocks, spec.batchSize, spec.evalBatches);
        metric({ step, type: 'eval', tokens: st.tokens, validLoss, validPerplexity: Math.exp(validLoss) });
        events.metric('valid_perplexity', Math.exp(validLoss), st.step);
      }
      if (st.step % spec.checkpointEvery === 0 || st.step === spec.steps) writeCk(st.step);
    }
  } catch (e) {
    if (e instanceof TopiaryError && e.code === 'E_NUMERIC') {
      metric({ step: st.step, type: 'fault', code: e.code, message: e.message });
      events.log('error', e.message);
    }
    for (const k of keep.values()) k.dispose();
    opt.dispose();
    model.dispose();
    throw e;
  }

  const finished = st.step >= spec.steps;
  if (finished) {
    if (model.maskedGroups().length > 0) slim();
    if (Number.isNaN(validLoss)) validLoss = heldOutLoss(model, blocks, spec.batchSize, spec.evalBatches);
    await saveModel(model, join(out, 'model'));
    writeJsonAtomic(join(out, 'architecture.json'), {
      params: model.parameterCount(),
      sourceParams: st.sourceParams,
      config: configToHf(model.config, 'float32'),
      layers: tracker.architecture().layers,
      hidden: model.config.dim,
    });
  }
  const result: TrainResult = {
    steps: st.step,
    tokens: st.tokens,
    finalLoss: lastLoss,
    validLoss,
    validPerplexity: Math.exp(validLoss),
    params: model.parameterCount(),
    sourceParams: st.sourceParams,
    architecture: tracker.architecture(),
    config: model.config,
    resumedFrom,
    seconds: (Date.now() - started) / 1000,
    finished,
    out,
  };
  if (finished) writeJsonAtomic(join(out, 'summary.json'), { ...result, stepsThisCall, startStep });
  for (const k of keep.values()) k.dispose();
  opt.dispose();
  model.dispose();
  return result;
}
