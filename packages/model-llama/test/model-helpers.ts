/** What the model tests read off a model: logits of a prompt and a copy of every weight. */
import * as tf from '@tensorflow/tfjs';
import type { LlamaModel } from '../src/index.js';

/** "Once upon a time, there was a" in stories260K's vocabulary. */
export const STORY_PROMPT = [1, 403, 407, 261, 378, 432, 383, 286];

/** Logits of one or more sequences of equal length, flattened. */
export function logitsOf(m: LlamaModel, ids: readonly number[] | readonly (readonly number[])[] = STORY_PROMPT): Float32Array {
  const rows = (typeof ids[0] === 'number' ? [ids] : ids) as number[][];
  return tf.tidy(() => m.forward(tf.tensor2d(rows, [rows.length, rows[0]!.length], 'int32')).dataSync() as Float32Array);
}

/** A copy of every parameter, by name. */
export function weightsOf(m: LlamaModel): Map<string, Float32Array> {
  return new Map([...m.parameters().keys()].map((name) => [name, m.readWeight(name).slice()]));
}
