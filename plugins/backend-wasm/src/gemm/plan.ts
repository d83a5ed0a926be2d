/**
 * How one (batched) product is cut into work for the threads: pure arithmetic on sizes and addresses, no memory
 * touched. Each thread gets one list of kernel operations (kernels.ts `exec`) over its share:
 *
 *   batched products (attention):  whole items, split evenly across threads;
 *   one product:                   row panels (M ≥ N) or column panels (N > M), split evenly.
 *
 * Within a share the loops are the blocked GEMM's: columns in NC blocks (a packed B block stays in L2/L3), the
 * shared dimension in KC blocks, rows in MC blocks (a packed A block stays in L2), and the tile kernel sweeps
 * NR-column panels × MR-row panels. C is written with its rows and columns rounded up to MR and NR, so every
 * tile is whole; the caller copies the M×N part out.
 */
import { OP_KERNEL, OP_PACK_A, OP_PACK_B, OP_WORDS, type TileShape } from './kernels.js';

export interface ProductSpec {
  /** Number of products (1 for a plain matmul). */
  batch: number;
  m: number;
  n: number;
  k: number;
  /** A is stored k×m per item (the product uses its transpose). */
  transposeA: boolean;
  /** B is stored n×k per item. */
  transposeB: boolean;
  /** false: one A (or B) for every item (broadcast over the batch). */
  aBatched: boolean;
  bBatched: boolean;
  /**
   * For batch shapes that broadcast on both sides ([1, 6]·[6, 1] → 36 items): which stored A (B) item each output
   * item reads. Overrides aBatched (bBatched) when given.
   */
  aIndex?: Int32Array;
  bIndex?: Int32Array;
}

/** The stored A and B item an output item reads. */
export function sourceItems(spec: ProductSpec, item: number): [number, number] {
  const a = spec.aIndex ? spec.aIndex[item]! : spec.aBatched ? item : 0;
  const b = spec.bIndex ? spec.bIndex[item]! : spec.bBatched ? item : 0;
  return [a, b];
}

export interface BlockSizes {
  mc: number;
  kc: number;
  nc: number;
}

/**
 * Up to KC = 512: an A panel (KC·MR floats, 8 KiB) and a B panel (KC·NR, 16 KiB) fit L1 together; the MC×KC A block
 * (128 KiB) fits L2; an NC-wide packed B block (2 MiB) sits in L3. Chosen by a sweep on the 2-core EPYC here
 * (bench/README.md, "What was tried"); neighbouring choices were within the machine's noise.
 */
export const BLOCKS: BlockSizes = { mc: 64, kc: 512, nc: 1024 };

/** Where the operands live in the shared memory (byte addresses). */
export interface ProductLayout {
  a: number;
  b: number;
  c: number;
  /** Per thread: start of its packing scratch (packed A block, then packed B block). */
  scratch: number[];
}

export interface Plan {
  /** Per thread, its operations: OP_WORDS i32 words each. Threads with nothing to do get an empty list. */
  lists: Int32Array[];
  /** C's row stride in floats (n rounded up to NR) and rows per item (m rounded up to MR). */
  ldc: number;
  rowsPerItem: number;
}

export function roundUp(x: number, multiple: number): number {
  return Math.ceil(x / multiple) * multiple;
}

/** Floats of packing scratch one thread needs. */
export function scratchFloats(tile: TileShape, blocks: BlockSizes = BLOCKS): number {
  return roundUp(blocks.mc, tile.mr) * blocks.kc + blocks.kc * roundUp(blocks.nc, tile.nr);
}

/** Floats of C (padded to whole tiles) for a product. */
export function outputFloats(spec: ProductSpec, tile: TileShape): number {
  return spec.batch * roundUp(spec.m, tile.mr) * roundUp(spec.n, tile.nr);
}

/** Split `count` units into `parts` contiguous ranges as even as possible. */
function evenRanges(count: number, parts: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let p = 0; p < parts; p++) out.push([Math.floor((count * p) / parts), Math.floor((count * (p + 1)) / parts)]);
  return out;
}

export function planProduct(
  spec: ProductSpec,
  layout: ProductLayout,
  threads: number,
  tile: TileShape,
  blocks: BlockSizes = BLOCKS,
): Plan {
  const { m, n, k, batch } = spec;
  if (k < 1) throw new Error('planProduct: k must be ≥ 1 (an empty shared dimension is the caller’s zero fill)');
  const { mr, nr } = tile;
  const mc = roundUp(blocks.mc, mr);
  const nc = roundUp(blocks.nc, nr);
  // Equal KC blocks (288 = 2 × 144, not 256 + 32): a short last block would cost a whole extra pass over C.
  const kcMax = Math.ceil(k / Math.ceil(k / blocks.kc));
  const rowsPerItem = roundUp(m, mr);
  const ldc = roundUp(n, nr);
  // Element strides in floats: A(i, kk) at i·aRow + kk·aK; B(kk, j) at kk·bK + j·bCol.
  const [aRow, aK] = spec.transposeA ? [1, m] : [k, 1];
  const [bK, bCol] = spec.transposeB ? [1, k] : [n, 1];
  const lists: number[][] = Array.from({ length: threads }, () => []);

  /** Thread `t` computes item `item`, rows [m0, m1), columns [n0, n1) (multiples of MR / NR, within the padding). */
  const share = (t: number, item: number, m0: number, m1: number, n0: number, n1: number): void => {
    const ops = lists[t]!;
    const [aSource, bSource] = sourceItems(spec, item);
    const aItem = layout.a + 4 * aSource * m * k;
    const bItem = layout.b + 4 * bSource * k * n;
    const cItem = layout.c + 4 * item * rowsPerItem * ldc;
    const packedA = layout.scratch[t]!;
    const packedB = packedA + 4 * mc * blocks.kc;
    for (let j0 = n0; j0 < n1; j0 += nc) {
      const width = Math.min(nc, n1 - j0);
      for (let k0 = 0; k0 < k; k0 += kcMax) {
        const kc = Math.min(kcMax, k - k0);
        ops.push(OP_PACK_B, bItem + 4 * (k0 * bK + j0 * bCol), bCol, bK, Math.min(width, n - j0), kc, packedB, 0, 0);
        for (let i0 = m0; i0 < m1; i0 += mc) {
          const height = Math.min(mc, m1 - i0);
          ops.push(OP_PACK_A, aItem + 4 * (i0 * aRow + k0 * aK), aRow, aK, Math.min(height, m - i0), kc, packedA, 0, 0);
          ops.push(OP_KERNEL, packedA, packedB, cItem + 4 * (i0 * ldc + j0), 4 * ldc, height / mr, width / nr, kc, k0 > 0 ? 1 : 0);
        }
      }
    }
  };

  if (batch > 1) {
    const used = Math.min(threads, batch);
    evenRanges(batch, used).forEach(([first, end], t) => {
      for (let item = first; item < end; item++) share(t, item, 0, rowsPerItem, 0, ldc);
    });
  } else if (rowsPerItem / mr >= ldc / nr) {
    const used = Math.min(threads, rowsPerItem / mr);
    evenRanges(rowsPerItem / mr, used).forEach(([p0, p1], t) => {
      if (p1 > p0) share(t, 0, p0 * mr, p1 * mr, 0, ldc);
    });
  } else {
    const used = Math.min(threads, ldc / nr);
    evenRanges(ldc / nr, used).forEach(([p0, p1], t) => {
      if (p1 > p0) share(t, 0, 0, rowsPerItem, p0 * nr, p1 * nr);
    });
  }
  for (const ops of lists) if (ops.length % OP_WORDS !== 0) throw new Error('planProduct: malformed operation list');
  return { lists: lists.map((ops) => Int32Array.from(ops)), ldc, rowsPerItem };
}
