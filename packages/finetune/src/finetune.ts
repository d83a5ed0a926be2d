/**
 * Recovery fine-tuning: a short full fine-tuning run after pruning, optionally distilling the dense model.
 *
 * Every step takes the next `batchSize` windows (cycling through them in a seeded order), computes the recovery
 * loss (CE, or α·T²·KL + (1 − α)·CE against the teacher's logits), and applies one optimiser step at the
 * scheduled learning rate. Masks the model carries (element or group masks) are re-applied after each step, so
 * pruned weights stay pruned.
 */
import * as tf from '@tensorflow/tfjs';
import { TopiaryError, type CausalLM, type DependencyContainer, type EventBus } from '@topiary/kernel';
import { SeededRandom } from '@topiary/linalg';
import { recoveryLoss, type DistillOptions } from './distill.js';
import { checkSchedule, lrSchedule, type LrScheduleInput } from './schedule.js';

/**
 * One optimiser step: applies gradients (keyed by parameter name) to the model at a learning rate and returns the
 * gradient norm. `AdamW` from @topiary/model-llama has exactly this shape.
 */
export interface RecoveryOptimizer {
  apply(model: CausalLM, grads: ReadonlyMap<string, tf.Tensor>, lr: number): number;
}

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
  distill?: DistillOptions;
  optimizer: RecoveryOptimizer;
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

function stack(windows: readonly Int32Array[]): tf.Tensor2D {
  const t = windows[0]!.length;
  const flat = new Int32Array(windows.length * t);
  windows.forEach((w, i) => flat.set(w, i * t));
  return tf.tensor2d(flat, [windows.length, t], 'int32');
}

/** Logits [b·(t−1), V] of every position but the last, and the next-token targets [b·(t−1)]. */
function shifted(model: CausalLM, ids: tf.Tensor2D): { logits: tf.Tensor2D; targets: tf.Tensor1D } {
  const [b, t] = ids.shape;
  const input = tf.slice(ids, [0, 0], [b, t - 1]);
  const logits = model.forward(input);
  const v = logits.shape[2];
  return { logits: tf.reshape(logits, [b * (t - 1), v]), targets: tf.reshape(tf.slice(ids, [0, 1], [b, t - 1]), [b * (t - 1)]) };
}

export async function finetune(model: CausalLM, opts: FinetuneOptions): Promise<FinetuneReport> {
  const schedule = checkSchedule(opts.schedule);
  const learningRate = lrSchedule(opts.container, schedule);
  if (opts.windows.length === 0) throw new TopiaryError('E_DATA', 'fine-tuning needs training windows, got none', { where: '--data' });
  if (opts.windows[0]!.length < 2) throw new TopiaryError('E_DATA', 'training windows need at least 2 tokens', { where: '--data' });
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
    throw new TopiaryError('E_USAGE', `batch size must be a positive integer, got ${opts.batchSize}`, { where: '--batch-size' });
  }
  const teacher = opts.teacher ?? null;
  const distill = opts.distill ?? { temperature: 1, alpha: 0 };
  if (teacher && teacher.config.vocabSize !== model.config.vocabSize) {
    throw new TopiaryError('E_USAGE', `teacher vocabulary (${teacher.config.vocabSize}) differs from the model's (${model.config.vocabSize})`, {
      where: '--distill-from',
    });
  }
  const params = model.parameters();
  const names = [...params.keys()].filter((n) => params.get(n)!.trainable !== false);
  const vars = names.map((n) => params.get(n)!);
  const byVar = new Map(names.map((n) => [params.get(n)!.name, n] as const));
  const rng = new SeededRandom(opts.seed);
  let order: number[] = [];
  let cursor = 0;
  const nextBatch = (): Int32Array[] => {
    const out: Int32Array[] = [];
    while (out.length < opts.batchSize) {
      if (cursor >= order.length) {
        order = opts.windows.map((_, i) => i);
        rng.shuffle(order);
        cursor = 0;
      }
      out.push(opts.windows[order[cursor++]!]!);
    }
    return out;
  };
  const losses: number[] = [];
  const started = performance.now();
  const logEvery = opts.logEvery ?? 10;
  for (let step = 0; step < schedule.steps; step++) {
    if (opts.signal?.aborted) throw new TopiaryError('E_USAGE', 'fine-tuning was aborted', { where: 'finetune' });
    const lr = learningRate(step);
    const ids = stack(nextBatch());
    const target = teacher ? tf.tidy(() => shifted(teacher, ids).logits) : null;
    const { value, grads } = tf.variableGrads(() => {
      const { logits, targets } = shifted(model, ids);
      return recoveryLoss(logits, targets, target, distill);
    }, vars);
    const named = new Map<string, tf.Tensor>();
    for (const [k, g] of Object.entries(grads)) named.set(byVar.get(k) ?? k, g);
    opts.optimizer.apply(model, named, lr);
    model.applyMasks();
    const loss = (await value.data())[0]!;
    tf.dispose([value, ids, ...(target ? [target] : [])]);
    tf.dispose(grads);
    if (!Number.isFinite(loss)) {
      throw new TopiaryError('E_NUMERIC', `loss became ${loss} at step ${step + 1}`, { where: 'finetune', hint: 'lower --lr' });
    }
    losses.push(loss);
    opts.events?.progress('finetune', step + 1, schedule.steps, `loss ${loss.toFixed(4)} lr ${lr.toExponential(2)}`, 'step');
    if ((step + 1) % logEvery === 0 || step === schedule.steps - 1) opts.events?.metric('finetune/loss', loss, step + 1, { lr });
  }
  return {
    steps: schedule.steps,
    losses,
    firstLoss: losses[0]!,
    lastLoss: losses[losses.length - 1]!,
    seconds: (performance.now() - started) / 1000,
    tokens: schedule.steps * opts.batchSize * (opts.windows[0]!.length - 1),
  };
}
