/**
 * SparseGPT's lazy batch update, C −= A·B in float64, as a generated WebAssembly SIMD kernel (two doubles per
 * instruction) for the default backend: in plain JavaScript it was the largest single cost of a SparseGPT prune on
 * this backend (2.1 s of 9.6 s at 12.8M parameters).
 *
 * Same arithmetic as `genericPrimitives.subtractProduct64` (@topiary/linalg), bit for bit: each row of A is reduced
 * to its nonzero terms (about half of an error block's entries are zero: the kept weights), and every entry of C
 * receives them one by one in ascending p, four terms per load and store of C, over column tiles of 256. wasm never
 * fuses a multiply and a subtract, so each lane computes c − a₀b₀ − a₁b₁ − a₂b₂ − a₃b₃ exactly as JavaScript does.
 *
 * The operands are copied into the module's own memory (A, B, C contiguous; C back out after): its cost is one pass
 * over C per ~64 terms. The memory grows to the largest call and is reused (fresh arrays fault in slowly).
 */
import { FACTOR_PANEL, genericPrimitives, jsFactorKernels, upperCholeskyOfInverseIn, type FactorKernels } from '@topiary/linalg';
import { encodeModule, F64, FunctionBuilder, I32, V128 } from './gemm/wasm-emitter.js';
import { roundUp } from './gemm/plan.js';
import { wasmApi, type WasmMemory } from './gemm/wasm-api.js';

/** Columns of C per pass (a k × 256 float64 tile of B, k ≤ 128 in SparseGPT, stays in L2), as the generic code. */
const TILE = 256;
/** Below this many multiply-adds the copies are not worth it: the generic code runs. */
const MIN_WORK = 1 << 16;

/**
 * C[j] = C[j] − a₀·B₀[j] − a₁·B₁[j] − … (one rounding per product and per subtraction, in term order) for j from
 * the local `j`'s value up to `end`: two lanes per step below `pairsEnd`, then one. `c` and `bs` hold the byte
 * addresses of element 0 of C and of each B; `av` the terms' a splatted to two lanes, `as` the same as f64.
 */
function subtractTerms(f: FunctionBuilder, l: { j: number; pairsEnd: number; end: number; addr: number }, c: number, bs: readonly number[], av: readonly number[], as: readonly number[]): void {
  const { j, pairsEnd, end, addr } = l;
  f.forLoop(j, pairsEnd, 2, () => {
    f.get(j).i32(3).shl().set(addr);
    f.get(c).get(addr).add(); // the store's address
    f.get(c).get(addr).add().v128Load();
    bs.forEach((b, r) => f.get(av[r]!).get(b).get(addr).add().v128Load().f64x2Mul().f64x2Sub());
    f.v128Store();
  });
  f.forLoop(j, end, 1, () => {
    f.get(j).i32(3).shl().set(addr);
    f.get(c).get(addr).add();
    f.get(c).get(addr).add().f64Load();
    bs.forEach((b, r) => f.get(as[r]!).get(b).get(addr).add().f64Load().f64Mul().f64Sub());
    f.f64Store();
  });
}

/**
 * subtractProduct(m, n, k, a, b, c, terms, counts): byte addresses; A m×k, B k×n, C m×n (row-major, contiguous);
 * terms (int32, m×k): per row of A the p of its nonzero entries, ascending; counts (int32, m): how many.
 */
function kernel(): FunctionBuilder {
  const f = new FunctionBuilder(8);
  const [m, n, k, a, b, c, terms, counts] = [0, 1, 2, 3, 4, 5, 6, 7];
  const j0 = f.local(I32);
  const j1 = f.local(I32);
  const pairsEnd = f.local(I32);
  const i = f.local(I32);
  const ci = f.local(I32); // byte address of C[i, 0]
  const ai = f.local(I32); // A[i, 0]
  const ti = f.local(I32); // terms[i, 0]
  const t = f.local(I32);
  const t4 = f.local(I32);
  const q = f.local(I32);
  const j = f.local(I32);
  const rowBytes = f.local(I32); // n·8
  const bp = [f.local(I32), f.local(I32), f.local(I32), f.local(I32)]; // B[p_r, 0]
  const as = [f.local(F64), f.local(F64), f.local(F64), f.local(F64)];
  const av = [f.local(V128), f.local(V128), f.local(V128), f.local(V128)];
  const addr = f.local(I32);
  const tile = { j, pairsEnd, end: j1, addr };

  f.get(n).i32(3).shl().set(rowBytes);
  /** Push the byte address of row p's start in B, for p read from terms[ti + 4·r]. */
  const termRow = (r: number): void => {
    f.get(ti).get(q).i32(2).shl().add().i32Load(4 * r).get(rowBytes).mul().get(b).add().set(bp[r]!);
    f.get(ai).get(ti).get(q).i32(2).shl().add().i32Load(4 * r).i32(3).shl().add().f64Load().set(as[r]!);
  };
  f.i32(0).set(j0);
  f.forLoop(j0, n, TILE, () => {
    // j1 = min(j0 + TILE, n); pairsEnd = j0 + ((j1 − j0) & ~1)
    f.get(j0).i32(TILE).add().set(j1);
    f.get(j1).get(n).gtS().ifElse(() => { f.get(n).set(j1); });
    f.get(j1).get(j0).sub().i32(-2).and().get(j0).add().set(pairsEnd);
    f.i32(0).set(i);
    f.forLoop(i, m, 1, () => {
      f.get(i).get(rowBytes).mul().get(c).add().set(ci);
      f.get(i).get(k).mul().i32(3).shl().get(a).add().set(ai);
      f.get(i).get(k).mul().i32(2).shl().get(terms).add().set(ti);
      f.get(i).i32(2).shl().get(counts).add().i32Load().set(t);
      f.get(t).i32(-4).and().set(t4);
      f.i32(0).set(q);
      // four terms per load and store of C
      f.forLoop(q, t4, 4, () => {
        for (let r = 0; r < 4; r++) {
          termRow(r);
          f.get(as[r]!).f64x2Splat().set(av[r]!);
        }
        f.get(j0).set(j);
        subtractTerms(f, tile, ci, bp, av, as);
      });
      // the terms left, one at a time
      f.forLoop(q, t, 1, () => {
        termRow(0);
        f.get(as[0]!).f64x2Splat().set(av[0]!);
        f.get(j0).set(j);
        subtractTerms(f, tile, ci, bp.slice(0, 1), av, as);
      });
    });
  });
  return f;
}

/**
 * trailing(l, n, k0, k1, packed): the Cholesky trailing update (@topiary/linalg FactorKernels.updateTrailing) on
 * the n×n float64 matrix at byte address l, with `packed` (n × FACTOR_PANEL float64) as scratch. The panel's rows
 * are packed k-major (packed[k][j] = L[j, k0 + k]), so the entries (i, j), (i, j + 1) of a row take two lanes; every
 * entry is one chain t −= L[i, k]·L[j, k] in ascending k, as in the JavaScript 2×2 tiles.
 */
function trailing(): FunctionBuilder {
  const f = new FunctionBuilder(5);
  const [l, n, k0, k1, pk] = [0, 1, 2, 3, 4];
  const w = f.local(I32);
  const wide = f.local(I32); // N = n − k1, the packed row length
  const nb = f.local(I32);
  const wideBytes = f.local(I32);
  const i = f.local(I32);
  const j = f.local(I32);
  const k = f.local(I32);
  const src = f.local(I32);
  const dst = f.local(I32);
  const ri = f.local(I32);
  const ai = f.local(I32);
  const iEnd = f.local(I32);
  const jOct = f.local(I32);
  const jPair = f.local(I32);
  const p = f.local(I32);
  const c = f.local(I32);
  const a = f.local(V128);
  const as = f.local(F64);
  const t = [f.local(V128), f.local(V128), f.local(V128), f.local(V128)];
  const ts = f.local(F64);
  f.get(k1).get(k0).sub().set(w).get(n).get(k1).sub().set(wide).get(n).i32(3).shl().set(nb).get(wide).i32(3).shl().set(wideBytes);
  // pack the panel's rows k-major
  f.get(k1).set(j);
  f.forLoop(j, n, 1, () => {
    f.get(j).get(nb).mul().get(k0).i32(3).shl().add().get(l).add().set(src);
    f.get(j).get(k1).sub().i32(3).shl().get(pk).add().set(dst);
    f.i32(0).set(k);
    f.forLoop(k, w, 1, () => {
      f.get(dst).get(src).f64Load().f64Store();
      f.bump(src, 8).bumpBy(dst, wideBytes);
    });
  });
  f.get(k1).set(i);
  f.forLoop(i, n, 1, () => {
    f.get(i).get(nb).mul().get(l).add().set(ri);
    f.get(ri).get(k0).i32(3).shl().add().set(ai);
    f.get(i).i32(1).add().set(iEnd);
    f.get(iEnd).get(k1).sub().i32(-8).and().get(k1).add().set(jOct);
    f.get(k1).set(j);
    f.forLoop(j, jOct, 8, () => {
      f.get(j).i32(3).shl().get(ri).add().set(c);
      for (let q = 0; q < 4; q++) f.get(c).v128Load(16 * q).set(t[q]!);
      f.get(j).get(k1).sub().i32(3).shl().get(pk).add().set(p);
      f.i32(0).set(k);
      f.forLoop(k, w, 1, () => {
        f.get(ai).get(k).i32(3).shl().add().f64Load().f64x2Splat().set(a);
        for (let q = 0; q < 4; q++) f.get(t[q]!).get(a).get(p).v128Load(16 * q).f64x2Mul().f64x2Sub().set(t[q]!);
        f.bumpBy(p, wideBytes);
      });
      for (let q = 0; q < 4; q++) f.get(c).get(t[q]!).v128Store(16 * q);
    });
    f.get(iEnd).get(j).sub().i32(-2).and().get(j).add().set(jPair);
    f.forLoop(j, jPair, 2, () => {
      f.get(j).i32(3).shl().get(ri).add().set(c);
      f.get(c).v128Load().set(t[0]!);
      f.get(j).get(k1).sub().i32(3).shl().get(pk).add().set(p);
      f.i32(0).set(k);
      f.forLoop(k, w, 1, () => {
        f.get(t[0]!).get(ai).get(k).i32(3).shl().add().f64Load().f64x2Splat().get(p).v128Load().f64x2Mul().f64x2Sub().set(t[0]!);
        f.bumpBy(p, wideBytes);
      });
      f.get(c).get(t[0]!).v128Store();
    });
    f.forLoop(j, iEnd, 1, () => {
      f.get(j).i32(3).shl().get(ri).add().set(c);
      f.get(c).f64Load().set(ts);
      f.get(j).get(k1).sub().i32(3).shl().get(pk).add().set(p);
      f.i32(0).set(k);
      f.forLoop(k, w, 1, () => {
        f.get(ai).get(k).i32(3).shl().add().f64Load().set(as);
        f.get(ts).get(as).get(p).f64Load().f64Mul().f64Sub().set(ts);
        f.bumpBy(p, wideBytes);
      });
      f.get(c).get(ts).f64Store();
    });
  });
  return f;
}

/**
 * panelRows(m, n, k0, k1): the triangular inverse's panel subtraction (@topiary/linalg FactorKernels.
 * subtractPanelRows) on the n×n float64 matrix at byte address m: for every row i ≥ k1, four k at a time, the four
 * L[i, k] are read, their slots zeroed (each starts X[i, k]'s chain), and X[i, j] −= Σ L[i, k]·X[k, j] for
 * j < k + 4, in ascending k; then the k left one at a time for j ≤ k. Two lanes per instruction over j.
 */
function panelRows(): FunctionBuilder {
  const f = new FunctionBuilder(4);
  const [m, n, k0, k1] = [0, 1, 2, 3];
  const nb = f.local(I32);
  const i = f.local(I32);
  const k = f.local(I32);
  const k4 = f.local(I32);
  const j = f.local(I32);
  const ri = f.local(I32);
  const width = f.local(I32);
  const pairs = f.local(I32);
  const addr = f.local(I32);
  const q = [f.local(I32), f.local(I32), f.local(I32), f.local(I32)];
  const as = [f.local(F64), f.local(F64), f.local(F64), f.local(F64)];
  const av = [f.local(V128), f.local(V128), f.local(V128), f.local(V128)];
  const row = { j, pairsEnd: pairs, end: width, addr };
  f.get(n).i32(3).shl().set(nb);
  f.get(k1).get(k0).sub().i32(-4).and().get(k0).add().set(k4);
  f.get(k1).set(i);
  f.forLoop(i, n, 1, () => {
    f.get(i).get(nb).mul().get(m).add().set(ri);
    f.get(k0).set(k);
    f.forLoop(k, k4, 4, () => {
      for (let r = 0; r < 4; r++) {
        f.get(ri).get(k).i32(3).shl().add().f64Load(8 * r).set(as[r]!);
        f.get(as[r]!).f64x2Splat().set(av[r]!);
        f.get(k).i32(r).add().get(nb).mul().get(m).add().set(q[r]!);
      }
      for (let r = 0; r < 4; r++) f.get(ri).get(k).i32(3).shl().add().f64Zero().f64Store(8 * r);
      f.get(k).i32(4).add().set(width);
      f.get(width).i32(-2).and().set(pairs);
      f.i32(0).set(j);
      subtractTerms(f, row, ri, q, av, as);
    });
    f.forLoop(k, k1, 1, () => {
      f.get(ri).get(k).i32(3).shl().add().f64Load().set(as[0]!);
      f.get(as[0]!).f64x2Splat().set(av[0]!);
      f.get(ri).get(k).i32(3).shl().add().f64Zero().f64Store();
      f.get(k).get(nb).mul().get(m).add().set(q[0]!);
      f.get(k).i32(1).add().set(width);
      f.get(width).i32(-2).and().set(pairs);
      f.i32(0).set(j);
      subtractTerms(f, row, ri, q.slice(0, 1), av, as);
    });
  });
  return f;
}

/**
 * obs(w, err, keep, rows, count, u, ldu): SparseGPT's OBS steps on one block (PruningPrimitives.obsBlock): W and Err
 * [rows, count] float64, keep [rows, count] bytes, U count×count float64 with row stride ldu (in floats). Each
 * dropped weight's error is spread over its row's later columns two lanes at a time, W − e·U as in JavaScript.
 */
function obs(): FunctionBuilder {
  const f = new FunctionBuilder(7);
  const [w, err, keep, rows, count, u, ldu] = [0, 1, 2, 3, 4, 5, 6];
  const r = f.local(I32);
  const j = f.local(I32);
  const c = f.local(I32);
  const base = f.local(I32);
  const ebase = f.local(I32);
  const kbase = f.local(I32);
  const urow = f.local(I32);
  const pairs = f.local(I32);
  const addr = f.local(I32);
  const e = f.local(F64);
  const ev = f.local(V128);
  f.i32(0).set(r);
  f.forLoop(r, rows, 1, () => {
    f.get(r).get(count).mul().set(kbase);
    f.get(kbase).i32(3).shl().get(w).add().set(base);
    f.get(kbase).i32(3).shl().get(err).add().set(ebase);
    f.get(kbase).get(keep).add().set(kbase);
    f.i32(0).set(j);
    f.forLoop(j, count, 1, () => {
      f.get(kbase).get(j).add().i32Load8U().eqz().ifElse(() => {
        f.get(j).get(ldu).mul().i32(3).shl().get(u).add().set(urow);
        f.get(j).i32(3).shl().set(addr);
        f.get(base).get(addr).add().f64Load().get(urow).get(addr).add().f64Load().f64Div().set(e);
        f.get(base).get(addr).add().f64Zero().f64Store();
        f.get(ebase).get(addr).add().get(e).f64Store();
        f.get(e).f64x2Splat().set(ev);
        f.get(j).i32(1).add().set(c);
        f.get(count).get(c).sub().i32(-2).and().get(c).add().set(pairs);
        subtractTerms(f, { j: c, pairsEnd: pairs, end: count, addr }, base, [urow], [ev], [e]);
      });
    });
  });
  return f;
}

interface Linalg64Exports {
  obs(w: number, err: number, keep: number, rows: number, count: number, u: number, ldu: number): void;
  subtractProduct(m: number, n: number, k: number, a: number, b: number, c: number, terms: number, counts: number): void;
  trailing(l: number, n: number, k0: number, k1: number, packed: number): void;
  panelRows(m: number, n: number, k0: number, k1: number): void;
}

/** The module and its own (unshared, growable) memory, made on first use; undefined where wasm SIMD is missing. */
let made: { exports: Linalg64Exports; memory: WasmMemory } | null | undefined;

function instance(): { exports: Linalg64Exports; memory: WasmMemory } | null {
  if (made !== undefined) return made;
  try {
    const bytes = encodeModule(
      [
        { name: 'subtractProduct', params: 8, body: kernel() },
        { name: 'trailing', params: 5, body: trailing() },
        { name: 'panelRows', params: 4, body: panelRows() },
        { name: 'obs', params: 7, body: obs() },
      ],
      undefined,
      false,
    );
    const memory = new (wasmApi.Memory as unknown as new (d: { initial: number }) => WasmMemory)({ initial: 1 });
    const inst = new wasmApi.Instance(new wasmApi.Module(bytes), { env: { memory } });
    made = { exports: inst.exports as unknown as Linalg64Exports, memory };
  } catch {
    made = null; // an engine without SIMD: the generic code serves
  }
  return made;
}

const align = (x: number): number => roundUp(x, 16);

/** The module's memory with at least `bytes`, as its current buffer (growing detaches older views). */
function reserve(wasm: { memory: WasmMemory }, bytes: number): ArrayBuffer | SharedArrayBuffer {
  const have = wasm.memory.buffer.byteLength;
  if (bytes > have) wasm.memory.grow(Math.ceil((bytes - have) / 65536));
  return wasm.memory.buffer;
}

/** Below this order the factorisation stays in JavaScript (the copy in and out would not pay). */
const MIN_FACTOR = 64;

/**
 * The factorisations' loops as the module's kernels, for matrices that live in its memory (anything else: the
 * JavaScript loops). Same arithmetic per entry: bit-identical.
 */
function factorKernels(wasm: { exports: Linalg64Exports; memory: WasmMemory }): FactorKernels {
  const here = (x: Float64Array): boolean => x.buffer === wasm.memory.buffer;
  return {
    updateTrailing(l, n, k0, k1, packed) {
      if (here(l) && here(packed) && packed.length >= n * FACTOR_PANEL) wasm.exports.trailing(l.byteOffset, n, k0, k1, packed.byteOffset);
      else jsFactorKernels.updateTrailing(l, n, k0, k1, packed);
    },
    subtractPanelRows(m, n, k0, k1) {
      if (here(m)) wasm.exports.panelRows(m.byteOffset, n, k0, k1);
      else jsFactorKernels.subtractPanelRows(m, n, k0, k1);
    },
  };
}

/**
 * Upper U with A⁻¹ = UᵀU (PruningPrimitives.upperCholeskyOfInverse; SparseGPT's factorisation, once per distinct
 * layer input): @topiary/linalg's algorithm, worked out in the module's memory with its kernels (2.7 s of a 12.8M
 * prune in JavaScript).
 */
export function upperCholeskyOfInverse(a: Float64Array, n: number): Float64Array {
  const wasm = n >= MIN_FACTOR ? instance() : null;
  if (!wasm) return genericPrimitives.upperCholeskyOfInverse(a, n);
  const packedAt = align(8 * n * n);
  const heap = reserve(wasm, packedAt + 8 * n * FACTOR_PANEL);
  const work = new Float64Array(heap, 0, n * n);
  const packed = new Float64Array(heap, packedAt, n * FACTOR_PANEL);
  return upperCholeskyOfInverseIn(a, n, work, factorKernels(wasm), packed).slice();
}

/** C −= A·B on float64 row-major blocks with row strides (PruningPrimitives.subtractProduct64). */
export function subtractProduct64(m: number, n: number, k: number, a: Float64Array, lda: number, b: Float64Array, ldb: number, c: Float64Array, ldc: number): void {
  const wasm = m * n * k >= MIN_WORK ? instance() : null;
  if (!wasm) return genericPrimitives.subtractProduct64(m, n, k, a, lda, b, ldb, c, ldc);
  const aAt = 0;
  const bAt = align(aAt + 8 * m * k);
  const cAt = align(bAt + 8 * k * n);
  const termsAt = align(cAt + 8 * m * n);
  const countsAt = align(termsAt + 4 * m * k);
  const heap = reserve(wasm, countsAt + 4 * m);
  const A = new Float64Array(heap, aAt, m * k);
  const B = new Float64Array(heap, bAt, k * n);
  const C = new Float64Array(heap, cAt, m * n);
  const terms = new Int32Array(heap, termsAt, m * k);
  const counts = new Int32Array(heap, countsAt, m);
  for (let i = 0; i < m; i++) {
    let t = 0;
    for (let p = 0; p < k; p++) {
      const v = a[i * lda + p]!;
      A[i * k + p] = v;
      if (v !== 0) terms[i * k + t++] = p;
    }
    counts[i] = t;
    C.set(c.subarray(i * ldc, i * ldc + n), i * n);
  }
  for (let p = 0; p < k; p++) B.set(b.subarray(p * ldb, p * ldb + n), p * n);
  wasm.exports.subtractProduct(m, n, k, aAt, bAt, cAt, termsAt, countsAt);
  for (let i = 0; i < m; i++) c.set(C.subarray(i * n, (i + 1) * n), i * ldc);
}

/** SparseGPT's OBS steps on one block (PruningPrimitives.obsBlock), in the module's memory: W, Err, the mask and U's block copied in, W and Err out. */
export function obsBlock(w: Float64Array, err: Float64Array, keep: Uint8Array, rows: number, count: number, u: Float64Array, ldu: number): void {
  const wasm = rows * count * count >= MIN_WORK ? instance() : null;
  if (!wasm) return genericPrimitives.obsBlock!(w, err, keep, rows, count, u, ldu);
  const wAt = 0;
  const errAt = align(wAt + 8 * rows * count);
  const uAt = align(errAt + 8 * rows * count);
  const keepAt = align(uAt + 8 * count * count);
  const heap = reserve(wasm, keepAt + rows * count);
  const W = new Float64Array(heap, wAt, rows * count);
  const E = new Float64Array(heap, errAt, rows * count);
  const U = new Float64Array(heap, uAt, count * count);
  W.set(w.subarray(0, rows * count));
  E.set(err.subarray(0, rows * count));
  for (let j = 0; j < count; j++) U.set(u.subarray(j * ldu, j * ldu + count), j * count);
  new Uint8Array(heap, keepAt, rows * count).set(keep.subarray(0, rows * count));
  wasm.exports.obs(wAt, errAt, keepAt, rows, count, uAt, count);
  w.set(W);
  err.set(E);
}

