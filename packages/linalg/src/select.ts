/**
 * Which entries are the k lowest scores — ties by ascending index, deterministic across runs and engines — without
 * sorting. Each score becomes one exact float64 key, orderedBits(score)·2²¹ + index (< 2⁵³), so keys are unique and
 * compare like (score, index); the k lowest are then the keys at or below the k-th smallest key, found by
 * quickselect in O(length) instead of an O(length·log length) sort. A 12.8M-parameter Wanda prune spent ~1 s in
 * per-row sorts; selection is the same mask (tested against a comparator sort with ties, ±0, ±∞ and NaN).
 */

/** Keys take 21 bits of index: arrays up to 2M entries select on one numeric key each. */
export const INDEX_RANGE = 2 ** 21;
const SIGN = 0x80000000;
const CANONICAL_NAN = 0x7fc00000;

/**
 * The float32 bit patterns of `scores[offset, offset + length)` as keys in the floats' order (negatives flipped,
 * positives above them), −0 as +0 (they tie in a numeric comparison) and every NaN as the one positive NaN tfjs and
 * a Float32Array store, so NaN ranks above +∞.
 */
function writeKeys(scores: Float32Array, offset: number, length: number, keys: Float64Array): void {
  const bits = new Uint32Array(scores.buffer, scores.byteOffset + offset * 4, length);
  for (let i = 0; i < length; i++) {
    let u = bits[i]!;
    if (u === SIGN) u = 0;
    else if ((u & 0x7fffffff) > 0x7f800000) u = CANONICAL_NAN;
    const ordered = u & SIGN ? ~u >>> 0 : (u | SIGN) >>> 0;
    keys[i] = ordered * INDEX_RANGE + i;
  }
}

/**
 * Rearranges `a[lo, hi)` so that a[k] holds the value a full sort would put there, and returns it (Hoare partition
 * around a median of three; small ranges by insertion sort). Keys are distinct, so no three-way split is needed.
 */
function selectKth(a: Float64Array, lo: number, hi: number, k: number): number {
  let left = lo;
  let right = hi - 1;
  while (right - left > 24) {
    const mid = (left + right) >>> 1;
    // median of three, ordered in place: a[left] ≤ a[mid] ≤ a[right]
    if (a[mid]! < a[left]!) swap(a, mid, left);
    if (a[right]! < a[left]!) swap(a, right, left);
    if (a[right]! < a[mid]!) swap(a, right, mid);
    const pivot = a[mid]!;
    let i = left;
    let j = right;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        swap(a, i, j);
        i++;
        j--;
      }
    }
    if (k <= j) right = j;
    else if (k >= i) left = i;
    else return a[k]!;
  }
  for (let i = left + 1; i <= right; i++) {
    const v = a[i]!;
    let j = i - 1;
    while (j >= left && a[j]! > v) {
      a[j + 1] = a[j]!;
      j--;
    }
    a[j + 1] = v;
  }
  return a[k]!;
}

function swap(a: Float64Array, i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}

/**
 * keep[at + i] = 0 for the `count` lowest of scores[offset, offset + length) (ties by index), other entries of
 * keep untouched. `keys` and `scratch` are caller-owned buffers of at least `length` entries (reused across rows).
 */
export function dropLowest(
  scores: Float32Array,
  offset: number,
  length: number,
  count: number,
  keep: Uint8Array,
  at: number,
  keys: Float64Array,
  scratch: Float64Array,
): void {
  if (count <= 0) return;
  if (count >= length) {
    keep.fill(0, at, at + length);
    return;
  }
  writeKeys(scores, offset, length, keys);
  scratch.set(keys.subarray(0, length));
  const threshold = selectKth(scratch, 0, length, count - 1);
  for (let i = 0; i < length; i++) if (keys[i]! <= threshold) keep[at + i] = 0;
}

/** Indices of `scores[offset, offset + length)` by ascending score, ties by ascending index (a full sort). */
export function ascendingOrder(scores: Float32Array, offset = 0, length = scores.length): Uint32Array {
  const idx = new Uint32Array(length);
  if (length <= INDEX_RANGE) {
    const keys = new Float64Array(length);
    writeKeys(scores, offset, length, keys);
    keys.sort();
    for (let i = 0; i < length; i++) idx[i] = keys[i]! % INDEX_RANGE;
    return idx;
  }
  for (let i = 0; i < length; i++) idx[i] = i;
  idx.sort((p, q) => scores[offset + p]! - scores[offset + q]! || p - q);
  return idx;
}
