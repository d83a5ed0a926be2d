/**
 * Gradients of the calibration loss, block by block: the backward pass by per-block recomputation, so a streamed
 * model (one block on the heap) gets the same gradients an in-memory one does — the in-memory model runs the very
 * same passes, so the two are bit-identical.
 *
 *  1. forward once over every calibration batch, block by block (the block executor), keeping only each block's
 *     *input* hidden states (`StateStore`: host memory up to the activation budget, a temporary file beyond);
 *  2. at the head: dL/d(last hidden states) of each batch's mean next-token loss, over row chunks of positions so
 *     the [positions, vocab] logits and their gradient stay small;
 *  3. backward in reverse block order: recompute block i's forward from its stored input under a gradient tape
 *     (`model.block`, which is the model's one training block — the hand-written backward of block-grad.ts), feed it
 *     dL/d(output), take dL/d(weights) and dL/d(input), and hand the block's accumulated gradients to `visit` before
 *     the next block is touched.
 *
 * Memory: one block and its gradients on the heap, the stored block inputs (blocks `lowest`..L−1 × the calibration
 * hidden states, spilled beyond `activationBytes`), one dL/dh per batch, and one chunk of logits at the head.
 *
 * `grad` is the gradient of the mean loss over ALL windows (each batch's mean-loss gradient weighted by its share of
 * the windows, so it does not depend on how the windows are batched); `gradSquared` the same weighted mean of the
 * squared batch gradients (the empirical Fisher diagonal LLM-Pruner's second-order term uses).
 */
import * as tf from '@tensorflow/tfjs-core';
import { TopiaryError, type CausalLM, type EventBus } from '@topiary/kernel';
import { Activations, StateStore, windowBatches } from '@topiary/block-executor';
import { batchWindows, calibrationBatchSize, type GradientOptions, type ParameterGradients } from './gradients.js';

export interface BlockGradientOptions {
  /** Windows per batch (default: `calibrationBatchSize`). */
  batchSize?: number;
  /** Only these parameters (default: every block parameter). */
  params?: ReadonlySet<string>;
  /** The lowest block whose gradients are wanted: the backward pass stops there (default: the lowest holding `params`). */
  lowest?: number;
  /** Bytes of hidden states kept in host memory; the rest spill to a temporary file in `spillDir`. */
  activationBytes?: number;
  spillDir?: string;
  events?: EventBus;
  task?: string;
}

/** Logits (and their gradient) per head chunk at most this many elements (32 MB): positions are chunked, never the vocabulary. */
const HEAD_GRAD_ELEMENTS = 1 << 23;

/** The parameters of each block, from the model's block groups (a block group lists every parameter of its block). */
function blockParameters(model: CausalLM): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const g of model.groups(['block'])) out.set(g.layer!, g.members.map((m) => m.param));
  return out;
}

/**
 * The tfjs variables behind block parameters `names` while the block is on the heap. An in-memory model lists them
 * (`parameters()`); a streamed one holds only the resident block, as tfjs variables named after their parameters
 * (`name`, or `name#k` when another model already holds `name`): those are taken from the engine's registry. Another
 * model's namesakes may come along; they are not on this pass's tape, so they get no gradient.
 */
function blockVariables(model: CausalLM, names: readonly string[]): { name: string; variable: tf.Variable }[] {
  if (!model.streamed) {
    const params = model.parameters();
    return names.flatMap((name) => {
      const variable = params.get(name);
      return variable && variable.trainable !== false ? [{ name, variable }] : [];
    });
  }
  const wanted = new Set(names);
  return Object.values(tf.engine().registeredVariables)
    .map((variable) => ({ name: variable.name.replace(/#\d+$/, ''), variable }))
    .filter(({ name, variable }) => variable.trainable && wanted.has(name));
}

/**
 * dL/d(hidden) at the head for hidden states [b, t, d] after the last block, L = the mean next-token loss over the
 * b·t positions (`targets`, one per position). Positions go through the head in chunks of at most HEAD_GRAD_ELEMENTS
 * logits; each position's gradient depends on its own row only, so the chunking changes no value.
 */
export function headGradient(model: CausalLM, hidden: tf.Tensor3D, targets: Int32Array): { loss: number; grad: Float32Array } {
  const [b, t, d] = hidden.shape;
  const n = b * t;
  const vocab = model.config.vocabSize;
  const rows = Math.max(1, Math.floor(HEAD_GRAD_ELEMENTS / vocab));
  const grad = new Float32Array(n * d);
  let loss = 0;
  const flat = tf.reshape(hidden, [n, d]);
  try {
    for (let start = 0; start < n; start += rows) {
      const count = Math.min(rows, n - start);
      const [h, ids] = tf.tidy(() => [tf.reshape(tf.slice(flat, [start, 0], [count, d]), [1, count, d]) as tf.Tensor3D, tf.tensor1d(targets.subarray(start, start + count), 'int32')] as const);
      const { value, grads } = tf.engine().gradients(
        () => {
          const logp = tf.logSoftmax(tf.reshape(model.head(h), [count, vocab]));
          return tf.div(tf.neg(tf.sum(tf.mul(logp, tf.oneHot(ids, vocab)))), n) as tf.Scalar;
        },
        [h],
      );
      loss += value.dataSync()[0]!;
      grad.set(grads[0]!.dataSync() as Float32Array, start * d);
      tf.dispose([value, ...grads, h, ids]);
    }
  } finally {
    flat.dispose();
  }
  return { loss, grad };
}

/**
 * Run the passes above over `windows` and call `visit(layer, gradients)` for blocks L−1 down to `lowest`, each as
 * soon as its gradients are final (they are the caller's: nothing here keeps them). Returns the mean calibration loss.
 */
export async function forEachBlockGradient(
  model: CausalLM,
  windows: readonly Int32Array[],
  options: BlockGradientOptions,
  visit: (layer: number, grads: Map<string, ParameterGradients>) => void | Promise<void>,
): Promise<number> {
  if (windows.length === 0) {
    throw new TopiaryError('E_DATA', 'gradient-based importance needs calibration windows, got none', {
      where: 'calibration',
      hint: 'pass calibration data (e.g. --calibration FILE --samples 10)',
    });
  }
  const seqLen = windows[0]!.length;
  if (seqLen < 2) throw new TopiaryError('E_USAGE', `gradients need windows of at least 2 tokens, got ${seqLen}`, { where: '--seqlen' });
  const batchSize = calibrationBatchSize(windows, options.batchSize);
  // inputs predict the next token: positions 0..t−2 read, 1..t−1 are the targets (as `CausalLM.loss`)
  const batches = windowBatches(
    windows.map((w) => w.subarray(0, seqLen - 1)),
    batchSize,
  );
  const targets = batchWindows(windows, batchSize).map((batch) => {
    const out = new Int32Array(batch.length * (seqLen - 1));
    batch.forEach((w, i) => out.set(w.subarray(1), i * (seqLen - 1)));
    return out;
  });

  const byBlock = blockParameters(model);
  const wanted = (i: number): string[] => (byBlock.get(i) ?? []).filter((p) => !options.params || options.params.has(p));
  if (options.params) {
    const inBlocks = new Set([...byBlock.values()].flat());
    const outside = [...options.params].find((p) => !inBlocks.has(p));
    if (outside !== undefined) {
      throw new TopiaryError('E_INTERNAL', `gradients are collected block by block; "${outside}" is not a block parameter`, { where: outside });
    }
  }
  const n = model.numBlocks;
  const lowest = options.lowest ?? Math.max(0, [...Array(n).keys()].find((i) => wanted(i).length > 0) ?? n);
  const spill = { ...(options.activationBytes !== undefined ? { budget: options.activationBytes } : {}), ...(options.spillDir !== undefined ? { spillDir: options.spillDir } : {}) };
  const task = options.task ?? 'gradients';

  const inputs = new StateStore(spill);
  const dys: Float32Array[] = [];
  let loss = 0;
  try {
    // 1. forward, keeping the input of every block the backward will reach
    const acts = Activations.embed(model, batches, spill);
    try {
      for (let i = 0; i < n; i++) {
        if (i >= lowest) for (let k = 0; k < batches.length; k++) acts.withBatch(k, (h) => inputs.putTensor(i, k, h));
        acts.advance(model, i);
        options.events?.progress(task, i + 1, 2 * n - lowest, `forward, block ${i}`, 'block');
        await Promise.resolve();
      }
      // 2. the loss's gradient at the head, batch by batch
      for (let k = 0; k < batches.length; k++) {
        const share = batches[k]!.b / windows.length;
        const head = acts.withBatch(k, (h) => headGradient(model, h, targets[k]!));
        dys.push(head.grad);
        loss += share * head.loss;
      }
    } finally {
      acts.dispose();
    }

    // 3. backward, block by block in reverse
    for (let i = n - 1; i >= lowest; i--) {
      const names = wanted(i);
      const acc = new Map<string, ParameterGradients>();
      for (let k = 0; k < batches.length; k++) {
        const share = batches[k]!.b / windows.length; // the batch's weight in the mean over all windows
        const x = inputs.tensor(i, k);
        const dy = tf.tensor3d(dys[k]!, x.shape);
        const xs: tf.Tensor[] = [x];
        const sources: string[] = [];
        // The block's variables exist (a streamed block is resident) only once it has run, so they join `xs` inside
        // the taped function: tfjs (4.22, pinned) reads `xs` when it filters the tape, after the function returns.
        const { value, grads } = tf.engine().gradients(
          () => {
            const y = model.block(i, x);
            for (const { name, variable } of names.length > 0 ? blockVariables(model, names) : []) {
              xs.push(variable);
              sources.push(name);
            }
            return y;
          },
          xs,
          dy,
          true,
        );
        try {
          const seen = new Set<string>();
          for (let j = 1; j < xs.length; j++) {
            const g = grads[j];
            if (!g) continue;
            const name = sources[j - 1]!;
            if (seen.has(name)) throw new TopiaryError('E_INTERNAL', `two variables of the pass are named ${name}`, { where: name });
            seen.add(name);
            const host = (await g.data()) as Float32Array;
            let slot = acc.get(name);
            if (!slot) {
              slot = { grad: new Float32Array(host.length), gradSquared: new Float32Array(host.length), shape: [...g.shape] };
              acc.set(name, slot);
            }
            for (let e = 0; e < host.length; e++) {
              const v = host[e]!;
              slot.grad[e]! += share * v;
              slot.gradSquared[e]! += share * v * v;
            }
          }
          if (i > lowest) dys[k] = (grads[0]!.dataSync() as Float32Array).slice();
        } finally {
          tf.dispose([value, ...grads.filter((g): g is tf.Tensor => g !== null && g !== undefined), x, dy]);
        }
        inputs.delete(i, k);
      }
      // parameters that got no gradient (a masked block computes the identity) have zero gradients, as under a tape
      for (const name of names) {
        if (acc.has(name)) continue;
        const shape = parameterShape(model, name, i);
        const size = shape.reduce((a, b) => a * b, 1);
        acc.set(name, { grad: new Float32Array(size), gradSquared: new Float32Array(size), shape });
      }
      await visit(i, acc);
      options.events?.progress(task, 2 * n - i, 2 * n - lowest, `backward, block ${i}`, 'block');
      await Promise.resolve();
    }
  } finally {
    inputs.dispose();
  }
  return loss;
}

/** A block parameter's shape: its variable's, or (streamed) its block group member's rows × the rest of its values. */
function parameterShape(model: CausalLM, name: string, layer: number): number[] {
  if (!model.streamed) return [...model.parameters().get(name)!.shape];
  const member = model.groups(['block']).find((g) => g.layer === layer)!.members.find((m) => m.param === name)!;
  const rows = member.indices.length;
  const size = model.readWeight(name).length;
  return size === rows ? [rows] : [rows, size / rows];
}

/**
 * Every wanted block parameter's gradients at once (`options.params`, default: every block parameter): the passes of
 * `forEachBlockGradient`, kept. Holds all of them — a streamed caller visits block by block instead.
 */
export async function collectGradients(
  model: CausalLM,
  windows: readonly Int32Array[],
  options: GradientOptions & Pick<BlockGradientOptions, 'activationBytes' | 'spillDir'> = {},
): Promise<Map<string, ParameterGradients>> {
  const out = new Map<string, ParameterGradients>();
  await forEachBlockGradient(model, windows, options, (_layer, grads) => {
    for (const [name, g] of grads) out.set(name, g);
  });
  return out;
}
