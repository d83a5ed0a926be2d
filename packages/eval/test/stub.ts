/** A hand-built CausalLM whose logits are a closed-form function of the ids, for testing the scoring math. */
import * as tf from '@tensorflow/tfjs';
import type { CausalLM, ModelConfig, TargetScores } from '@topiary/kernel';

export type LogitsFn = (row: readonly number[], position: number) => number[];

export function stubModel(vocabSize: number, maxSeqLen: number, logits: LogitsFn): CausalLM & { calls: number[][] } {
  const config: ModelConfig = {
    architecture: 'llama', vocabSize, dim: 1, nLayers: 0, nHeads: 1, nKvHeads: 1, headDim: 1, hiddenDim: 1,
    maxSeqLen, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true, bosId: 1, eosId: 2,
  };
  const calls: number[][] = [];
  // no blocks: the "hidden states" are the ids themselves (dim 1), and the head applies `logits` to them
  const model = {
    config,
    calls,
    numBlocks: 0,
    streamed: false,
    embed(ids: tf.Tensor2D): tf.Tensor3D {
      const [b, t] = ids.shape;
      if (t > maxSeqLen) throw new Error(`stub: sequence ${t} longer than ${maxSeqLen}`);
      calls.push([b, t]);
      return tf.reshape(tf.cast(ids, 'float32'), [b, t, 1]) as tf.Tensor3D;
    },
    scoreTargets(hidden: tf.Tensor3D, targets: Int32Array): TargetScores {
      const [b, t] = hidden.shape;
      const ids = hidden.dataSync();
      const n = b * t;
      const out = { target: new Float32Array(n), lse: new Float32Array(n), max: new Float32Array(n) };
      for (let i = 0; i < b; i++) {
        const row = Array.from(ids.subarray(i * t, (i + 1) * t));
        for (let p = 0; p < t; p++) {
          const z = logits(row, p);
          const k = i * t + p;
          const m = Math.max(...z);
          out.target[k] = z[targets[k]!]!;
          out.max[k] = m;
          out.lse[k] = m + Math.log(z.reduce((a, x) => a + Math.exp(x - m), 0));
        }
      }
      return out;
    },
  };
  return model as unknown as CausalLM & { calls: number[][] };
}

/** log softmax of a vector at index k, in float64. */
export function logSoftmaxAt(v: readonly number[], k: number): number {
  const m = Math.max(...v);
  return v[k]! - m - Math.log(v.reduce((a, x) => a + Math.exp(x - m), 0));
}
