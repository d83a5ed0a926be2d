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
import { genericPrimitives } from '@topiary/linalg';
import { encodeModule, F64, FunctionBuilder, I32, V128 } from './gemm/wasm-emitter.js';
import { wasmApi, type WasmMemory } from './gemm/wasm-api.js';

/** Columns of C per pass (a k × 256 float64 tile of B, k ≤ 128 in SparseGPT, stays in L2), as the generic code. */
const TILE = 256;
/** Below this many multiply-adds the copies are not worth it: the generic code runs. */
const MIN_WORK = 1 << 16;

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
        f.forLoop(j, pairsEnd, 2, () => {
          f.get(j).i32(3).shl().set(addr);
          f.get(ci).get(addr).add(); // store address
          f.get(ci).get(addr).add().v128Load();
          for (let r = 0; r < 4; r++) f.get(av[r]!).get(bp[r]!).get(addr).add().v128Load().f64x2Mul().f64x2Sub();
          f.v128Store();
        });
        f.forLoop(j, j1, 1, () => {
          f.get(j).i32(3).shl().set(addr);
          f.get(ci).get(addr).add();
          f.get(ci).get(addr).add().f64Load();
          for (let r = 0; r < 4; r++) f.get(as[r]!).get(bp[r]!).get(addr).add().f64Load().f64Mul().f64Sub();
          f.f64Store();
        });
      });
      // the terms left, one at a time
      f.forLoop(q, t, 1, () => {
        termRow(0);
        f.get(as[0]!).f64x2Splat().set(av[0]!);
        f.get(j0).set(j);
        f.forLoop(j, pairsEnd, 2, () => {
          f.get(j).i32(3).shl().set(addr);
          f.get(ci).get(addr).add();
          f.get(ci).get(addr).add().v128Load().get(av[0]!).get(bp[0]!).get(addr).add().v128Load().f64x2Mul().f64x2Sub();
          f.v128Store();
        });
        f.forLoop(j, j1, 1, () => {
          f.get(j).i32(3).shl().set(addr);
          f.get(ci).get(addr).add();
          f.get(ci).get(addr).add().f64Load().get(as[0]!).get(bp[0]!).get(addr).add().f64Load().f64Mul().f64Sub();
          f.f64Store();
        });
      });
    });
  });
  return f;
}

interface Linalg64Exports {
  subtractProduct(m: number, n: number, k: number, a: number, b: number, c: number, terms: number, counts: number): void;
}

/** The module and its own (unshared, growable) memory, made on first use; undefined where wasm SIMD is missing. */
let made: { exports: Linalg64Exports; memory: WasmMemory } | null | undefined;

function instance(): { exports: Linalg64Exports; memory: WasmMemory } | null {
  if (made !== undefined) return made;
  try {
    const bytes = encodeModule([{ name: 'subtractProduct', params: 8, body: kernel() }], undefined, false);
    const memory = new (wasmApi.Memory as unknown as new (d: { initial: number }) => WasmMemory)({ initial: 1 });
    const inst = new wasmApi.Instance(new wasmApi.Module(bytes), { env: { memory } });
    made = { exports: inst.exports as unknown as Linalg64Exports, memory };
  } catch {
    made = null; // an engine without SIMD: the generic code serves
  }
  return made;
}

const align = (x: number): number => Math.ceil(x / 16) * 16;

/** C −= A·B on float64 row-major blocks with row strides (PruningPrimitives.subtractProduct64). */
export function subtractProduct64(m: number, n: number, k: number, a: Float64Array, lda: number, b: Float64Array, ldb: number, c: Float64Array, ldc: number): void {
  const wasm = m * n * k >= MIN_WORK ? instance() : null;
  if (!wasm) return genericPrimitives.subtractProduct64(m, n, k, a, lda, b, ldb, c, ldc);
  const aAt = 0;
  const bAt = align(aAt + 8 * m * k);
  const cAt = align(bAt + 8 * k * n);
  const termsAt = align(cAt + 8 * m * n);
  const countsAt = align(termsAt + 4 * m * k);
  const need = countsAt + 4 * m;
  const have = wasm.memory.buffer.byteLength;
  if (need > have) wasm.memory.grow(Math.ceil((need - have) / 65536));
  const heap = wasm.memory.buffer;
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
