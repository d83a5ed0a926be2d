/**
 * Gradients of the model's loss over a few calibration batches, kept on the host per parameter:
 * `grad` = mean over batches of the batch-mean loss gradient, `gradSquared` = mean over batches of its square
 * (the empirical Fisher diagonal LLM-Pruner's second-order term uses; with one batch it is simply grad²).
 */
import * as tf from '@tensorflow/tfjs';
import { TopiaryError, type CausalLM, type EventBus, type Saliency, type SaliencyStats } from '@topiary/kernel';
import type { ElementScores } from './aggregate.js';

export interface ParameterGradients {
  grad: Float32Array;
  gradSquared: Float32Array;
  shape: readonly number[];
}

export interface GradientOptions {
  /** Sequences per batch (default 1 batch holding all windows). */
  batchSize?: number;
  /** Only these parameters (default: all). */
  params?: ReadonlySet<string>;
  events?: EventBus;
  task?: string;
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

export async function collectGradients(
  model: CausalLM,
  windows: readonly Int32Array[],
  options: GradientOptions = {},
): Promise<Map<string, ParameterGradients>> {
  if (windows.length === 0) {
    throw new TopiaryError('E_DATA', 'gradient-based importance needs calibration windows, got none', {
      where: 'calibration',
      hint: 'pass calibration data (e.g. --calibration FILE --samples 10)',
    });
  }
  const batches = batchWindows(windows, options.batchSize ?? windows.length);
  const named = [...model.parameters()].filter(([name, v]) => v.trainable !== false && (!options.params || options.params.has(name)));
  const byVarName = new Map(named.map(([name, v]) => [v.name, name] as const));
  const acc = new Map<string, ParameterGradients>();
  for (const [name, v] of named) {
    const n = v.size;
    acc.set(name, { grad: new Float32Array(n), gradSquared: new Float32Array(n), shape: v.shape });
  }
  const vars = named.map(([, v]) => v);
  for (let b = 0; b < batches.length; b++) {
    const ids = windowsTensor(batches[b]!);
    const { value, grads } = tf.variableGrads(() => model.loss(ids), vars);
    for (const [varName, g] of Object.entries(grads)) {
      const name = byVarName.get(varName);
      if (name === undefined) continue;
      const host = (await g.data()) as Float32Array;
      const slot = acc.get(name)!;
      for (let i = 0; i < host.length; i++) {
        const x = host[i]!;
        slot.grad[i]! += x;
        slot.gradSquared[i]! += x * x;
      }
    }
    value.dispose();
    tf.dispose(grads);
    ids.dispose();
    options.events?.progress(options.task ?? 'gradients', b + 1, batches.length, undefined, 'batch');
  }
  const inv = 1 / batches.length;
  for (const slot of acc.values()) {
    for (let i = 0; i < slot.grad.length; i++) {
      slot.grad[i]! *= inv;
      slot.gradSquared[i]! *= inv;
    }
  }
  return acc;
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
