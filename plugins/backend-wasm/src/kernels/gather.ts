/**
 * `GatherV2` along axis 0 — the embedding lookup — as one row copy per index on the wasm heap. The stock wasm kernel
 * walks the output element by element through a general N-d index map: 4096 rows of a [512, 512] table took ~80 ms
 * here (~100 MB/s), a few percent of a small prune and ~20 ms of every training step's embedding at dim 288. Rows
 * copied with `copyWithin` take ~1 ms. Same bytes out (a row is copied, not computed). Everything else — another
 * axis, batch dimensions, other dtypes, an index out of range — goes to the stock kernel, which decides.
 */
import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { replaceWasmKernel, restoreWasmKernel } from './replace.js';

interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: 'float32' | 'int32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array;
}

const ROWS = Symbol.for('topiary:row-gather');

function rowGather(stock: KernelFunc): KernelFunc {
  return (args) => {
    const x = args.inputs['x'] as TensorInfo;
    const indices = args.inputs['indices'] as TensorInfo;
    const { axis, batchDims } = args.attrs as unknown as { axis: number; batchDims?: number };
    const rank = x.shape.length;
    const along = axis < 0 ? axis + rank : axis;
    if (along !== 0 || (batchDims ?? 0) !== 0 || rank < 1 || indices.dtype !== 'int32' || (x.dtype !== 'float32' && x.dtype !== 'int32')) return stock(args);
    const b = args.backend as unknown as WasmHeapBackend;
    const rows = x.shape[0]!;
    const ids = b.typedArrayFromHeap(indices) as Int32Array;
    for (let i = 0; i < ids.length; i++) if (!(ids[i]! >= 0 && ids[i]! < rows)) return stock(args);
    const width = x.shape.slice(1).reduce((p, d) => p * d, 1);
    const out = b.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    // views after the allocation (it may grow the heap)
    const heap = b.typedArrayFromHeap(out);
    const table = b.typedArrayFromHeap(x).byteOffset / 4;
    const at = heap.byteOffset / 4;
    const words = new Int32Array(heap.buffer);
    const index = b.typedArrayFromHeap(indices) as Int32Array;
    for (let i = 0; i < index.length; i++) words.copyWithin(at + i * width, table + index[i]! * width, table + (index[i]! + 1) * width);
    return out;
  };
}

/** Replace the wasm GatherV2 with the row-copying one (idempotent). */
export function installRowGather(): void {
  replaceWasmKernel('GatherV2', ROWS, (stock) => rowGather(stock.kernelFunc));
}

/** Put the stock GatherV2 back. */
export function uninstallRowGather(): void {
  restoreWasmKernel('GatherV2', ROWS);
}
