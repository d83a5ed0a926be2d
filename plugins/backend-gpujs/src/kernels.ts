/**
 * The gpu.js kernels: Gram accumulation `XᵀX`, matmul and row norms, the products that dominate pruning
 * (SparseGPT's Hessians, Wanda's norms). gpu.js compiles each kernel function's source to GLSL (a GPU through
 * headless-gl), to WebAssembly, or runs it as JavaScript (`cpu`). Kernels are compiled once per shape and cached.
 * These functions run inside gpu.js: plain loops, `this.thread` / `this.constants`, no closures.
 */
import type { GPU, IKernelFunctionThis, IKernelRunShortcut } from 'gpu.js';
import { accumulateGramInBlocks } from '@topiary/linalg';

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

export class GpuKernels {
  private readonly cache = new Map<string, IKernelRunShortcut>();

  constructor(private readonly gpu: GPU) {}

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
    return flatten(run(a, b) as Float32Array[], m, n);
  }

  accumulateGram(x: Float32Array, n: number, d: number, acc: Float64Array): void {
    // blocks of rows on the device in float32, summed (and symmetrised) in float64 by the kernel's shared loop
    accumulateGramInBlocks(x, n, d, acc, GRAM_BLOCK_ROWS, (block, rows) => {
      const run = this.kernel(`gram:${rows}:${d}`, () =>
        this.gpu.createKernel(gramKernel).setOutput([d, d]).setConstants({ rows, d }).setPrecision('single').setTactic('precision'),
      );
      return flatten(run(block) as Float32Array[], d, d);
    });
  }

  rowNorms(w: Float32Array, rows: number, cols: number): Float32Array {
    const run = this.kernel(`norm:${rows}:${cols}`, () =>
      this.gpu.createKernel(rowNormKernel).setOutput([rows]).setConstants({ cols }).setPrecision('single').setTactic('precision'),
    );
    return Float32Array.from(run(w) as Float32Array);
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
