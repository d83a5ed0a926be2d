/**
 * Calibration batches and element scores for gradient-based importance. The gradients themselves are collected block
 * by block (`collectGradients` / `forEachBlockGradient` in block-gradients.ts), kept on the host per parameter:
 * `grad` = the gradient of the mean loss over ALL windows (each batch's mean-loss gradient weighted by its share of
 * the windows, so it does not depend on how the windows are batched), `gradSquared` = the same weighted mean of the
 * squared batch gradients (the empirical Fisher diagonal LLM-Pruner's second-order term uses; with one batch it is
 * simply grad²).
 *
 * Batches bound the memory of a pass: activations, logits and their gradients grow with batch × seqLen, so the
 * default batch holds `DEFAULT_BATCH_TOKENS` tokens whatever `--samples` and `--seqlen` are (LLM-Pruner's own 10 × 64
 * windows still fit in one batch, as in its code).
 */
import * as tf from '@tensorflow/tfjs-core';
import { TopiaryError, type CausalLM, type EventBus, type Saliency, type SaliencyStats } from '@topiary/kernel';
import type { ElementScores } from './aggregate.js';

export interface ParameterGradients {
  grad: Float32Array;
  gradSquared: Float32Array;
  shape: readonly number[];
}

export interface GradientOptions {
  /** Sequences per batch (default: `calibrationBatchSize`). */
  batchSize?: number;
  /** Only these parameters (default: all). */
  params?: ReadonlySet<string>;
  events?: EventBus;
  task?: string;
}

/** Calibration tokens per forward (and backward) pass when no batch size is given. */
export const DEFAULT_BATCH_TOKENS = 2048;

/** Windows per batch: `requested` when > 0, else as many as fit in DEFAULT_BATCH_TOKENS (at least one). */
export function calibrationBatchSize(windows: readonly Int32Array[], requested = 0): number {
  if (requested > 0) return requested;
  const seqLen = windows[0]?.length ?? 1;
  return Math.max(1, Math.min(windows.length, Math.floor(DEFAULT_BATCH_TOKENS / seqLen)));
}

/** Stack equal-length windows into batches of `batchSize` rows. */
export function batchWindows(windows: readonly Int32Array[], batchSize: number): Int32Array[][] {
  if (windows.length === 0) return [];
  const len = windows[0]!.length;
  for (const w of windows) {
    if (w.length !== len) throw new TopiaryError('E_DATA', `calibration windows differ in length (${w.length} vs ${len})`, { where: 'calibration' });
  }
  const out: Int32Array[][] = [];
  for (let i = 0; i < windows.length; i += batchSize) out.push(windows.slice(i, i + batchSize));
  return out;
}

export function windowsTensor(batch: readonly Int32Array[]): tf.Tensor2D {
  const len = batch[0]!.length;
  const flat = new Int32Array(batch.length * len);
  batch.forEach((w, i) => flat.set(w, i * len));
  return tf.tensor2d(flat, [batch.length, len], 'int32');
}

/** Per-parameter element scores of a saliency criterion, from weights and collected gradients. */
export function elementScores(model: CausalLM, saliency: Saliency, grads: ReadonlyMap<string, ParameterGradients>): ElementScores {
  const scores = new Map<string, Float32Array>();
  const shapes = new Map<string, readonly number[]>();
  for (const [name, g] of grads) {
    const shape = g.shape;
    const rows = shape[0] ?? 1;
    const cols = shape.length > 1 ? shape[1]! : 1;
    const stats: SaliencyStats = { param: name, rows, cols, weight: model.readWeight(name), grad: g.grad, gradSquared: g.gradSquared };
    scores.set(name, saliency.score(stats));
    shapes.set(name, shape);
  }
  return { scores, shapes };
}
