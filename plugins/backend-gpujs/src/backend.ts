/**
 * The gpujs backend: gpu.js kernels for the heavy pruning primitives (Gram `XᵀX`, matmul, row norms) and
 * tfjs's cpu engine for tensor ops. On a machine where gpu.js finds a GPU (headless-gl built, or a browser)
 * the primitives run there; elsewhere gpu.js falls back to its WebAssembly kernels or plain JavaScript —
 * correct, and slower than tfjs-wasm, so `auto` ranks this backend below wasm.
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { TopiaryError, z, type BackendAvailability, type BackendCapabilities, type OptionsOf, type PruningPrimitives, type TensorBackend } from '@topiary/kernel';
import { genericPrimitives } from '@topiary/linalg';
import type { GPU as GPUClass } from 'gpu.js';
import { GpuKernels } from './kernels.js';

/** The backend's options, declared once. */
export const gpujsBackendOptions = z
  .object({
    mode: z
      .enum(['gpu', 'cpu'])
      .optional()
      .meta({ description: "gpu.js mode: gpu (default: the best gpu.js finds — headless-gl/WebGL, else its fallback) or cpu (gpu.js's JavaScript mode)" }),
  })
  .strict();

export type GpujsBackendOptions = OptionsOf<typeof gpujsBackendOptions>;

type GpuModule = { GPU: typeof GPUClass };

const require = createRequire(import.meta.url);

function loadGpuJs(): GpuModule {
  return require('gpu.js') as GpuModule;
}

export class GpujsBackend implements TensorBackend {
  readonly name = 'gpujs';
  readonly engine = 'cpu';
  readonly priority: number;
  readonly primitives: PruningPrimitives;
  private readonly mode: 'gpu' | 'cpu';
  private kernels: GpuKernels | undefined;
  private resolvedMode: string | undefined;

  constructor(options: GpujsBackendOptions = {}) {
    this.mode = options.mode ?? 'gpu';
    // Below wasm (50) unless gpu.js has a real GPU: its fallbacks are ~20× slower than tfjs-wasm.
    this.priority = 20;
    const k = (): GpuKernels => this.getKernels();
    this.primitives = Object.freeze({
      ...genericPrimitives,
      accumulateGram: (x: Float32Array, n: number, d: number, acc: Float64Array) => k().accumulateGram(x, n, d, acc),
      matmul: (a: Float32Array, b: Float32Array, m: number, kk: number, n: number) => k().matmul(a, b, m, kk, n),
      rowNorms: (w: Float32Array, rows: number, cols: number) => k().rowNorms(w, rows, cols),
    });
  }

  /** The gpu.js mode really in use (`headlessgl`, `webgl2`, `webasm`, `cpu`), once a primitive has run. */
  get gpuMode(): string | undefined {
    return this.resolvedMode;
  }

  private getKernels(): GpuKernels {
    if (!this.kernels) {
      let mod: GpuModule;
      try {
        mod = loadGpuJs();
      } catch (err) {
        throw new TopiaryError('E_BACKEND', `gpu.js cannot be loaded: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`, {
          where: 'backend gpujs',
          hint: 'reinstall @topiary/backend-gpujs (`pnpm install`); its optional `gl` dependency may fail to build, which only costs the GPU mode',
        });
      }
      const gpu = new mod.GPU({ mode: this.mode });
      this.resolvedMode = this.mode === 'cpu' ? 'cpu' : mod.GPU.isHeadlessGLSupported ? 'headlessgl' : mod.GPU.isWebGL2Supported ? 'webgl2' : 'webasm';
      this.kernels = new GpuKernels(gpu);
    }
    return this.kernels;
  }

  async available(): Promise<BackendAvailability> {
    try {
      loadGpuJs();
      return { ok: true };
    } catch (err) {
      return {
        ok: false,
        reason: `gpu.js does not load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`,
        fix: 'reinstall @topiary/backend-gpujs (`pnpm install`; gpu.js 2.24.1 needs no native build, its optional `gl` is only for the GPU)',
      };
    }
  }

  async init(): Promise<void> {
    this.getKernels();
    if (!(await tf.setBackend('cpu'))) {
      throw new TopiaryError('E_BACKEND', 'tf.setBackend("cpu") failed', { where: 'backend gpujs', hint: 'reinstall @tensorflow/tfjs 4.22.0' });
    }
    await tf.ready();
  }

  capabilities(): BackendCapabilities {
    const mode = this.resolvedMode ?? (this.mode === 'cpu' ? 'cpu' : 'not resolved until init()');
    const onGpu = mode === 'headlessgl' || mode === 'webgl2';
    return {
      device: onGpu ? 'gpu' : 'cpu',
      threads: 1,
      simd: mode === 'webasm',
      float64: false,
      notes: [
        `gpu.js mode: ${mode}${onGpu ? '' : ' (no GPU: the headless-gl addon did not build or no GPU is present) — correct but slower than tfjs-wasm'}`,
        'gpu.js kernels: accumulateGram (float32 blocks of 256 rows summed in float64), matmul, rowNorms; the rest generic',
        'tensor ops run on the tfjs cpu engine; GPU mode unverified on our machines (no GPU)',
      ],
    };
  }

  /** Free the compiled kernels (and the GPU context). */
  dispose(): void {
    this.kernels?.destroy();
    this.kernels = undefined;
  }
}
