/**
 * The wasm backend: tfjs with its WebAssembly engine (XNNPACK kernels, SIMD), no native build. What actually
 * runs under Node is reported by `capabilities()` after `init()`: the SIMD build on one thread (tfjs-wasm 4.22
 * hard-wires multithreading off under Node; see README "Threads"). The runtime (Node, or a browser page) is the
 * GEMM's platform seam (gemm/platform.ts), given to the constructor; Node is the default.
 */
import * as tf from '@tensorflow/tfjs-core';
import { TopiaryError, z, type BackendAvailability, type BackendCapabilities, type OptionsOf, type TensorBackend } from '@topiary/kernel';
import { installFastBatchMatMul, prepareInPlaceGemm, sharedGemmPool, uninstallFastBatchMatMul } from './kernels/batch-matmul.js';
import { withSharedTfjsHeap } from './shared-heap.js';
import { relaxedSimdAvailable, resolveThreads } from './gemm/pool.js';
import type { GemmPlatform } from './gemm/platform.js';
import { nodeGemmPlatform } from './gemm/platform-node.js';
import { installSharedIdentity } from './kernels/identity.js';
import { installRowGather } from './kernels/gather.js';
import { installSoftmaxCrossEntropy, uninstallSoftmaxCrossEntropy } from './kernels/softmax-cross-entropy.js';
import { installInPlaceFusedKernels, uninstallInPlaceFusedKernels } from './fused/install.js';
import { installMissingKernels } from './kernels/unsorted-segment-sum.js';
import { wasmPrimitives } from './primitives.js';

/** The backend's options, declared once (its plugin validates them; `WasmBackendOptions` is their type). */
export const wasmBackendOptions = z
  .object({
    fastMatMul: z
      .boolean()
      .optional()
      .meta({ description: "run BatchMatMul on Topiary's multithreaded WebAssembly GEMM (default true; false keeps tfjs's stock kernel, for comparisons)" }),
    threads: z.number().int().min(1).optional().meta({ description: "threads for the GEMM, the caller's included (default: TOPIARY_WASM_THREADS, else every core, at most 16)" }),
    fma: z.boolean().optional().meta({ description: 'fused multiply-add in the GEMM where the engine allows it (default true; TOPIARY_WASM_FMA=0 also turns it off)' }),
    fused: z
      .boolean()
      .optional()
      .meta({ description: "RMSNorm, RoPE, attention softmax, SwiGLU (and their gradients) and AdamW as Topiary's fused WebAssembly SIMD kernels, in place on the tfjs heap (default true; TOPIARY_WASM_FUSED=0 also turns them off; false runs tfjs's composite ops, for comparisons)" }),
  })
  .strict();

export type WasmBackendOptions = OptionsOf<typeof wasmBackendOptions>;

export class WasmBackend implements TensorBackend {
  readonly name = 'wasm';
  readonly engine = 'wasm';
  /** Above cpu/gpujs (no GPU here), below the native backends when they load. */
  readonly priority = 50;
  /** Gram and matmul on XNNPACK (when wasm is the active engine); the rest generic. */
  readonly primitives = wasmPrimitives;
  private simd: boolean | undefined;
  /** Whether tfjs-wasm's heap is shared memory with the GEMM's threads (known after init). */
  private heapShared: boolean | undefined;
  private threaded = false;
  private readonly fastMatMul: boolean;
  private readonly gemmThreads: number;
  private readonly wantFma: boolean;
  private readonly wantFused: boolean;
  /** Whether the in-place fused kernels are installed: known after init(). */
  private fused = false;
  /** Whether the GEMM really uses FMA: known after init(). */
  private fma = false;
  private readonly added: string[] = [];

  constructor(
    options: WasmBackendOptions = {},
    /** The runtime the GEMM runs on (default Node; a page passes `browserGemmPlatform()`). */
    readonly platform: GemmPlatform = nodeGemmPlatform,
  ) {
    this.fastMatMul = options.fastMatMul ?? true;
    this.gemmThreads = resolveThreads(options.threads, platform);
    this.wantFma = options.fma ?? true;
    this.wantFused = (options.fused ?? true) && platform.setting('TOPIARY_WASM_FUSED') !== '0';
  }

  async available(): Promise<BackendAvailability> {
    if (typeof (globalThis as { WebAssembly?: unknown }).WebAssembly !== 'object') {
      return { ok: false, reason: 'this JavaScript runtime has no WebAssembly', fix: 'use Node.js 20 or newer' };
    }
    if (this.platform.tfjsWasmInstalled()) return { ok: true };
    return {
      ok: false,
      reason: '@tensorflow/tfjs-backend-wasm is not installed',
      fix: 'reinstall @topiary/backend-wasm (it depends on @tensorflow/tfjs-backend-wasm 4.22.0): `pnpm install`',
    };
  }

  async init(): Promise<void> {
    try {
      // Importing the package registers the `wasm` backend factory and its kernels with tfjs (tfjs's own
      // import-time registration; nothing of ours is registered until here).
      await import('@tensorflow/tfjs-backend-wasm');
      this.added.splice(0, this.added.length, ...installMissingKernels());
      installSharedIdentity();
      installRowGather();
      // The kernel registry is process-wide: the last backend initialised decides which BatchMatMul runs.
      if (this.fastMatMul) {
        this.fma = this.wantFma && relaxedSimdAvailable(this.platform);
        installFastBatchMatMul({ threads: this.gemmThreads, fma: this.fma, ...(this.platform === nodeGemmPlatform ? {} : { platform: this.platform }) });
        installSoftmaxCrossEntropy();
      } else {
        uninstallFastBatchMatMul();
        uninstallSoftmaxCrossEntropy();
      }
      // With worker threads, tfjs-wasm's heap is made shared memory as it initialises (shared-heap.ts), so the
      // threads read and write tensors in place; TOPIARY_WASM_SHARED_HEAP=0 keeps it unshared (operands copied).
      const shareHeap = this.fastMatMul && this.gemmThreads > 1 && this.platform.sharedMemory() && this.platform.setting('TOPIARY_WASM_SHARED_HEAP') !== '0';
      const setUp = async (): Promise<boolean> => (await tf.setBackend('wasm')) && (await tf.ready(), true);
      const ok = shareHeap ? await withSharedTfjsHeap(setUp) : await setUp();
      if (!ok) throw new Error('tf.setBackend("wasm") returned false');
      // Start the worker threads now, in the background: they come up (~50–80 ms here) while the command loads
      // its model and data, instead of inside its first product (a stories-size Wanda spent 84 ms of its first
      // block waiting for them).
      if (this.fastMatMul && this.gemmThreads > 1) sharedGemmPool();
      this.heapShared = sharedGemmPool()?.heap !== undefined;
      // after setBackend: they run on the active wasm backend's heap
      uninstallInPlaceFusedKernels();
      this.fused = this.wantFused && installInPlaceFusedKernels({ threads: this.gemmThreads, platform: this.platform });
      if (this.fastMatMul) prepareInPlaceGemm();
      this.simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
      this.threaded = Boolean(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'));
    } catch (err) {
      throw new TopiaryError('E_BACKEND', `the wasm backend failed to initialise: ${err instanceof Error ? err.message : String(err)}`, {
        where: 'backend wasm',
        hint: 'check that @tensorflow/tfjs-backend-wasm 4.22.0 is installed next to @tensorflow/tfjs 4.22.0; --backend cpu always works',
        cause: err,
      });
    }
  }

  capabilities(): BackendCapabilities {
    const simd = this.simd ?? false;
    const build = this.threaded ? 'threaded-simd' : simd ? 'simd' : 'plain';
    const notes = [
      this.fastMatMul
        ? `BatchMatMul (float32): Topiary's WebAssembly SIMD GEMM on ${this.gemmThreads} thread(s)${this.fma ? ', fused multiply-add (relaxed SIMD)' : ''}; transposed and batched products packed, not copied`
        : 'BatchMatMul: stock tfjs kernel (XNNPACK, 1 thread; transposed and batched products are slow)',
      this.simd === undefined
        ? 'not initialised yet: call init() to find out the SIMD build'
        : `other ops: tfjs-backend-wasm-${build}.wasm (XNNPACK) on ${this.threaded ? 'several threads' : '1 thread'}`,
      this.platform.tfjsThreadsNote,
      ...(this.heapShared === undefined
        ? []
        : [
            this.heapShared
              ? "tfjs-wasm's heap: shared memory (its binary's memory made a shared import at initialisation): the threads work on tensors in place"
              : "tfjs-wasm's heap: not shared (one thread, an unshared page or TOPIARY_WASM_SHARED_HEAP=0): operands are copied to the threads",
          ]),
      'UnsortedSegmentSum added (gradient of gather / embedding lookup); GatherV2 along axis 0 as row copies',
      ...(this.fastMatMul ? ['softmax cross-entropy (the LM-head loss): one fused SIMD pass per row on the GEMM threads'] : []),
      this.fused
        ? `RMSNorm, RoPE + head transpose, causal softmax, SwiGLU, their gradients and AdamW: fused WebAssembly SIMD kernels in place on the tfjs heap${this.heapShared && this.gemmThreads > 1 ? `, big ones (and the residual adds) split across the ${this.gemmThreads} threads` : this.gemmThreads > 1 ? '; big causal softmaxes and SwiGLUs split across the threads through copies' : ''}`
        : 'RMSNorm, RoPE, softmax, SwiGLU, AdamW: tfjs composite ops (fused kernels off)',
      ...(this.fused
        ? [
            `generation: one fused decode step per token (few-row SIMD products${this.gemmThreads > 1 && this.platform.sharedMemory() ? `; models with ≥ 8 MB of weights on ${this.gemmThreads} threads ${this.heapShared ? 'in place on the shared heap' : 'over a shared-memory copy of the weights'}` : ', in place on 1 thread'})`,
          ]
        : []),
      `primitives: accumulateGram and matmul through BatchMatMul (${this.fastMatMul ? 'the GEMM' : 'XNNPACK'}; float32 blocks of 1024 rows summed in float64); the rest generic`,
    ];
    return { device: 'cpu', threads: this.fastMatMul ? this.gemmThreads : this.threaded ? 2 : 1, simd, float64: false, notes };
  }
}
