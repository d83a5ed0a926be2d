/**
 * The native backend: tfjs's wasm engine for everything except matrix products, which OpenBLAS computes in place
 * on the wasm heap (`BatchMatMul`), on as many threads as asked. Opt-in: the addon is built by a separate script.
 */
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { TopiaryError, z, type BackendAvailability, type BackendCapabilities, type OptionsOf, type PruningPrimitives, type TensorBackend } from '@topiary/kernel';
import { genericPrimitives } from '@topiary/linalg';
import { WasmBackend } from '@topiary/backend-wasm';
import { addonAvailability, loadAddon, type BlasAddon } from './addon.js';
import { installFusedKernels, installNativeBatchMatMul } from './kernel.js';
import { nativePrimitives } from './primitives.js';

/** The backend's options, declared once. */
export const nativeBackendOptions = z
  .object({ threads: z.number().int().min(1).optional().meta({ description: "OpenBLAS threads (default: the machine's available parallelism)" }) })
  .strict();

export type NativeBackendOptions = OptionsOf<typeof nativeBackendOptions>;

export class NativeBackend implements TensorBackend {
  readonly name = 'native';
  readonly engine = 'wasm';
  /** Above wasm (50), below tfjs-node (70) when that loads. */
  readonly priority = 60;
  private blas: BlasAddon | undefined;
  private prims: PruningPrimitives | undefined;
  private readonly threads: number;

  constructor(options: NativeBackendOptions = {}) {
    this.threads = Math.max(1, Math.floor(options.threads ?? availableParallelism()));
  }

  /** Host primitives on OpenBLAS once the addon loads; the generic ones before (or if it does not). */
  get primitives(): PruningPrimitives {
    if (!this.prims) {
      const r = loadAddon();
      if ('addon' in r) this.prims = nativePrimitives(r.addon);
    }
    return this.prims ?? genericPrimitives;
  }

  async available(): Promise<BackendAvailability> {
    const native = addonAvailability();
    if (!native.ok) return native;
    return new WasmBackend().available();
  }

  async init(): Promise<void> {
    const r = loadAddon();
    if ('error' in r) {
      const a = addonAvailability();
      throw new TopiaryError('E_BACKEND', a.ok ? r.error : a.reason, { where: 'backend native', hint: a.ok ? undefined : a.fix });
    }
    this.blas = r.addon;
    this.blas.setThreads(this.threads);
    await new WasmBackend({ fastMatMul: true }).init();
    try {
      installNativeBatchMatMul(this.blas);
      installFusedKernels(this.blas);
    } catch (err) {
      throw new TopiaryError('E_BACKEND', `could not install the native kernels: ${err instanceof Error ? err.message : String(err)}`, {
        where: 'backend native',
        cause: err,
      });
    }
    if (tf.getBackend() !== 'wasm') throw new TopiaryError('E_BACKEND', `expected the wasm engine to be active, got ${tf.getBackend()}`, { where: 'backend native' });
  }

  capabilities(): BackendCapabilities {
    const info = this.blas?.info();
    return {
      device: 'cpu',
      threads: info?.threads ?? this.threads,
      simd: true,
      float64: false,
      notes: [
        info ? `matrix products: ${info.config} (core ${info.corename}), ${info.threads} thread(s), in place on the wasm heap` : 'not initialised yet',
        `fused softmax cross-entropy and AdamW: one OpenMP pass, ${info?.threads ?? this.threads} thread(s)`,
        'everything else: tfjs-wasm (XNNPACK, SIMD, 1 thread)',
        'primitives: accumulateGram and matmul on OpenBLAS (float32 blocks of 1024 rows summed in float64); H⁻¹ and chol(H⁻¹) by LAPACK (float64)',
      ],
    };
  }
}
