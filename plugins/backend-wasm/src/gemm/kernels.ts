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
 *   exec(list, count)
 *       run `count` operations of OP_WORDS i32s each: [opcode, args…] (opcode 0 packA, 1 packB, 2 kernel).
 *       A worker thread is handed one such list, so its whole share of a product is one call.
 */
import { encodeModule, FunctionBuilder, V128, I32 } from './wasm-emitter.js';

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
/** i32 words per operation in an `exec` list (opcode + up to 8 arguments). */
export const OP_WORDS = 9;

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

function execList(): FunctionBuilder {
  const f = new FunctionBuilder(2);
  const [list, count] = [0, 1];
  const i = f.local(I32);
  const p = f.local(I32);
  const args = (n: number): void => { for (let w = 1; w <= n; w++) f.get(p).i32Load(4 * w); };
  f.get(list).set(p).i32(0).set(i);
  f.forLoop(i, count, 1, () => {
    f.get(p).i32Load(0).i32(OP_KERNEL).eq().ifElse(
      () => { args(8); f.call(0); },
      () => f.get(p).i32Load(0).i32(OP_PACK_A).eq().ifElse(
        () => { args(6); f.call(1); },
        () => { args(6); f.call(2); },
      ),
    );
    f.bump(p, 4 * OP_WORDS);
  });
  return f;
}

/** The GEMM module's bytes for a tile shape, with or without fused multiply-add. */
export function gemmModuleBytes(tile: TileShape, fma: boolean): Uint8Array {
  if (tile.nr % 4 !== 0) throw new Error(`GEMM tile: nr must be a multiple of 4, got ${tile.nr}`);
  return encodeModule(
    [
      { name: 'kernel', params: 8, body: tileKernel(tile, fma) },
      { name: 'packA', params: 6, body: packPanels(tile.mr) },
      { name: 'packB', params: 6, body: packPanels(tile.nr) },
      { name: 'exec', params: 2, body: execList() },
    ],
    MAX_PAGES,
  );
}

export interface GemmExports {
  kernel(ap: number, bp: number, c: number, ldcBytes: number, mPanels: number, nPanels: number, kc: number, accumulate: number): void;
  packA(src: number, panelStride: number, kStride: number, count: number, kc: number, dst: number): void;
  packB(src: number, panelStride: number, kStride: number, count: number, kc: number, dst: number): void;
  exec(list: number, count: number): void;
}
