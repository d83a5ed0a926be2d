/**
 * The gpu.js kernels: Gram accumulation `XᵀX`, matmul and row norms, the products that dominate pruning
 * (SparseGPT's Hessians, Wanda's norms). gpu.js compiles each kernel function's source to GLSL (a GPU through
 * headless-gl), to WebAssembly, or runs it as JavaScript (`cpu`). Kernels are compiled once per shape and cached.
 * Also Wanda's column squares, so a Wanda prune's statistics run on the device too.
 * These functions run inside gpu.js: plain loops, `this.thread` / `this.constants`, no closures.
 */
import type { GPU, IKernelFunctionThis, IKernelRunShortcut } from 'gpu.js';
import { TopiaryError } from '@topiary/kernel';
import { accumulateGramInBlocks } from '@topiary/linalg';

/** gpu.js's kernel kinds, by the mode names `new GPU({ mode })` takes. */
export type GpuJsMode = 'headlessgl' | 'webgl2' | 'webgl' | 'webgpu' | 'webasm' | 'cpu';

/** gpu.js kernel classes by constructor name (the subclass first: HeadlessGLKernel extends WebGLKernel). */
const MODE_OF_KERNEL_CLASS: Record<string, GpuJsMode> = {
  HeadlessGLKernel: 'headlessgl',
  WebGL2Kernel: 'webgl2',
  WebGLKernel: 'webgl',
  WebGPUKernel: 'webgpu',
  WebAssemblyKernel: 'webasm',
  CPUKernel: 'cpu',
};

/** The mode of a gpu.js kernel object (walking up its class chain), or undefined for a class we do not know. */
function modeOfKernel(kernel: object | undefined): GpuJsMode | undefined {
  for (let c = kernel?.constructor as { name?: string } | undefined; c && c.name; c = Object.getPrototypeOf(c)) {
    const m = MODE_OF_KERNEL_CLASS[c.name];
    if (m) return m;
  }
  return undefined;
}

type KernelThis<C> = IKernelFunctionThis<C>;

/** out[i][j] = Σ_p a[i·k + p] · b[p·n + j] (output indexed [y = i][x = j]). */
function matmulKernel(this: KernelThis<{ k: number; n: number }>, a: number[], b: number[]): number {
  let s = 0;
  for (let p = 0; p < this.constants.k; p++) {
    s += a[this.thread.y * this.constants.k + p] * b[p * this.constants.n + this.thread.x];
  }
  return s;
}

/** out[i][j] = Σ_r x[r·d + i] · x[r·d + j] over the rows of one block. */
function gramKernel(this: KernelThis<{ rows: number; d: number }>, x: number[]): number {
  let s = 0;
  for (let r = 0; r < this.constants.rows; r++) {
    s += x[r * this.constants.d + this.thread.y] * x[r * this.constants.d + this.thread.x];
  }
  return s;
}

/** out[j] = Σ_r x[r·d + j]² over the rows of one block (Wanda's squared input-feature norms). */
function columnSquaresKernel(this: KernelThis<{ rows: number; d: number }>, x: number[]): number {
  let s = 0;
  for (let r = 0; r < this.constants.rows; r++) {
    const v = x[r * this.constants.d + this.thread.x];
    s += v * v;
  }
  return s;
}

/** out[i] = ‖w[i, :]‖₂. */
function rowNormKernel(this: KernelThis<{ cols: number }>, w: number[]): number {
  let s = 0;
  for (let j = 0; j < this.constants.cols; j++) {
    const v = w[this.thread.x * this.constants.cols + j];
    s += v * v;
  }
  return Math.sqrt(s);
}

/** Rows per Gram block: each block's sum is float32 on the device, blocks are added in float64 on the host. */
export const GRAM_BLOCK_ROWS = 256;

export interface GpuKernelsOptions {
  /** When false, a kernel gpu.js moved to its CPU fallback is an error (E_BACKEND) instead of a slow success. */
  allowFallback?: boolean;
}

export class GpuKernels {
  private readonly cache = new Map<string, IKernelRunShortcut>();
  private lastMode: GpuJsMode | undefined;
  /** How many kernel runs completed (on any kind of kernel). */
  runs = 0;
  private readonly allowFallback: boolean;

  constructor(
    private readonly gpu: GPU,
    options: GpuKernelsOptions = {},
  ) {
    this.allowFallback = options.allowFallback ?? true;
  }

  /** The mode of the kernel that ran last, or before any ran the kernel class gpu.js chose. */
  get mode(): GpuJsMode | undefined {
    return this.lastMode ?? modeOfKernel((this.gpu as unknown as { Kernel?: { prototype: object } }).Kernel?.prototype);
  }

  /** Run a kernel and record which kind of kernel really ran (gpu.js may replace it by its CPU fallback). */
  private run<T>(run: IKernelRunShortcut, ...args: unknown[]): T {
    const out = (run as unknown as (...a: unknown[]) => T)(...args);
    const kernel = (run as unknown as { kernel?: object & { fallbackReason?: string } }).kernel;
    const mode = modeOfKernel(kernel);
    if (!this.allowFallback && mode === 'cpu') {
      throw new TopiaryError('E_BACKEND', `gpu.js fell back to its CPU mode${kernel?.fallbackReason ? `: ${kernel.fallbackReason}` : ''}`, {
        where: 'backend gpujs',
        hint: 'mode webgl never falls back; use mode gpu to accept the fallback',
      });
    }
    this.lastMode = mode;
    this.runs++;
    return out;
  }

  private kernel(key: string, make: () => IKernelRunShortcut): IKernelRunShortcut {
    let k = this.cache.get(key);
    if (!k) {
      // A small cache: pruning walks a handful of layer shapes over and over.
      if (this.cache.size >= 32) {
        const [oldest] = this.cache.keys();
        this.cache.get(oldest!)!.destroy?.();
        this.cache.delete(oldest!);
      }
      k = make();
      this.cache.set(key, k);
    }
    return k;
  }

  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
    const run = this.kernel(`mm:${m}:${k}:${n}`, () =>
      this.gpu.createKernel(matmulKernel).setOutput([n, m]).setConstants({ k, n }).setPrecision('single').setTactic('precision'),
    );
    return flatten(this.run<Float32Array[]>(run, a, b), m, n);
  }

  accumulateGram(x: Float32Array, n: number, d: number, acc: Float64Array): void {
    // blocks of rows on the device in float32, summed (and symmetrised) in float64 by the kernel's shared loop
    accumulateGramInBlocks(x, n, d, acc, GRAM_BLOCK_ROWS, (block, rows) => {
      const run = this.kernel(`gram:${rows}:${d}`, () =>
        this.gpu.createKernel(gramKernel).setOutput([d, d]).setConstants({ rows, d }).setPrecision('single').setTactic('precision'),
      );
      return flatten(this.run<Float32Array[]>(run, block), d, d);
    });
  }

  accumulateColumnSquares(x: Float32Array, n: number, d: number, acc: Float64Array): void {
    // as the Gram: float32 sums over blocks of rows on the device, the blocks added in float64 here
    for (let start = 0; start < n; start += GRAM_BLOCK_ROWS) {
      const rows = Math.min(GRAM_BLOCK_ROWS, n - start);
      const run = this.kernel(`colsq:${rows}:${d}`, () =>
        this.gpu.createKernel(columnSquaresKernel).setOutput([d]).setConstants({ rows, d }).setPrecision('single').setTactic('precision'),
      );
      const sums = this.run<Float32Array>(run, x.subarray(start * d, (start + rows) * d));
      for (let j = 0; j < d; j++) acc[j]! += sums[j]!;
    }
  }

  rowNorms(w: Float32Array, rows: number, cols: number): Float32Array {
    const run = this.kernel(`norm:${rows}:${cols}`, () =>
      this.gpu.createKernel(rowNormKernel).setOutput([rows]).setConstants({ cols }).setPrecision('single').setTactic('precision'),
    );
    return Float32Array.from(this.run<Float32Array>(run, w));
  }

  destroy(): void {
    for (const k of this.cache.values()) k.destroy?.();
    this.cache.clear();
  }
}

function flatten(rows: Float32Array[], m: number, n: number): Float32Array {
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) out.set(rows[i]!, i * n);
  return out;
}
