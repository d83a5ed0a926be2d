/**
 * The GEMM kernels, generated as one WebAssembly SIMD module (see wasm-emitter.ts). The design is the classic
 * blocked GEMM (Goto & van de Geijn): operands are packed into panels so the innermost loop reads both
 * sequentially, and an MR×NR tile of C stays in registers while the shared dimension streams past:
 *
 *   C[i, j] (+)= Σ_k A[i, k] · B[k, j]     for an MR-row × NR-column tile, k over one KC block
 *
 * Each step of k loads NR/4 vectors of B, broadcasts MR scalars of A, and does MR·NR/4 multiply-adds — fused
 * (one rounding) where relaxed SIMD is on and the CPU has FMA. 4×8 keeps 8 accumulators + 2 B vectors + the
 * broadcast in 11 of x64's 16 vector registers (measured here: 4×8 and 3×12 fastest, ≥ 5 rows spill).
 *
 * Exports (all i32 arguments, byte addresses into the shared memory, strides in floats):
 *   kernel(ap, bp, c, ldcBytes, mPanels, nPanels, kc, accumulate)
 *       C tiles for mPanels×nPanels panels of packed A (each kc×MR) and packed B (each kc×NR);
 *       accumulate ≠ 0 adds to C, otherwise overwrites it.
 *   packA(src, panelStride, kStride, count, kc, dst) / packB(…)
 *       copy `count` rows (A) or columns (B) × kc into MR- (NR-)wide panels, zero-padding the last one.
 *       Element (x, k) is read at src + 4·(x·panelStride + k·kStride), so transposed operands cost nothing.
 *   softmaxRows(logits, targets, rows, vocab, grad, stats, scaleBits)
 *       per row i: m = max_j z_ij, s = Σ_j exp(z_ij − m) → stats[2i], stats[2i+1]; when grad ≠ 0 also
 *       grad_i = (exp(z_i − m)/s − onehot(t_i))·scale (scale: an f32's bits). The loss, m + log s − z_i[t_i], is
 *       finished by the caller (wasm has no log instruction; it is one call per row).
 *   exec(list, count)
 *       run `count` operations of OP_WORDS i32s each: [opcode, args…] (0 packA, 1 packB, 2 kernel, 3 softmaxRows,
 *       4 causalSoftmax, 5 swiglu). A worker thread is handed one such list, so its whole share of a product is one
 *       call.
 *   causalSoftmax(…), swiglu(…)
 *       the fused elementwise kernels of ../fused/module.ts (the same generated code, so the same results), for
 *       a worker's share of a kernel whose other share the calling thread computes in place (../fused/install.ts).
 */
import { FUSED_FUNCTIONS } from '../fused/module.js';
import { encodeModule, F32, FunctionBuilder, I32, V128 } from './wasm-emitter.js';

export interface TileShape {
  /** Rows of the register tile (A panel width). */
  mr: number;
  /** Columns of the register tile (B panel width); a multiple of 4. */
  nr: number;
}

export const TILE: TileShape = { mr: 4, nr: 8 };

export const OP_PACK_A = 0;
export const OP_PACK_B = 1;
export const OP_KERNEL = 2;
export const OP_SOFTMAX_ROWS = 3;
/**
 * The fused kernels (../fused/module.ts) the GEMM's threads also run, on a share of a tensor: an operation is the
 * opcode and the function's parameters in order (fused/module.ts FusedExports). A function with more than 8
 * parameters takes a second slot: its parameters 9 and on are that slot's first words (the slot counts as an
 * operation in `exec`'s count).
 */
export const OP_CAUSAL_SOFTMAX = 4;
export const OP_SWIGLU = 5;
export const OP_SWIGLU_GRAD = 6;
export const OP_RMS_NORM = 7;
export const OP_SOFTMAX_GRAD = 8;
export const OP_ROPE_HEADS = 9;
export const OP_ADAMW = 10;
export const OP_ADD = 11;
/** i32 words per operation in an `exec` list (opcode + up to 8 arguments). */
export const OP_WORDS = 9;

/** Opcode → fused function, in the module after the GEMM's own five functions (kernel, packA, packB, exec, softmaxRows). */
const FUSED_OPS = [
  [OP_CAUSAL_SOFTMAX, 'causalSoftmax'],
  [OP_SWIGLU, 'swiglu'],
  [OP_SWIGLU_GRAD, 'swigluGrad'],
  [OP_RMS_NORM, 'rmsNorm'],
  [OP_SOFTMAX_GRAD, 'softmaxGrad'],
  [OP_ROPE_HEADS, 'ropeHeads'],
  [OP_ADAMW, 'adamw'],
  [OP_ADD, 'add'],
] as const;
type FusedOpName = (typeof FUSED_OPS)[number][1];

/** A fused function's entry (name, parameter count, body builder). */
function fusedEntry(name: FusedOpName): (typeof FUSED_FUNCTIONS)[number] {
  const entry = FUSED_FUNCTIONS.find(([n]) => n === name);
  if (!entry) throw new Error(`no fused function ${name}`);
  return entry;
}

/** Words (both slots) of a fused operation: the opcode, then `params` in order, zero-padded to whole slots. */
export function fusedOperation(op: number, params: readonly number[]): Int32Array {
  const words = new Int32Array(params.length > OP_WORDS - 1 ? 2 * OP_WORDS : OP_WORDS);
  words[0] = op;
  params.forEach((v, i) => (words[i < OP_WORDS - 1 ? i + 1 : i + 2] = v));
  return words;
}

/** Largest memory the module may grow to (4 GiB, the wasm32 limit), in 64 KiB pages. */
export const MAX_PAGES = 65536;

function tileKernel({ mr, nr }: TileShape, fma: boolean): FunctionBuilder {
  const f = new FunctionBuilder(8);
  const [ap, bp, c, ldc, mPanels, nPanels, kc, accumulate] = [0, 1, 2, 3, 4, 5, 6, 7];
  const nv = nr / 4;
  const i = f.local(I32);
  const j = f.local(I32);
  const k = f.local(I32);
  const pa = f.local(I32);
  const pb = f.local(I32);
  const aPanel = f.local(I32);
  const bPanel = f.local(I32);
  const cTile = f.local(I32);
  const cColumn = f.local(I32);
  const acc = Array.from({ length: mr }, () => Array.from({ length: nv }, () => f.local(V128)));
  const b = Array.from({ length: nv }, () => f.local(V128));
  const a = f.local(V128);
  // Address of row r of the current C tile: cTile + r·ldc.
  const cRow = (r: number): void => {
    f.get(cTile);
    if (r > 0) f.get(ldc).i32(r).mul().add();
  };

  f.i32(0).set(j).get(bp).set(bPanel).get(c).set(cColumn);
  f.forLoop(j, nPanels, 1, () => {
    f.i32(0).set(i).get(ap).set(aPanel).get(cColumn).set(cTile);
    f.forLoop(i, mPanels, 1, () => {
      f.get(accumulate).ifElse(
        () => { for (let r = 0; r < mr; r++) for (let v = 0; v < nv; v++) { cRow(r); f.v128Load(16 * v).set(acc[r]![v]!); } },
        () => { for (let r = 0; r < mr; r++) for (let v = 0; v < nv; v++) f.v128Zero().set(acc[r]![v]!); },
      );
      f.get(aPanel).set(pa).get(bPanel).set(pb).get(kc).set(k);
      f.countDown(k, () => {
        for (let v = 0; v < nv; v++) f.get(pb).v128Load(16 * v).set(b[v]!);
        for (let r = 0; r < mr; r++) {
          f.get(pa).splatLoad(4 * r).set(a);
          for (let v = 0; v < nv; v++) {
            if (fma) f.get(a).get(b[v]!).get(acc[r]![v]!).f32x4Madd();
            else f.get(acc[r]![v]!).get(a).get(b[v]!).f32x4Mul().f32x4Add();
            f.set(acc[r]![v]!);
          }
        }
        f.bump(pa, 4 * mr).bump(pb, 4 * nr);
      });
      for (let r = 0; r < mr; r++) for (let v = 0; v < nv; v++) { cRow(r); f.get(acc[r]![v]!).v128Store(16 * v); }
      // next A panel: kc·MR floats on; next C tile: MR rows down
      f.get(aPanel).get(kc).i32(4 * mr).mul().add().set(aPanel);
      f.get(cTile).get(ldc).i32(mr).mul().add().set(cTile);
    });
    f.get(bPanel).get(kc).i32(4 * nr).mul().add().set(bPanel);
    f.bump(cColumn, 4 * nr);
  });
  return f;
}

function packPanels(width: number): FunctionBuilder {
  const f = new FunctionBuilder(6);
  const [src, panelStride, kStride, count, kc, dst] = [0, 1, 2, 3, 4, 5];
  const x = f.local(I32);
  const k = f.local(I32);
  const column = f.local(I32);
  const cell = f.local(I32);
  const stepX = f.local(I32);
  const stepK = f.local(I32);
  const valid = f.local(I32);
  const out = f.local(I32);
  f.get(panelStride).i32(2).shl().set(stepX);
  f.get(kStride).i32(2).shl().set(stepK);
  f.get(dst).set(out);
  f.i32(0).set(x);
  f.forLoop(x, count, width, () => {
    f.get(src).get(x).get(stepX).mul().add().set(column);
    f.get(count).get(x).sub().set(valid);
    f.get(kc).set(k);
    const fullPanelScalar = (): void => {
      f.countDown(k, () => {
        f.get(column).set(cell);
        for (let r = 0; r < width; r++) {
          f.get(out).get(cell).f32Load().f32Store(4 * r);
          if (r < width - 1) f.bumpBy(cell, stepX);
        }
        f.bump(out, 4 * width).bumpBy(column, stepK);
      });
    };
    const fullPanelContiguous = (): void => {
      f.countDown(k, () => {
        for (let v = 0; v < width / 4; v++) f.get(out).get(column).v128Load(16 * v).v128Store(16 * v);
        f.bump(out, 4 * width).bumpBy(column, stepK);
      });
    };
    const lastPanel = (): void => {
      f.countDown(k, () => {
        f.get(column).set(cell);
        for (let r = 0; r < width; r++) {
          f.i32(r).get(valid).ltS().ifElse(
            () => f.get(out).get(cell).f32Load().f32Store(4 * r),
            () => f.get(out).f32Zero().f32Store(4 * r),
          );
          if (r < width - 1) f.bumpBy(cell, stepX);
        }
        f.bump(out, 4 * width).bumpBy(column, stepK);
      });
    };
    f.get(valid).i32(width).geS().ifElse(
      () => {
        if (width % 4 === 0) f.get(panelStride).i32(1).eq().ifElse(fullPanelContiguous, fullPanelScalar);
        else fullPanelScalar();
      },
      lastPanel,
    );
  });
  return f;
}

/**
 * e^x for four lanes, x ≤ 0 (callers subtract the row maximum): x = n·ln2 + r with n = round(x/ln2), |r| ≤ ln2/2,
 * e^r by its degree-6 Taylor polynomial (truncation < 1.2e-7 relative, about float32's ε), 2^n by writing n + 127
 * into the exponent bits. Below −87 the result is clamped to ~2^−126 (a probability of e^−87 is 0 to float32).
 */
export function emitExp(f: FunctionBuilder, x: number, k: ExpConstants): void {
  const { n, r, p } = k.scratch;
  f.get(x).get(k.min).f32x4Max().set(r);
  f.get(r).get(k.log2e).f32x4Mul().f32x4Nearest().set(n);
  f.get(r).get(n).get(k.ln2hi).f32x4Mul().f32x4Sub().get(n).get(k.ln2lo).f32x4Mul().f32x4Sub().set(r);
  f.get(k.taylor[6]!).set(p);
  for (let d = 5; d >= 0; d--) f.get(p).get(r).f32x4Mul().get(k.taylor[d]!).f32x4Add().set(p);
  f.get(p).get(n).i32x4FromF32x4().get(k.bias).i32x4Add().i32(23).i32x4Shl().f32x4Mul();
}

export interface ExpConstants {
  min: number; log2e: number; ln2hi: number; ln2lo: number; bias: number; taylor: number[];
  scratch: { n: number; r: number; p: number };
}

export function expConstants(f: FunctionBuilder): ExpConstants {
  const splat = (x: number): number => { const l = f.local(V128); f.f32(x).f32x4Splat().set(l); return l; };
  const bias = f.local(V128);
  f.i32(127).i32x4Splat().set(bias);
  let factorial = 1;
  const taylor = [0, 1, 2, 3, 4, 5, 6].map((d) => { if (d > 0) factorial *= d; return splat(1 / factorial); });
  return {
    min: splat(-87), log2e: splat(Math.LOG2E), ln2hi: splat(0.693145751953125), ln2lo: splat(1.428606765330187e-6), bias, taylor,
    scratch: { n: f.local(V128), r: f.local(V128), p: f.local(V128) },
  };
}

function softmaxRows(): FunctionBuilder {
  const f = new FunctionBuilder(7);
  const [logits, targets, rows, vocab, grad, stats, scaleBits] = [0, 1, 2, 3, 4, 5, 6];
  const row = f.local(I32);
  const i = f.local(I32);
  const j = f.local(I32);
  const p = f.local(I32);
  const q = f.local(I32);
  const quads = f.local(I32);
  const rowBytes = f.local(I32);
  const target = f.local(I32);
  const m = f.local(F32);
  const s = f.local(F32);
  const scale = f.local(F32);
  const acc = f.local(V128);
  const vm = f.local(V128);
  const e = f.local(V128);
  const k = expConstants(f);
  const lane = (v: number): void => { f.get(v).f32x4Lane(0); };
  const horizontal = (v: number, op: () => void): void => {
    f.get(v).f32x4Lane(0).get(v).f32x4Lane(1);
    op();
    f.get(v).f32x4Lane(2);
    op();
    f.get(v).f32x4Lane(3);
    op();
  };
  const tail = (body: () => void): void => {
    // elements quads … vocab−1, one at a time (p, q already there)
    f.get(quads).set(j);
    f.forLoop(j, vocab, 1, () => { body(); f.bump(p, 4).bump(q, 4); });
  };
  f.get(scaleBits).f32FromBits().set(scale);
  f.get(vocab).i32(2).shl().set(rowBytes);
  f.get(vocab).i32(-4).and().set(quads); // elements covered by whole quads
  f.get(logits).set(row).i32(0).set(i);
  f.forLoop(i, rows, 1, () => {
    // 1. m = max_j z_j
    f.f32(-Infinity).f32x4Splat().set(acc).get(row).set(p).get(row).set(q).i32(0).set(j);
    f.forLoop(j, quads, 4, () => { f.get(acc).get(p).v128Load().f32x4Max().set(acc).bump(p, 16); });
    horizontal(acc, () => f.f32Max());
    f.set(m);
    tail(() => { f.get(m).get(p).f32Load().f32Max().set(m); });
    // 2. s = Σ exp(z − m), the exponentials written to grad when it is wanted
    f.get(m).f32x4Splat().set(vm).v128Zero().set(acc).get(row).set(p).get(grad).get(i).get(rowBytes).mul().add().set(q).i32(0).set(j);
    const quad = (store: boolean) => (): void => {
      f.forLoop(j, quads, 4, () => {
        f.get(p).v128Load().get(vm).f32x4Sub().set(e);
        emitExp(f, e, k);
        f.set(e).get(acc).get(e).f32x4Add().set(acc);
        if (store) f.get(q).get(e).v128Store();
        f.bump(p, 16).bump(q, 16);
      });
    };
    f.get(grad).ifElse(quad(true), quad(false));
    horizontal(acc, () => f.f32Add());
    f.set(s);
    tail(() => {
      f.get(p).f32Load().f32x4Splat().get(vm).f32x4Sub().set(e);
      emitExp(f, e, k);
      f.set(e).get(s);
      lane(e);
      f.f32Add().set(s);
      f.get(grad).ifElse(() => { f.get(q); lane(e); f.f32Store(); });
    });
    f.get(stats).get(i).i32(3).shl().add().get(m).f32Store(0);
    f.get(stats).get(i).i32(3).shl().add().get(s).f32Store(4);
    // 3. grad = exp(z − m)·(scale/s) − scale·onehot(t)
    f.get(grad).ifElse(() => {
      f.get(scale).get(s).f32Div().f32x4Splat().set(vm);
      f.get(grad).get(i).get(rowBytes).mul().add().set(q).get(q).set(p).i32(0).set(j);
      f.forLoop(j, quads, 4, () => { f.get(q).get(q).v128Load().get(vm).f32x4Mul().v128Store().bump(q, 16); });
      tail(() => { f.get(q).get(q).f32Load().get(scale).get(s).f32Div().f32Mul().f32Store(); });
      f.get(targets).get(i).i32(2).shl().add().i32Load().set(target);
      f.get(target).get(vocab).i32LtU().ifElse(() => {
        f.get(grad).get(i).get(rowBytes).mul().add().get(target).i32(2).shl().add().set(q);
        f.get(q).get(q).f32Load().get(scale).f32Sub().f32Store();
      });
    });
    f.bumpBy(row, rowBytes);
  });
  return f;
}

function execList(): FunctionBuilder {
  const f = new FunctionBuilder(2);
  const [list, count] = [0, 1];
  const i = f.local(I32);
  const p = f.local(I32);
  /** Parameter w (1-based) of the operation at p: the first 8 in its slot, the rest in the next slot. */
  const args = (n: number): void => {
    for (let w = 1; w <= n; w++) f.get(p).i32Load(w < OP_WORDS ? 4 * w : 4 * (w + 1));
  };
  // opcode → (function index, parameters); the fused kernels follow the GEMM's five functions
  const table: Array<[number, number, number]> = [
    [OP_KERNEL, 0, 8],
    [OP_PACK_A, 1, 6],
    [OP_PACK_B, 2, 6],
    [OP_SOFTMAX_ROWS, 4, 7],
    ...FUSED_OPS.map(([op, name], j): [number, number, number] => [op, 5 + j, fusedEntry(name)[1]]),
  ];
  const dispatch = (at: number): void => {
    const [op, fn, n] = table[at]!;
    const run = (): void => {
      args(n);
      f.call(fn);
      // a second slot: skip it
      if (n > OP_WORDS - 1) f.bump(p, 4 * OP_WORDS).bump(i, 1);
    };
    if (at === table.length - 1) run();
    else f.get(p).i32Load(0).i32(op).eq().ifElse(run, () => dispatch(at + 1));
  };
  f.get(list).set(p).i32(0).set(i);
  f.forLoop(i, count, 1, () => {
    dispatch(0);
    f.bump(p, 4 * OP_WORDS);
  });
  return f;
}

/**
 * The GEMM module's bytes for a tile shape, with or without fused multiply-add. `maxPages` undefined (unshared
 * only) imports a memory of any size: tfjs's own heap, for products computed in place (in-place.ts).
 */
export function gemmModuleBytes(tile: TileShape, fma: boolean, shared = true, maxPages: number | undefined = MAX_PAGES): Uint8Array {
  if (tile.nr % 4 !== 0) throw new Error(`GEMM tile: nr must be a multiple of 4, got ${tile.nr}`);
  return encodeModule(
    [
      { name: 'kernel', params: 8, body: tileKernel(tile, fma) },
      { name: 'packA', params: 6, body: packPanels(tile.mr) },
      { name: 'packB', params: 6, body: packPanels(tile.nr) },
      { name: 'exec', params: 2, body: execList() },
      { name: 'softmaxRows', params: 7, body: softmaxRows() },
      ...FUSED_OPS.map(([, name]) => {
        const [, params, body] = fusedEntry(name);
        return { name, params, body: body() };
      }),
    ],
    maxPages,
    shared,
  );
}

export interface GemmExports {
  kernel(ap: number, bp: number, c: number, ldcBytes: number, mPanels: number, nPanels: number, kc: number, accumulate: number): void;
  packA(src: number, panelStride: number, kStride: number, count: number, kc: number, dst: number): void;
  packB(src: number, panelStride: number, kStride: number, count: number, kc: number, dst: number): void;
  exec(list: number, count: number): void;
  softmaxRows(logits: number, targets: number, rows: number, vocab: number, grad: number, stats: number, scaleBits: number): void;
  causalSoftmax(s: number, p: number, nrows: number, rowsPerItem: number, cols: number, seq: number, scaleBits: number, offset: number): void;
  swiglu(g: number, u: number, m: number, n: number): void;
}
