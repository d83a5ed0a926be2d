/**
 * The gpujs backend: gpu.js kernels for the heavy pruning primitives (Gram `XᵀX`, matmul, row norms) and
 * tfjs's cpu engine for tensor ops. Where gpu.js gets a WebGL context (in Node: headless-gl built, with an X
 * display; in a browser: WebGL) the primitives run as WebGL shaders; elsewhere gpu.js falls back to its
 * WebAssembly kernels or plain JavaScript — correct, and slower than tfjs-wasm, so `auto` ranks this backend
 * below wasm. The mode reported is the one of the gpu.js kernel that really ran, never an assumption.
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { TopiaryError, z, type BackendAvailability, type BackendCapabilities, type OptionsOf, type PruningPrimitives, type TensorBackend } from '@topiary/kernel';
import { genericPrimitives } from '@topiary/linalg';
import type { GPU as GPUClass } from 'gpu.js';
import { GpuKernels, type GpuJsMode } from './kernels.js';
import { probeWebGL, type WebGLProbe } from './webgl.js';

/** The backend's options, declared once. */
export const gpujsBackendOptions = z
  .object({
    mode: z
      .enum(['gpu', 'webgl', 'cpu'])
      .optional()
      .meta({
        description:
          "gpu.js mode: gpu (default: the best gpu.js finds — WebGL through headless-gl, else its WebAssembly fallback), webgl (WebGL or an error, never a fallback) or cpu (gpu.js's JavaScript mode)",
      }),
  })
  .strict();

export type GpujsBackendOptions = OptionsOf<typeof gpujsBackendOptions>;

type GpuModule = { GPU: typeof GPUClass & { isHeadlessGLSupported: boolean; isWebGL2Supported: boolean; isWebGLSupported: boolean } };

const require = createRequire(import.meta.url);

function loadGpuJs(): GpuModule {
  return require('gpu.js') as GpuModule;
}

export class GpujsBackend implements TensorBackend {
  readonly name = 'gpujs';
  readonly engine = 'cpu';
  readonly priority: number;
  readonly primitives: PruningPrimitives;
  private readonly mode: 'gpu' | 'webgl' | 'cpu';
  private kernels: GpuKernels | undefined;
  /** The WebGL context gpu.js uses here (renderer, version), when it has one. */
  private webgl: WebGLProbe | undefined;

  constructor(options: GpujsBackendOptions = {}) {
    this.mode = options.mode ?? 'gpu';
    // Below wasm (50) unless gpu.js has a real GPU: its fallbacks are ~20× slower than tfjs-wasm.
    this.priority = 20;
    const k = (): GpuKernels => this.getKernels();
    this.primitives = Object.freeze({
      ...genericPrimitives,
      accumulateGram: (x: Float32Array, n: number, d: number, acc: Float64Array) => k().accumulateGram(x, n, d, acc),
      accumulateColumnSquares: (x: Float32Array, n: number, d: number, acc: Float64Array) => k().accumulateColumnSquares(x, n, d, acc),
      matmul: (a: Float32Array, b: Float32Array, m: number, kk: number, n: number) => k().matmul(a, b, m, kk, n),
      rowNorms: (w: Float32Array, rows: number, cols: number) => k().rowNorms(w, rows, cols),
    });
  }

  /**
   * The gpu.js mode of the kernel that really ran last (`headlessgl`, `webgl2`, `webgl`, `webasm`, `cpu`; a kernel
   * gpu.js replaced by its CPU fallback reports `cpu`), or — before any primitive ran — the mode gpu.js chose.
   */
  get gpuMode(): GpuJsMode | undefined {
    return this.kernels?.mode;
  }

  /** gpu.js kernel runs so far (with `gpuMode`: proof of what really ran). */
  get kernelRuns(): number {
    return this.kernels?.runs ?? 0;
  }

  /** The renderer of the WebGL context (e.g. `ANGLE (Mesa/X.org llvmpipe …)`), when gpu.js runs on WebGL. */
  get renderer(): string | undefined {
    return this.webgl?.ok && isWebGLMode(this.gpuMode) ? this.webgl.renderer : undefined;
  }

  private getKernels(): GpuKernels {
    if (!this.kernels) {
      let mod: GpuModule;
      try {
        mod = loadGpuJs();
      } catch (err) {
        throw new TopiaryError('E_BACKEND', `gpu.js cannot be loaded: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`, {
          where: 'backend gpujs',
          hint: 'reinstall @topiary/backend-gpujs (`pnpm install`); its optional `gl` dependency may fail to build, which only costs the WebGL mode',
        });
      }
      let gpuJsMode: 'gpu' | 'cpu' | 'headlessgl' | 'webgl2' | 'webgl' = this.mode;
      if (this.mode !== 'cpu' && !inBrowser()) {
        // Node: WebGL is headless-gl; probe it ourselves first (it also tells why not, which gpu.js does not)
        this.webgl = probeWebGL();
        if (this.mode === 'webgl') {
          if (!this.webgl.ok) throw new TopiaryError('E_BACKEND', `gpujs mode webgl: no WebGL context here: ${this.webgl.reason}`, { where: 'backend gpujs', hint: this.webgl.fix });
          gpuJsMode = 'headlessgl';
        }
      } else if (this.mode === 'webgl') {
        gpuJsMode = mod.GPU.isWebGL2Supported ? 'webgl2' : 'webgl';
      }
      const gpu = new mod.GPU({ mode: gpuJsMode });
      // 'webgl' asked for WebGL: a kernel that falls back to gpu.js's CPU mode is an error, not a slow success
      this.kernels = new GpuKernels(gpu, { allowFallback: this.mode !== 'webgl' });
    }
    return this.kernels;
  }

  async available(): Promise<BackendAvailability> {
    try {
      loadGpuJs();
    } catch (err) {
      return {
        ok: false,
        reason: `gpu.js does not load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`,
        fix: 'reinstall @topiary/backend-gpujs (`pnpm install`; gpu.js 2.24.1 needs no native build, its optional `gl` is only for WebGL)',
      };
    }
    if (this.mode === 'cpu') return { ok: true, detail: "gpu.js cpu mode (plain JavaScript), by option" };
    if (inBrowser()) return { ok: true, detail: 'gpu.js in a browser: WebGL where the browser has it' };
    const webgl = probeWebGL();
    if (webgl.ok) {
      return {
        ok: true,
        detail: `WebGL through headless-gl on ${webgl.renderer}${webgl.software ? ' — a software rasteriser: real WebGL shaders, on the CPU' : ''}`,
      };
    }
    if (this.mode === 'webgl') return { ok: false, reason: `no WebGL context: ${webgl.reason}`, fix: webgl.fix };
    return { ok: true, detail: `gpu.js WebAssembly/JavaScript fallback, no GPU (${webgl.reason})` };
  }

  async init(): Promise<void> {
    this.getKernels();
    if (!(await tf.setBackend('cpu'))) {
      throw new TopiaryError('E_BACKEND', 'tf.setBackend("cpu") failed', { where: 'backend gpujs', hint: 'reinstall @tensorflow/tfjs 4.22.0' });
    }
    await tf.ready();
  }

  capabilities(): BackendCapabilities {
    const mode: string = this.gpuMode ?? (this.mode === 'cpu' ? 'cpu' : 'not resolved until init()');
    const onWebGL = isWebGLMode(mode);
    const software = onWebGL && this.webgl?.ok === true && this.webgl.software;
    const why = this.webgl && !this.webgl.ok ? `: ${this.webgl.reason}` : '';
    return {
      device: onWebGL && !software ? 'gpu' : 'cpu',
      threads: 1,
      simd: mode === 'webasm',
      float64: false,
      notes: [
        `gpu.js mode: ${mode}${onWebGL ? ` (WebGL, renderer ${this.renderer ?? 'unknown'}${software ? ': a software rasteriser, not a GPU' : ''})` : this.mode === 'cpu' ? '' : ` (no WebGL${why}) — correct but slower than tfjs-wasm`}`,
        'gpu.js kernels: accumulateGram and accumulateColumnSquares (float32 blocks of 256 rows summed in float64), matmul, rowNorms; the rest generic',
        'tensor ops run on the tfjs cpu engine; tested on WebGL over Mesa llvmpipe (Xvfb), not yet on a GPU',
      ],
    };
  }

  /** Free the compiled kernels (and the GPU context). */
  dispose(): void {
    this.kernels?.destroy();
    this.kernels = undefined;
  }
}

function isWebGLMode(mode: string | undefined): boolean {
  return mode === 'headlessgl' || mode === 'webgl2' || mode === 'webgl';
}

function inBrowser(): boolean {
  return typeof (globalThis as { window?: unknown }).window !== 'undefined';
}
