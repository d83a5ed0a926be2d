/**
 * Block ranges as users write them (`--layers`, a recipe's `layers:`), one syntax for every pruner:
 * `A-B` (inclusive) or `START:END` (END exclusive; either side may be empty: `2:`, `:4`).
 */

/** A range as written, before the model is known: `end` is exclusive, null when left open (`2:`). */
export interface BlockRangeSpec {
  start: number;
  end: number | null;
  text: string;
}

/** The range `text` spells, or null when it is not a range (a single index, or something else). */
export function parseBlockRange(text: string): BlockRangeSpec | null {
  const inclusive = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(text);
  if (inclusive) return { start: Number(inclusive[1]), end: Number(inclusive[2]) + 1, text };
  const slice = /^\s*(\d*)\s*:\s*(\d*)\s*$/.exec(text);
  if (!slice) return null;
  return { start: slice[1] === '' ? 0 : Number(slice[1]), end: slice[2] === '' ? null : Number(slice[2]), text };
}
