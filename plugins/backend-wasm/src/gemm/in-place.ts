/**
 * Products small enough to run on the calling thread (GemmPool.threadsFor(work) = 1), computed **in place on
 * tfjs-wasm's heap**: the same generated GEMM module, instantiated on tfjs's own memory, packs A and B straight
 * from the input tensors and writes C straight into the output tensor when the output needs no tile padding (m a
 * multiple of MR, n of NR) — no copy in, no copy out. Otherwise C goes to a padded buffer on the same heap and its
 * rows are moved into the output there (one memmove, no round trip through JavaScript arrays).
 *
 * When tfjs's heap is shared memory (shared-heap.ts) and a pool works on it, products big enough for several threads
 * run in place too: planProduct's lists for the pool's threads, each with its packing scratch in the region, run by
 * `GemmPool.runOnHeap`. Every thread computes whole output tiles with the same kernel and the same order over k, so
 * the numbers are bit-identical to one thread's and to the pool's copying path.
 * Packing scratch, padded C and the lists live in one region malloc'ed from tfjs's allocator, kept between calls
 * and grown when a product needs more.
 */
import { gemmModuleBytes, MAX_PAGES, OP_WORDS, TILE, type GemmExports, type TileShape } from './kernels.js';
import type { GemmPool } from './pool.js';
import { heapIsShared } from '../shared-heap.js';
import { BLOCKS, outputFloats, planProduct, roundUp, scratchFloats, type BlockSizes, type ProductSpec } from './plan.js';
import { tfjsHeapMemory, wasmApi, type EmscriptenHeap, type WasmMemory } from './wasm-api.js';

/** Compiled modules by `fma` and whether the heap is shared (a shared memory needs a module that imports one). */
const compiled = new Map<string, object>();

export class InPlaceGemm {
  private readonly gemm: GemmExports;
  /** The malloc'ed block, and its 64-byte aligned start and usable size. */
  private allocated = 0;
  private region = 0;
  private regionBytes = 0;

  constructor(
    private readonly heap: EmscriptenHeap,
    readonly fma: boolean,
    readonly tile: TileShape = TILE,
    readonly blocks: BlockSizes = BLOCKS,
    /** A pool whose threads work on this heap (GemmPool.heap): big products are split across its threads. */
    readonly pool?: GemmPool,
  ) {
    const memory = tfjsHeapMemory(heap);
    if (!memory) throw new Error('InPlaceGemm: the tfjs-wasm heap memory is not reachable');
    if (pool && pool.heap !== heap) throw new Error('InPlaceGemm: the pool does not work on this heap');
    const shared = heapIsShared(memory);
    const key = `${fma}/${shared}`;
    let module = compiled.get(key);
    if (!module) {
      module = new wasmApi.Module(shared ? gemmModuleBytes(tile, fma, true, MAX_PAGES) : gemmModuleBytes(tile, fma, false, undefined));
      compiled.set(key, module);
    }
    this.gemm = new wasmApi.Instance(module, { env: { memory } }).exports as unknown as GemmExports;
  }

  /**
   * C = op(A)·op(B) for every item (GemmPool.matmul's contract), with A, B and C given as byte addresses on the heap
   * (batch × m × n floats at `c`). k ≥ 1 and a non-empty output: the caller handles the empty cases.
   */
  matmul(spec: ProductSpec, a: number, b: number, c: number): void {
    const { batch, m, n, k } = spec;
    const direct = m % this.tile.mr === 0 && n % this.tile.nr === 0;
    const threads = this.pool && !this.pool.broken ? this.pool.threadsFor(batch * m * n * k) : 1;
    const scratchBytes = roundUp(4 * scratchFloats(this.tile, this.blocks), 64);
    const paddedBytes = direct ? 0 : 4 * outputFloats(spec, this.tile);
    // Plan once with the region's current addresses; a region too small is grown and the product planned again.
    for (;;) {
      const afterScratch = this.region + threads * scratchBytes;
      const cAddr = direct ? c : afterScratch;
      const scratch = Array.from({ length: threads }, (_, t) => this.region + t * scratchBytes);
      const plan = planProduct(spec, { a, b, c: cAddr, scratch }, threads, this.tile, this.blocks);
      const list = plan.lists[0]!;
      const listAddr = roundUp(afterScratch + paddedBytes, 64);
      const need = listAddr + (threads > 1 ? 0 : 4 * list.length) - this.region;
      if (this.region === 0 || need > this.regionBytes) {
        this.grow(need);
        continue;
      }
      if (threads > 1) {
        this.pool!.runOnHeap(plan.lists);
      } else {
        const words = new Int32Array(this.memory().buffer);
        words.set(list, listAddr / 4);
        this.gemm.exec(listAddr, list.length / OP_WORDS);
      }
      if (!direct) {
        // rows of the padded C (ldc floats, rowsPerItem per item) into the m × n output
        const f32 = new Float32Array(this.memory().buffer);
        for (let item = 0; item < batch; item++) {
          for (let i = 0; i < m; i++) {
            const from = cAddr / 4 + (item * plan.rowsPerItem + i) * plan.ldc;
            f32.copyWithin(c / 4 + (item * m + i) * n, from, from + n);
          }
        }
      }
      return;
    }
  }

  /** Free the region (the instance stays usable: the next product allocates again). */
  dispose(): void {
    if (this.allocated !== 0) this.heap._free(this.allocated);
    this.allocated = 0;
    this.region = 0;
    this.regionBytes = 0;
  }

  private memory(): WasmMemory {
    return this.heap.asm!.memory!;
  }

  private grow(bytes: number): void {
    this.dispose();
    // room for alignment, and headroom so that neighbouring sizes do not reallocate every call
    const size = roundUp(Math.ceil(bytes * 1.25) + 256, 65536);
    const address = this.heap._malloc(size);
    if (!address) throw new RangeError(`InPlaceGemm: tfjs's heap could not allocate ${(size / 2 ** 20).toFixed(1)} MiB of scratch`);
    this.region = roundUp(address, 64);
    this.regionBytes = size - (this.region - address);
    this.allocated = address;
  }
}
