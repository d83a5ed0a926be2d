/**
 * Give host memory back between the steps of a streamed run. A layer's host arrays (its weight copy, scores, masks:
 * 180 MB + 45 MB for one Llama-2-7B feed-forward matrix) are garbage once the layer is written, but V8 frees array
 * buffers only when it collects, which it does late when its own heap is small. The next layer's arrays then take
 * fresh pages, and the peak holds two or three layers' worth. A full collection between layers (as the PyTorch
 * pruning scripts call `torch.cuda.empty_cache()` between layers) costs milliseconds when the JS heap is this small,
 * and the freed pages are reused (a fresh page costs a fault; on the machines measured, ~170 ms per 61 MB).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let collect: (() => void) | null | undefined;

/** The engine's full collection, when the runtime offers one (Node: yes; elsewhere a no-op). */
export function releaseHostMemory(): void {
  if (collect === undefined) {
    try {
      const exposed = (globalThis as { gc?: () => void }).gc;
      if (typeof exposed === 'function') collect = exposed;
      else {
        setFlagsFromString('--expose-gc');
        const fn = runInNewContext('gc') as unknown;
        collect = typeof fn === 'function' ? (fn as () => void) : null;
      }
    } catch {
      collect = null;
    }
  }
  collect?.();
}
