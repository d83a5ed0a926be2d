/**
 * The one training loop: pretraining, pruning-aware pretraining (`train`) and recovery fine-tuning (`finetune`) all
 * run their optimiser steps here.
 *
 *   one step:  forward + backward over `accumulate` micro-batches (the distilled loss when a teacher is given; the
 *              LM head's loss in vocabulary-bounded chunks either way) → mean gradient → gradients of masked
 *              elements zeroed → NaN/Inf guard on the loss and on every gradient → observers see the gradients
 *              (the pruning-aware trainer folds group saliency from them) → AdamW with global-norm clipping →
 *              masks re-applied
 *   the loop:  before-step hook (pruning decisions may replace the model and optimiser) → step → after-step hook
 *              (metrics, held-out loss, checkpoints); stops at the last step, after `stopAfter` steps of this call,
 *              or at the next step boundary once `signal` is aborted
 */
import * as tf from '@tensorflow/tfjs-core';
import { TopiaryError, type CausalLM } from '@topiary/kernel';
import { LlamaModel, type AdamW, type Distillation } from '@topiary/model-llama';
import { gradientNorm } from './optimizer.js';

/** Token batches [b, seqLen + 1] by a run-wide cursor (one per micro-batch), so a resumed run reads on exactly. */
export interface BatchSource {
  batch(cursor: number): tf.Tensor2D;
}

/** A teacher to distil from while training (the unpruned source). */
export interface Teacher extends Distillation {
  model: LlamaModel;
}

export interface StepOutcome {
  loss: number;
  gradNorm: number;
  lr: number;
}

export function numericError(step: number, what: string): TopiaryError {
  return new TopiaryError('E_NUMERIC', `non-finite value at step ${step} in ${what}; training stopped`, {
    where: `step ${step}: ${what}`,
    hint: 'the last good checkpoint was kept; lower the learning rate or check the data, then resume',
  });
}

export interface LoopParts {
  model: CausalLM;
  optimizer: AdamW;
  batches: BatchSource;
  /** Learning rate of a step (0-based). */
  lr(step: number): number;
  /** Micro-batches per optimiser step. */
  accumulate: number;
  teacher?: Teacher | null;
  /** Element keep masks (1 live): gradients of removed elements are zeroed before the update. */
  keep?: ReadonlyMap<string, tf.Tensor>;
  /** Called with the step's mean (masked) gradients before the update; must not dispose them. */
  observe?(step: number, params: ReadonlyMap<string, tf.Variable>, grads: ReadonlyMap<string, tf.Tensor>): void;
  /** Called after each optimiser update, before the guards (tests inject faults here). */
  afterUpdate?(step: number, model: CausalLM): void;
}

export interface LoopControl {
  /** First step to run (0-based) and the run's last step + 1. */
  from: number;
  to: number;
  /** Micro-batch cursor of the first step. */
  cursor: number;
  stopAfter?: number;
  signal?: AbortSignal;
  /** Decisions before a step (pruning); may swap `loop.model` / `loop.optimizer`. */
  beforeStep?(step: number): void;
  /** Metrics, evaluation and checkpoints after a step; `cursor` is the next step's. */
  afterStep?(step: number, outcome: StepOutcome, cursor: number): void;
}

export interface LoopEnd {
  /** The next step to run (= `to` when finished). */
  step: number;
  cursor: number;
  steps: number;
  reason: 'done' | 'stopAfter' | 'signal';
}

export class TrainingLoop {
  model: CausalLM;
  optimizer: AdamW;
  keep: ReadonlyMap<string, tf.Tensor>;

  constructor(private readonly parts: LoopParts) {
    this.model = parts.model;
    this.optimizer = parts.optimizer;
    this.keep = parts.keep ?? new Map();
    if (parts.teacher) {
      if (!(parts.model instanceof LlamaModel)) throw new TopiaryError('E_USAGE', 'distillation needs a LLaMA-family student', { where: 'distill' });
      if (parts.teacher.model.config.vocabSize !== parts.model.config.vocabSize) {
        throw new TopiaryError('E_USAGE', `the teacher's vocabulary (${parts.teacher.model.config.vocabSize}) differs from the model's (${parts.model.config.vocabSize})`, {
          where: 'distill.from',
        });
      }
    }
  }

  /** One optimiser step over the micro-batches at `cursor`, `cursor + 1`, ... */
  step(step: number, cursor: number): StepOutcome {
    const { accumulate } = this.parts;
    const params = this.model.parameters();
    const names = [...params.keys()].filter((n) => params.get(n)!.trainable !== false);
    const vars = names.map((n) => params.get(n)!);
    const grads = new Map<string, tf.Tensor>();
    let lossSum = 0;
    try {
      for (let micro = 0; micro < accumulate; micro++) {
        const ids = this.parts.batches.batch(cursor + micro);
        const teacher = this.parts.teacher;
        const head = teacher ? teacher.model.teacherHead(ids, teacher) : null;
        let result: { value: tf.Scalar; grads: tf.NamedTensorMap };
        try {
          result = tf.variableGrads(() => (head ? (this.model as LlamaModel).loss(ids, head) : this.model.loss(ids)), vars);
        } finally {
          head?.h.dispose();
          ids.dispose();
        }
        lossSum += result.value.dataSync()[0]!;
        result.value.dispose();
        names.forEach((name, i) => {
          const g = result.grads[vars[i]!.name];
          if (!g) return;
          const prev = grads.get(name);
          if (prev) {
            grads.set(name, tf.add(prev, g));
            prev.dispose();
            g.dispose();
          } else grads.set(name, g);
        });
      }
      const loss = lossSum / accumulate;
      if (!Number.isFinite(loss)) throw numericError(step, 'the loss');
      for (const [name, g] of grads) {
        const k = this.keep.get(name);
        if (accumulate === 1 && !k) continue;
        const scaled = tf.tidy(() => {
          const mean = accumulate === 1 ? g : tf.div(g, accumulate);
          return k ? tf.mul(mean, k) : mean;
        });
        g.dispose();
        grads.set(name, scaled);
      }
      const { norm, nonFinite } = gradientNorm(grads);
      if (nonFinite) throw numericError(step, `the gradient of ${nonFinite}`);
      this.parts.observe?.(step, params, grads);
      const lr = this.parts.lr(step);
      this.optimizer.step(params, grads, lr, norm);
      this.model.applyMasks();
      this.parts.afterUpdate?.(step, this.model);
      return { loss, gradNorm: norm, lr };
    } finally {
      for (const g of grads.values()) g.dispose();
    }
  }

  /** Steps `from` … `to − 1` (see `LoopControl` for the hooks and when it stops early). */
  run(c: LoopControl): LoopEnd {
    let cursor = c.cursor;
    let steps = 0;
    for (let step = c.from; step < c.to; step++) {
      if (c.stopAfter !== undefined && steps >= c.stopAfter) return { step, cursor, steps, reason: 'stopAfter' };
      if (c.signal?.aborted) return { step, cursor, steps, reason: 'signal' };
      c.beforeStep?.(step);
      const outcome = this.step(step, cursor);
      cursor += this.parts.accumulate;
      steps++;
      c.afterStep?.(step, outcome, cursor);
    }
    return { step: c.to, cursor, steps, reason: 'done' };
  }
}
