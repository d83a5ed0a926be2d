/** A hand-built CausalLM whose logits are a closed-form function of the ids, for testing the scoring math. */
import * as tf from '@tensorflow/tfjs';
import type { CausalLM, ModelConfig } from '@topiary/kernel';

export type LogitsFn = (row: readonly number[], position: number) => number[];

export function stubModel(vocabSize: number, maxSeqLen: number, logits: LogitsFn): CausalLM & { calls: number[][] } {
  const config: ModelConfig = {
    architecture: 'llama', vocabSize, dim: 1, nLayers: 0, nHeads: 1, nKvHeads: 1, headDim: 1, hiddenDim: 1,
    maxSeqLen, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true, bosId: 1, eosId: 2,
  };
  const calls: number[][] = [];
  const model = {
    config,
    calls,
    forward(ids: tf.Tensor2D): tf.Tensor3D {
      const [b, t] = ids.shape;
      if (t > maxSeqLen) throw new Error(`stub: sequence ${t} longer than ${maxSeqLen}`);
      calls.push([b, t]);
      const rows = ids.arraySync();
      const out = new Float32Array(b * t * vocabSize);
      for (let i = 0; i < b; i++) for (let p = 0; p < t; p++) out.set(logits(rows[i]!, p), (i * t + p) * vocabSize);
      return tf.tensor3d(out, [b, t, vocabSize]);
    },
  };
  return model as unknown as CausalLM & { calls: number[][] };
}

/** log softmax of a vector at index k, in float64. */
export function logSoftmaxAt(v: readonly number[], k: number): number {
  const m = Math.max(...v);
  return v[k]! - m - Math.log(v.reduce((a, x) => a + Math.exp(x - m), 0));
}
