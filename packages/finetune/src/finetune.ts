/**
 * Recovery fine-tuning: a short full fine-tuning run after pruning, optionally distilling the dense model.
 *
 * The steps run in the trainer's one training loop (`TrainingLoop`): the same batch sampler (a seeded permutation
 * of the windows per epoch), the same step (the LM head's loss in vocabulary-bounded chunks, distilled as
 * α·T²·KL + (1 − α)·CE against the teacher's logits when a teacher is given, NaN/Inf guards, global-norm clipping,
 * AdamW), masks re-applied after each step so pruned weights stay pruned. Only the schedule and what is reported
 * are recovery's own.
 */
import { TopiaryError, type CausalLM, type DependencyContainer, type EventBus } from '@topiary/kernel';
import { LlamaModel, type AdamW, type Distillation } from '@topiary/model-llama';
import { BatchSampler, TrainingLoop } from '@topiary/trainer';
import { checkSchedule, lrSchedule, type LrScheduleInput } from './schedule.js';

export interface FinetuneOptions {
  /** The LR schedule (`resolveFinetuneOptions` gives one); its curve comes from a scheduler plugin in `container`. */
  schedule: LrScheduleInput;
  /** The run's container: the LR scheduler is resolved from it (E_PLUGIN_UNKNOWN when none is installed). */
  container: DependencyContainer;
  /** Token windows of equal length (each window gives length − 1 predictions). */
  windows: readonly Int32Array[];
  batchSize: number;
  seed: number;
  /** The dense model whose logits the student matches; null for plain fine-tuning. */
  teacher?: CausalLM | null;
  distill?: Distillation;
  /** The optimiser (its options carry weight decay and the clipping norm; the schedule gives the learning rate). */
  optimizer: AdamW;
  events?: EventBus;
  /**
   * Emit the `finetune/loss` metric every this many optimiser steps and at the last one (default 10). This loop is
   * the one emitter of `finetune/loss`: its step is the optimiser step the loss was computed for, counted from 1
   * (step k = the loss of the batch the k-th update was computed from), tagged with the step's learning rate.
   */
  logEvery?: number;
  signal?: AbortSignal;
}

export interface FinetuneReport {
  steps: number;
  losses: number[];
  firstLoss: number;
  lastLoss: number;
  seconds: number;
  tokens: number;
}

export async function finetune(model: CausalLM, opts: FinetuneOptions): Promise<FinetuneReport> {
  const schedule = checkSchedule(opts.schedule);
  const learningRate = lrSchedule(opts.container, schedule);
  if (opts.windows.length === 0) throw new TopiaryError('E_DATA', 'fine-tuning needs training windows, got none', { where: '--data' });
  const len = opts.windows[0]!.length;
  if (len < 2) throw new TopiaryError('E_DATA', 'training windows need at least 2 tokens', { where: '--data' });
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
    throw new TopiaryError('E_USAGE', `batch size must be a positive integer, got ${opts.batchSize}`, { where: '--batch-size' });
  }
  const teacher = opts.teacher ?? null;
  if (teacher && teacher.config.vocabSize !== model.config.vocabSize) {
    throw new TopiaryError('E_USAGE', `teacher vocabulary (${teacher.config.vocabSize}) differs from the model's (${model.config.vocabSize})`, {
      where: '--distill-from',
    });
  }
  if (teacher && !(teacher instanceof LlamaModel)) throw new TopiaryError('E_USAGE', 'the distillation teacher must be a LLaMA-family model', { where: '--distill-from' });
  const distill = opts.distill ?? { temperature: 1, alpha: 0 };
  // windows may repeat within a batch when there are fewer than one batch of them (a tiny calibration text)
  const windows = opts.windows.length >= opts.batchSize ? opts.windows : Array.from({ length: opts.batchSize }, (_, i) => opts.windows[i % opts.windows.length]!);
  const sampler = new BatchSampler({ blockLen: len, train: [...windows], valid: [], tokens: windows.length * len }, opts.batchSize, opts.seed);
  const loop = new TrainingLoop({
    model,
    optimizer: opts.optimizer,
    batches: sampler,
    lr: learningRate,
    accumulate: 1,
    teacher: teacher && distill.alpha > 0 ? { model: teacher as LlamaModel, ...distill } : null,
  });
  const losses: number[] = [];
  const started = performance.now();
  const logEvery = opts.logEvery ?? 10;
  const end = loop.run({
    from: 0,
    to: schedule.steps,
    cursor: 0,
    signal: opts.signal,
    afterStep: (step, o) => {
      losses.push(o.loss);
      opts.events?.progress('finetune', step + 1, schedule.steps, `loss ${o.loss.toFixed(4)} lr ${o.lr.toExponential(2)}`, 'step');
      if ((step + 1) % logEvery === 0 || step === schedule.steps - 1) opts.events?.metric('finetune/loss', o.loss, step + 1, { lr: o.lr });
    },
  });
  if (end.reason === 'signal') throw new TopiaryError('E_USAGE', 'fine-tuning was aborted', { where: 'finetune' });
  return {
    steps: schedule.steps,
    losses,
    firstLoss: losses[0]!,
    lastLoss: losses[losses.length - 1]!,
    seconds: (performance.now() - started) / 1000,
    tokens: schedule.steps * opts.batchSize * (len - 1),
  };
}
