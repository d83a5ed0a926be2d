/**
 * Float64 Cholesky factorisation and lower-triangular inverse, blocked for the cache.
 *
 * Why blocked: the textbook loops sweep the whole n×n triangle once per column. At n = 1368 (a 12.8M-parameter
 * LLaMA's FFN width) that is 15 MB per sweep, far past the L2 cache, and SparseGPT's factorisations took ~5 s of a
 * 12.8M prune. Here each step works on a panel of `PANEL` columns (a few hundred KB) and updates the rest of the
 * matrix from it, two rows and two columns (or four terms) at a time, so every value loaded is used several times.
 *
 * Why the results are bit-identical to the textbook loops: every entry is still computed as its own chain of
 * float64 subtractions in ascending k order (the accumulator is stored and reloaded between panels, which does not
 * round), and the division / square root happen at the same point. Blocking only reorders *which* entry is worked
 * on when, never the operations inside one entry. The tests compare against the textbook loops bit for bit.
 */
import { TopiaryError } from '@topiary/kernel';

/** Columns per panel: the panel rows packed (n × PANEL float64) stay within L2 for n up to a few thousand. */
export const FACTOR_PANEL = 32;
const PANEL = FACTOR_PANEL;

/**
 * The two loops that do nearly all of the factorisations' work, replaceable by a backend with a faster version of
 * the very same arithmetic (every entry one chain of float64 subtractions in ascending k; only the order in which
 * entries are visited may differ), so the results stay bit-identical. `packed` is scratch of n × FACTOR_PANEL.
 */
export interface FactorKernels {
  /** L[i, j] −= Σ_{k ∈ [k0, k1)} L[i, k]·L[j, k] for k1 ≤ j ≤ i < n (the Cholesky trailing update). */
  updateTrailing(l: Float64Array, n: number, k0: number, k1: number, packed: Float64Array): void;
  /** X[i, 0..k1) −= Σ_{k ∈ [k0, k1)} L[i, k]·X[k, 0..k1) for i ≥ k1, four k per pass (see subtractPanelRows). */
  subtractPanelRows(m: Float64Array, n: number, k0: number, k1: number): void;
}

/** The error of a Cholesky factorisation that meets a non-positive pivot (shared by the backends' versions). */
export function notPositiveDefinite(pivot: number, value?: number): TopiaryError {
  return new TopiaryError('E_NUMERIC', `matrix is not positive definite (pivot ${pivot}${value === undefined ? '' : ` = ${value}`})`, {
    where: 'cholesky',
    hint: 'increase the dampening (e.g. --dampening 0.1) or use more calibration samples',
  });
}

/**
 * Lower L with A = L Lᵀ (A symmetric positive definite, row-major n×n; only its lower triangle is read).
 * Right-looking by panels: factor columns [k0, k1) using only their own earlier columns (the terms of columns
 * before k0 were subtracted already), then subtract this panel's terms from every entry right of and below it.
 */
export function cholesky(a: Float64Array, n: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) l.set(a.subarray(i * n, i * n + i + 1), i * n);
  return choleskyInPlace(l, n);
}

/**
 * `cholesky` overwriting the lower triangle of `m` (strict upper triangle neither read nor written). For callers
 * that own a scratch copy: on this machine a fresh n×n float64 array costs more than factorising into it (new
 * pages are faulted in one by one — ~120 ms for n = 1368), so the factorisations avoid allocating.
 */
export function choleskyInPlace(m: Float64Array, n: number, kernels: FactorKernels = jsFactorKernels, packed: Float64Array = new Float64Array(n * PANEL)): Float64Array {
  for (let k0 = 0; k0 < n; k0 += PANEL) {
    const k1 = Math.min(k0 + PANEL, n);
    factorPanel(m, n, k0, k1);
    if (k1 < n) kernels.updateTrailing(m, n, k0, k1, packed);
  }
  return m;
}

/** Columns [k0, k1) of L, rows k0..n−1: the textbook column step, with the sums restricted to k ∈ [k0, j). */
function factorPanel(l: Float64Array, n: number, k0: number, k1: number): void {
  for (let j = k0; j < k1; j++) {
    const rj = j * n;
    let s = l[rj + j]!;
    for (let k = k0; k < j; k++) s -= l[rj + k]! ** 2;
    if (!(s > 0) || !Number.isFinite(s)) throw notPositiveDefinite(j, s);
    const d = Math.sqrt(s);
    l[rj + j] = d;
    for (let i = j + 1; i < n; i++) {
      const ri = i * n;
      let t = l[ri + j]!;
      for (let k = k0; k < j; k++) t -= l[ri + k]! * l[rj + k]!;
      l[ri + j] = t / d;
    }
  }
}

/**
 * L[i, j] −= Σ_{k ∈ [k0, k1)} L[i, k]·L[j, k] for k1 ≤ j ≤ i < n. The panel's rows are packed contiguously first;
 * entries are done in 2×2 tiles (rows i, i+1 × columns j, j+1: four chains sharing four loads per k).
 */
function updateTrailing(l: Float64Array, n: number, k0: number, k1: number, packed: Float64Array): void {
  const w = k1 - k0;
  for (let i = k1; i < n; i++) packed.set(l.subarray(i * n + k0, i * n + k1), (i - k1) * w);
  let i = k1;
  for (; i + 1 < n; i += 2) {
    const pi0 = (i - k1) * w;
    const pi1 = pi0 + w;
    const ri0 = i * n;
    const ri1 = ri0 + n;
    let j = k1;
    for (; j + 1 <= i; j += 2) {
      const pj0 = (j - k1) * w;
      const pj1 = pj0 + w;
      let t00 = l[ri0 + j]!;
      let t01 = l[ri0 + j + 1]!;
      let t10 = l[ri1 + j]!;
      let t11 = l[ri1 + j + 1]!;
      for (let k = 0; k < w; k++) {
        const a0 = packed[pi0 + k]!;
        const a1 = packed[pi1 + k]!;
        const b0 = packed[pj0 + k]!;
        const b1 = packed[pj1 + k]!;
        t00 -= a0 * b0;
        t01 -= a0 * b1;
        t10 -= a1 * b0;
        t11 -= a1 * b1;
      }
      l[ri0 + j] = t00;
      l[ri0 + j + 1] = t01; // j + 1 ≤ i: inside row i's triangle
      l[ri1 + j] = t10;
      l[ri1 + j + 1] = t11;
    }
    // the columns left: j = i (when i − k1 is even) for both rows, then j = i + 1 for row i + 1 only
    for (; j <= i + 1; j++) {
      const pj = (j - k1) * w;
      if (j <= i) {
        let t0 = l[ri0 + j]!;
        for (let k = 0; k < w; k++) t0 -= packed[pi0 + k]! * packed[pj + k]!;
        l[ri0 + j] = t0;
      }
      let t1 = l[ri1 + j]!;
      for (let k = 0; k < w; k++) t1 -= packed[pi1 + k]! * packed[pj + k]!;
      l[ri1 + j] = t1;
    }
  }
  if (i < n) {
    const pi = (i - k1) * w;
    const ri = i * n;
    for (let j = k1; j <= i; j++) {
      const pj = (j - k1) * w;
      let t = l[ri + j]!;
      for (let k = 0; k < w; k++) t -= packed[pi + k]! * packed[pj + k]!;
      l[ri + j] = t;
    }
  }
}

/**
 * Inverse X of a lower-triangular L. Row i of X is (eᵢ − Σ_{k<i} L[i,k]·X[k,:]) / L[i,i], the sum taken in
 * ascending k. By panels of rows [k0, k1): finish those rows (their terms from k < k0 are already in), then
 * subtract their terms from every later row — two later rows at a time, four k per pass over a row, each entry
 * still one chain in ascending k. A zero L[i,k] contributes nothing (X is finite), as in the textbook loop that
 * skips it.
 */
export function invertLower(l: Float64Array, n: number): Float64Array {
  const x = new Float64Array(n * n);
  for (let i = 0; i < n; i++) x.set(l.subarray(i * n, i * n + i + 1), i * n);
  return invertLowerInPlace(x, n);
}

/**
 * `invertLower` overwriting `m` with L⁻¹ (lower triangle read; the strict upper triangle is set to zero). In place
 * because entry (i, k) of L is read exactly once, at the step that starts X[i, k]'s chain: it is read, the slot is
 * set to 0 (the chain's start), and from then on it holds X[i, k]. Rows are finished in order, so X[k, :] is final
 * whenever row i > k reads it.
 */
export function invertLowerInPlace(m: Float64Array, n: number, kernels: FactorKernels = jsFactorKernels): Float64Array {
  for (let k0 = 0; k0 < n; k0 += PANEL) {
    const k1 = Math.min(k0 + PANEL, n);
    for (let i = k0; i < k1; i++) {
      const ri = i * n;
      for (let k = k0; k < i; k++) {
        const lik = m[ri + k]!;
        m[ri + k] = 0;
        if (lik === 0) continue;
        const rk = k * n;
        for (let j = 0; j <= k; j++) m[ri + j]! -= lik * m[rk + j]!;
      }
      const d = m[ri + i]!;
      for (let j = 0; j < i; j++) m[ri + j]! /= d;
      m[ri + i] = 1 / d;
      m.fill(0, ri + i + 1, ri + n); // later panels' 4-term passes read X[k, j] for j up to k + 3: it must be 0 there
    }
    if (k1 < n) kernels.subtractPanelRows(m, n, k0, k1);
  }
  return m;
}

/**
 * X[i, 0..k1) −= Σ_{k ∈ [k0, k1)} L[i,k]·X[k, 0..k1) for every i ≥ k1 (X[k, j] = 0 for j > k, so the width is k1),
 * with L[i, k] read from, and X[i, k] started in, the same slot (see invertLowerInPlace).
 */
function subtractPanelRows(m: Float64Array, n: number, k0: number, k1: number): void {
  let i = k1;
  for (; i + 1 < n; i += 2) subtractFromRows(m, n, k0, k1, i, i + 1);
  if (i < n) subtractFromRows(m, n, k0, k1, i, -1);
}

/** The panel's terms for row i0 (and i1 when ≥ 0), four k at a time; each entry's subtractions stay in k order. */
function subtractFromRows(m: Float64Array, n: number, k0: number, k1: number, i0: number, i1: number): void {
  const r0 = i0 * n;
  const r1 = i1 * n;
  const two = i1 >= 0;
  let k = k0;
  for (; k + 3 < k1; k += 4) {
    const a0 = m[r0 + k]!, a1 = m[r0 + k + 1]!, a2 = m[r0 + k + 2]!, a3 = m[r0 + k + 3]!;
    m.fill(0, r0 + k, r0 + k + 4);
    const q0 = k * n, q1 = q0 + n, q2 = q1 + n, q3 = q2 + n;
    const width = k + 4; // X[k + 3, j] = 0 past j = k + 3
    if (two) {
      const b0 = m[r1 + k]!, b1 = m[r1 + k + 1]!, b2 = m[r1 + k + 2]!, b3 = m[r1 + k + 3]!;
      m.fill(0, r1 + k, r1 + k + 4);
      for (let j = 0; j < width; j++) {
        const y0 = m[q0 + j]!, y1 = m[q1 + j]!, y2 = m[q2 + j]!, y3 = m[q3 + j]!;
        m[r0 + j] = m[r0 + j]! - a0 * y0 - a1 * y1 - a2 * y2 - a3 * y3;
        m[r1 + j] = m[r1 + j]! - b0 * y0 - b1 * y1 - b2 * y2 - b3 * y3;
      }
    } else {
      for (let j = 0; j < width; j++) m[r0 + j] = m[r0 + j]! - a0 * m[q0 + j]! - a1 * m[q1 + j]! - a2 * m[q2 + j]! - a3 * m[q3 + j]!;
    }
  }
  for (; k < k1; k++) {
    const a = m[r0 + k]!;
    m[r0 + k] = 0;
    const b = two ? m[r1 + k]! : 0;
    if (two) m[r1 + k] = 0;
    const q = k * n;
    for (let j = 0; j <= k; j++) {
      const y = m[q + j]!;
      m[r0 + j]! -= a * y;
      if (two) m[r1 + j]! -= b * y;
    }
  }
}

/** The loops above, in JavaScript: every backend's default. */
export const jsFactorKernels: FactorKernels = Object.freeze({ updateTrailing, subtractPanelRows });
