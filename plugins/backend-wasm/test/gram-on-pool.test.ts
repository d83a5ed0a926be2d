import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { accumulateGramInBlocks, SeededRandom } from '@topiary/linalg';
import { createWasmBackend, GRAM_BLOCK_ROWS, sharedGemmPool, wasmPrimitives } from '../src/index.js';

describe('Gram accumulation on the GEMM pool', () => {
  beforeAll(async () => {
    await createWasmBackend().init();
  });

  it('equals the tfjs BatchMatMul path bit for bit (blocks of 1024 rows, a partial last block, odd widths)', () => {
    expect(sharedGemmPool(), 'the GEMM kernel is installed, so the pool path runs').toBeDefined();
    const rng = new SeededRandom(3);
    for (const [n, d] of [[2500, 37], [1024, 64], [7, 5]] as const) {
      const x = Float32Array.from({ length: n * d }, () => rng.next() - 0.5);
      const viaTfjs = new Float64Array(d * d);
      accumulateGramInBlocks(x, n, d, viaTfjs, GRAM_BLOCK_ROWS, (block, rows) => {
        const t = tf.tidy(() => {
          const xb = tf.tensor2d(block, [rows, d]);
          return tf.matMul(xb, xb, true, false);
        });
        const v = t.dataSync() as Float32Array;
        t.dispose();
        return v;
      });
      const fresh = new Float64Array(d * d);
      wasmPrimitives.accumulateGram(x, n, d, fresh);
      expect([...fresh], `${n}×${d} exact`).toEqual([...viaTfjs]);
    }
  });
});
