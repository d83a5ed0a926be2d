/**
 * The gpu.js kernels: Gram accumulation `XᵀX`, matmul and row norms, the products that dominate pruning
 * (SparseGPT's Hessians, Wanda's norms). gpu.js compiles each kernel function's source to GLSL (a GPU through
 * headless-gl), to WebAssembly, or runs it as JavaScript (`cpu`). Kernels are compiled once per shape and cached.
 * Also Wanda's column squares, so a Wanda prune's statistics run on the device too.
 * These functions run inside gpu.js: plain loops, `this.thread` / `this.constants`, no closures.
 */
import type { GPU, IKernelFunctionThis, IKernelRunShortcut } from 'gpu.js';
import { TopiaryError } from '@topiary/kernel';
import { accumulateGramInBlocks, genericPrimitives } from '@topiary/linalg';

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

/** out[i][j] = Σ_r xi[r·di + i] · xj[r·dj + j]: one tile of a Gram block whose output would be too large at once. */
function gramTileKernel(this: KernelThis<{ rows: number; di: number; dj: number }>, xi: number[], xj: number[]): number {
  let s = 0;
  for (let r = 0; r < this.constants.rows; r++) {
    s += xi[r * this.constants.di + this.thread.y] * xj[r * this.constants.dj + this.thread.x];
  }
  return s;
}

/** out[r][g] = Σ w[r·cols + c]² over the columns c of segment g (segments of `seg` columns): rows too long for one loop. */
function rowSegmentSquaresKernel(this: KernelThis<{ cols: number; seg: number }>, w: number[]): number {
  let s = 0;
  for (let j = 0; j < this.constants.seg; j++) {
    const c = this.thread.x * this.constants.seg + j;
    if (c < this.constants.cols) {
      const v = w[this.thread.y * this.constants.cols + c];
      s += v * v;
    }
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

/**
 * The most elements one kernel argument or output may have. gpu.js on WebGL addresses elements through float32
 * texture coordinates, exact only below 2^24: past it, reads land on neighbouring elements (measured on
 * headless-gl/llvmpipe: row norms of a 2000×9000 matrix off by 2.5e-4 relative). Larger work goes in pieces.
 */
export const MAX_KERNEL_ELEMENTS = 1 << 24;

/**
 * The longest reduction loop one kernel runs. WebGL loops stop at 65536 iterations (measured: the norm of a row of
 * 100000 elements summed only the first 65536); longer reductions go in segments summed in float64 on the host.
 */
export const MAX_KERNEL_LOOP = 16384;

export interface GpuKernelsOptions {
  /** When false, a kernel gpu.js moved to its CPU fallback is an error (E_BACKEND) instead of a slow success. */
  allowFallback?: boolean;
  /** Lower limits than WebGL's (tests: the pieces' bookkeeping on small shapes). */
  maxElements?: number;
  maxLoop?: number;
}

export class GpuKernels {
  private readonly cache = new Map<string, IKernelRunShortcut>();
  private lastMode: GpuJsMode | undefined;
  /** How many kernel runs completed (on any kind of kernel). */
  runs = 0;
  private readonly allowFallback: boolean;
  private readonly maxElements: number;
  private readonly maxLoop: number;

  constructor(
    private readonly gpu: GPU,
    options: GpuKernelsOptions = {},
  ) {
    this.allowFallback = options.allowFallback ?? true;
    this.maxElements = Math.min(options.maxElements ?? MAX_KERNEL_ELEMENTS, MAX_KERNEL_ELEMENTS);
    this.maxLoop = Math.min(options.maxLoop ?? MAX_KERNEL_LOOP, MAX_KERNEL_LOOP);
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
    if (n > this.maxElements) return genericPrimitives.matmul(a, b, m, k, n);
    // k in chunks (loop length; b's rows kc·n), m in chunks (a's rows mc·kc, the output's mc·n)
    const kc = Math.max(1, Math.min(k, this.maxLoop, Math.floor(this.maxElements / n)));
    const mc = Math.max(1, Math.min(m, Math.floor(this.maxElements / Math.max(kc, n))));
    if (kc === k && mc === m) return this.matmulPiece(a, b, m, k, n);
    const out = new Float64Array(m * n);
    for (let p0 = 0; p0 < k; p0 += kc) {
      const kp = Math.min(kc, k - p0);
      const bPart = b.subarray(p0 * n, (p0 + kp) * n);
      for (let i0 = 0; i0 < m; i0 += mc) {
        const mp = Math.min(mc, m - i0);
        const aPart = kp === k ? a.subarray(i0 * k, (i0 + mp) * k) : columns(a, k, i0, mp, p0, kp);
        const c = this.matmulPiece(aPart, bPart, mp, kp, n);
        for (let i = 0; i < mp * n; i++) out[i0 * n + i]! += c[i]!;
      }
    }
    return Float32Array.from(out);
  }

  private matmulPiece(a: Float32Array, b: Float32Array, m: number, k: number, n: number): Float32Array {
    const run = this.kernel(`mm:${m}:${k}:${n}`, () =>
      this.gpu.createKernel(matmulKernel).setOutput([n, m]).setConstants({ k, n }).setPrecision('single').setTactic('precision'),
    );
    return flatten(this.run<Float32Array[]>(run, a, b), m, n);
  }

  accumulateGram(x: Float32Array, n: number, d: number, acc: Float64Array): void {
    const blockRows = this.blockRows(d);
    if (blockRows < 1) return genericPrimitives.accumulateGram(x, n, d, acc);
    // blocks of rows on the device in float32, summed (and symmetrised) in float64 by the kernel's shared loop
    accumulateGramInBlocks(x, n, d, acc, blockRows, (block, rows) => {
      if (d * d <= this.maxElements) {
        const run = this.kernel(`gram:${rows}:${d}`, () =>
          this.gpu.createKernel(gramKernel).setOutput([d, d]).setConstants({ rows, d }).setPrecision('single').setTactic('precision'),
        );
        return flatten(this.run<Float32Array[]>(run, block), d, d);
      }
      // a d×d output past the element limit: square tiles of at most 2^24 outputs, the upper ones mirrored
      const t = Math.floor(Math.sqrt(this.maxElements));
      const g = new Float32Array(d * d);
      for (let i0 = 0; i0 < d; i0 += t) {
        const di = Math.min(t, d - i0);
        const xi = columns(block, d, 0, rows, i0, di);
        for (let j0 = i0; j0 < d; j0 += t) {
          const dj = Math.min(t, d - j0);
          const xj = j0 === i0 ? xi : columns(block, d, 0, rows, j0, dj);
          const run = this.kernel(`gramtile:${rows}:${di}:${dj}`, () =>
            this.gpu.createKernel(gramTileKernel).setOutput([dj, di]).setConstants({ rows, di, dj }).setPrecision('single').setTactic('precision'),
          );
          const tile = this.run<Float32Array[]>(run, xi, xj);
          for (let i = 0; i < di; i++) {
            const row = tile[i]!;
            for (let j = 0; j < dj; j++) {
              g[(i0 + i) * d + j0 + j] = row[j]!;
              g[(j0 + j) * d + i0 + i] = row[j]!;
            }
          }
        }
      }
      return g;
    });
  }

  accumulateColumnSquares(x: Float32Array, n: number, d: number, acc: Float64Array): void {
    const blockRows = this.blockRows(d);
    if (blockRows < 1) return genericPrimitives.accumulateColumnSquares(x, n, d, acc);
    // as the Gram: float32 sums over blocks of rows on the device, the blocks added in float64 here
    for (let start = 0; start < n; start += blockRows) {
      const rows = Math.min(blockRows, n - start);
      const run = this.kernel(`colsq:${rows}:${d}`, () =>
        this.gpu.createKernel(columnSquaresKernel).setOutput([d]).setConstants({ rows, d }).setPrecision('single').setTactic('precision'),
      );
      const sums = this.run<Float32Array>(run, x.subarray(start * d, (start + rows) * d));
      for (let j = 0; j < d; j++) acc[j]! += sums[j]!;
    }
  }

  /** Rows per block of a Gram / column-squares pass: 256, fewer where a block of d columns would pass the limits. */
  private blockRows(d: number): number {
    return Math.min(GRAM_BLOCK_ROWS, this.maxLoop, Math.floor(this.maxElements / d));
  }

  rowNorms(w: Float32Array, rows: number, cols: number): Float32Array {
    if (cols > this.maxElements) return genericPrimitives.rowNorms(w, rows, cols);
    const out = new Float32Array(rows);
    // rows in chunks of at most 2^24 elements
    const rc = Math.max(1, Math.min(rows, Math.floor(this.maxElements / cols)));
    for (let r0 = 0; r0 < rows; r0 += rc) {
      const rp = Math.min(rc, rows - r0);
      const part = w.subarray(r0 * cols, (r0 + rp) * cols);
      if (cols <= this.maxLoop) {
        const run = this.kernel(`norm:${rp}:${cols}`, () =>
          this.gpu.createKernel(rowNormKernel).setOutput([rp]).setConstants({ cols }).setPrecision('single').setTactic('precision'),
        );
        out.set(this.run<Float32Array>(run, part), r0);
        continue;
      }
      // rows longer than one loop: squared sums of segments on the device, added in float64 here
      const seg = this.maxLoop;
      const segments = Math.ceil(cols / seg);
      const run = this.kernel(`normseg:${rp}:${cols}`, () =>
        this.gpu.createKernel(rowSegmentSquaresKernel).setOutput([segments, rp]).setConstants({ cols, seg }).setPrecision('single').setTactic('precision'),
      );
      const sums = this.run<Float32Array[]>(run, part);
      for (let r = 0; r < rp; r++) {
        let s = 0;
        for (let g = 0; g < segments; g++) s += sums[r]![g]!;
        out[r0 + r] = Math.sqrt(s);
      }
    }
    return out;
  }

  destroy(): void {
    for (const k of this.cache.values()) k.destroy?.();
    this.cache.clear();
  }
}

/** The contiguous copy of rows [r0, r0 + rn) × columns [c0, c0 + cn) of a row-major matrix with `cols` columns. */
function columns(x: Float32Array, cols: number, r0: number, rn: number, c0: number, cn: number): Float32Array {
  const out = new Float32Array(rn * cn);
  for (let r = 0; r < rn; r++) out.set(x.subarray((r0 + r) * cols + c0, (r0 + r) * cols + c0 + cn), r * cn);
  return out;
}

function flatten(rows: Float32Array[], m: number, n: number): Float32Array {
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) out.set(rows[i]!, i * n);
  return out;
}
