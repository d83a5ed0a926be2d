/** How many batches share one block-by-block pass: as many as their hidden states fit the activation budget. */

/** Hidden states kept between blocks per pass, by default (1 GiB). */
export const DEFAULT_ACTIVATION_BYTES = 1024 ** 3;

/**
 * Split batch indices 0..n−1 into consecutive passes whose hidden states (`bytesOf(k)` each) fit `budget` — at least
 * one batch per pass, however large. An in-memory model gets one batch per pass (`streamed` false): it gains
 * nothing from sharing a pass, and progress then moves batch by batch.
 */
export function passes(n: number, bytesOf: (k: number) => number, options: { streamed: boolean; budget?: number }): number[][] {
  const budget = options.budget ?? DEFAULT_ACTIVATION_BYTES;
  const out: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  for (let k = 0; k < n; k++) {
    const size = bytesOf(k);
    if (current.length > 0 && (!options.streamed || bytes + size > budget)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(k);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}
