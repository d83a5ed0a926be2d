/**
 * @topiary/backend-cpu — tfjs's pure-JavaScript cpu engine. About 1 GFLOP/s for matmul, so slow for training,
 * but it has every kernel and every gradient: it is the correctness reference the conformance suite compares
 * other backends against, and the backend that always works.
 */
import * as tf from '@tensorflow/tfjs-core';
// registers the 'cpu' engine with tfjs-core (a side effect of importing the package)
import '@tensorflow/tfjs-backend-cpu';
import { definePlugin, provide, Tokens, TopiaryError, type BackendAvailability, type BackendCapabilities, type TensorBackend } from '@topiary/kernel';
import { genericPrimitives } from '@topiary/linalg';

export class CpuBackend implements TensorBackend {
  readonly name = 'cpu';
  readonly engine = 'cpu';
  /** Lowest: `auto` picks it only when nothing faster loads. */
  readonly priority = 10;
  readonly primitives = genericPrimitives;

  async available(): Promise<BackendAvailability> {
    // The cpu engine is @tensorflow/tfjs-backend-cpu, which this package depends on: if we are running, it is here.
    return tf.findBackendFactory('cpu') ? { ok: true } : { ok: false, reason: '@tensorflow/tfjs-backend-cpu registered no cpu backend', fix: 'reinstall @tensorflow/tfjs-backend-cpu 4.22.0 (`pnpm install`)' };
  }

  async init(): Promise<void> {
    const ok = await tf.setBackend('cpu');
    if (!ok) {
      throw new TopiaryError('E_BACKEND', 'tf.setBackend("cpu") failed', { where: 'backend cpu', hint: 'reinstall @tensorflow/tfjs-backend-cpu 4.22.0' });
    }
    await tf.ready();
  }

  capabilities(): BackendCapabilities {
    return {
      device: 'cpu',
      threads: 1,
      simd: false,
      float64: false,
      notes: ['pure JavaScript kernels, 1 thread, ~1 GFLOP/s matmul: the correctness reference, not for speed'],
    };
  }
}

export function createCpuBackend(): CpuBackend {
  return new CpuBackend();
}

export default definePlugin({
  name: 'backend-cpu',
  description: "tfjs's pure-JavaScript cpu engine: slow, complete, the correctness reference",
  register(container) {
    provide(container, Tokens.TensorBackend, createCpuBackend());
  },
});
