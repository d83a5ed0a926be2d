/** Hidden states of a set of batches at one block boundary, kept in host memory (Float32Array per batch). */
import * as tf from '@tensorflow/tfjs';
import type { CausalLM } from '@topiary/kernel';

/** Token ids of one batch: b sequences of t tokens, row-major. */
export interface Batch {
  ids: Int32Array;
  b: number;
  t: number;
}

interface HostStates {
  data: Float32Array;
  shape: [number, number, number];
}

export class Activations {
  private constructor(private states: HostStates[]) {}

  /** The embeddings of every batch (block 0's inputs). */
  static embed(model: CausalLM, batches: readonly Batch[]): Activations {
    return new Activations(
      batches.map(({ ids, b, t }) => {
        const h = tf.tidy(() => model.embed(tf.tensor2d(ids, [b, t], 'int32')));
        try {
          return { data: h.dataSync() as Float32Array, shape: h.shape as [number, number, number] };
        } finally {
          h.dispose();
        }
      }),
    );
  }

  get batches(): number {
    return this.states.length;
  }

  /** Bytes the hidden states take in host memory. */
  get bytes(): number {
    return this.states.reduce((a, s) => a + s.data.byteLength, 0);
  }

  /**
   * Run block i over every batch (capture hooks fire meanwhile); the boundary moves past block i. `visit` sees each
   * batch's input and output of the block (Block Influence compares them). Each batch's states are replaced as soon
   * as its output is back, so the boundary is held once, not twice.
   */
  advance(model: CausalLM, i: number, visit?: (batch: number, input: tf.Tensor3D, output: tf.Tensor3D) => void): void {
    this.states.forEach((s, k) => {
      const input = tf.tensor3d(s.data, s.shape);
      const out = tf.tidy(() => model.block(i, input));
      try {
        visit?.(k, input, out);
        this.states[k] = { data: out.dataSync() as Float32Array, shape: s.shape };
      } finally {
        input.dispose();
        out.dispose();
      }
    });
  }

  /** Run block i over every batch for its side effects only (capture hooks); the boundary stays where it is. */
  visit(model: CausalLM, i: number): void {
    for (const s of this.states) tf.tidy(() => void model.block(i, tf.tensor3d(s.data, s.shape)));
  }

  /** Call `fn` with batch k's hidden states as a tensor (disposed after). */
  withBatch<T>(k: number, fn: (hidden: tf.Tensor3D) => T): T {
    const s = this.states[k]!;
    const h = tf.tensor3d(s.data, s.shape);
    try {
      return fn(h);
    } finally {
      h.dispose();
    }
  }

  dispose(): void {
    this.states = [];
  }
}
