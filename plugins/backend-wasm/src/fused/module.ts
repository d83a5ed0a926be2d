/**
 * The elementwise and row-wise work of a transformer block as one generated WebAssembly SIMD module — the kernel's
 * `FusedKernel` contract (RMSNorm, RoPE with the head transpose, the causal softmax, SwiGLU, their gradients, AdamW),
 * the same formulas the native addon implements in C. Each is one pass (two for the row reductions) over its
 * operands where tfjs-wasm takes one dispatch and one heap allocation per composite op (RMSNorm alone is six).
 *
 * The module imports an unshared memory without a maximum, so it can be instantiated on **tfjs-wasm's own heap**
 * and read its operands where they already are — no copy in, no copy out (install.ts). Addresses are byte offsets
 * into that memory; float attributes travel as their f32 bits (every parameter is an i32, as in the GEMM).
 *
 * Exports (n elements, rows × d row-major, all float32):
 *   swiglu(g, u, m, n)                       m = g·σ(g)·u
 *   swigluGrad(g, u, dm, dg, du, n)          s = σ(g): du = dm·g·s, dg = dm·u·s·(1 + g(1 − s))
 *   rmsNorm(x, w, out, r, rows, d, eps, invActive)
 *                                            r_i = (Σ_j x_ij² · invActive + eps)^(−½), out = x·r·w
 *   rmsNormGrad(dh, x, r, w, res, dx, dw, rows, d, invActive)
 *                                            n = x·r, dn = dh·w: dx = r·(dn − n·Σ_j(dn·n)·invActive) (+ res when res ≠ 0),
 *                                            dw = Σ_rows dh·n (overwritten)
 *   causalSoftmax(s, p, nrows, rowsPerItem, cols, seq, scale, offset)
 *                                            row r at position offset + (r mod rowsPerItem) mod seq reads keys
 *                                            0..position: p = softmax(scale·s) over them, 0 beyond (p may be s)
 *   gemv(w, x, y, rows, k, n, bias, add, ldy)
 *                                            y[s, r] = Σ_j w[r, j]·x[s, j] (+ bias[r] when bias ≠ 0) (+ y[s, r] when
 *                                            add ≠ 0): w [rows, k], x [n, k], y rows ldy floats apart — few-row
 *                                            products that read each weight row once for all n rows of x (decoding;
 *                                            ldy > rows when threads each take a share of the rows)
 *   weightedRows(p, v, out, len, hd, n)      out[i] = Σ_t p[i, t]·v[t] for i < n: p [n, len], v [len, hd], out [n, hd]
 *   softmaxGrad(p, dp, out, nrows, cols, scale)   out = P·(dP − Σ_j dP·P)·scale
 *   ropeHeads(x, out, batch, seq, heads, hd, cos, sin, backward)
 *                                            forward [b·t, h·hd] → [b, h, t, hd]: x·cos + rot(x)·sin, rot([x₁,x₂]) = [−x₂, x₁];
 *                                            backward [b, h, t, hd] → [b·t, h·hd]: d·cos + rotᵀ(d·sin), rotᵀ([z₁,z₂]) = [z₂, −z₁]
 *   adamw(p, g, m, v, po, mo, vo, n, lr, b1, b2, eps, keep, gradScale, invBc1, invBc2)
 *                                            gs = gradScale·g, m' = b1·m + (1−b1)·gs, v' = b2·v + (1−b2)·gs²,
 *                                            p' = p·keep − lr·(m'·invBc1)/(√(v'·invBc2) + eps)
 * σ is computed from e = exp(−|g|) (never overflows): σ = 1/(1+e) for g ≥ 0, e/(1+e) below; exp is the GEMM
 * module's polynomial (gemm/kernels.ts `emitExp`, float32 accuracy).
 */
import { emitExp, expConstants, MAX_PAGES, type ExpConstants } from '../gemm/kernels.js';
import { encodeModule, F32, FunctionBuilder, I32, V128 } from '../gemm/wasm-emitter.js';

/** Locals holding v128 values: the SIMD lanes of one step of an elementwise loop. */
type Lanes = number[];

/**
 * An elementwise loop over `n` floats: 4 at a time, then the rest one at a time (the same SIMD code, on splatted
 * scalars, storing lane 0). `compute` reads the input lanes and sets the output lanes.
 */
function mapLoop(f: FunctionBuilder, n: number, inputs: number[], outputs: number[], compute: (x: Lanes, y: Lanes) => void): void {
  const j = f.local(I32);
  const quads = f.local(I32);
  const ptrIn = inputs.map(() => f.local(I32));
  const ptrOut = outputs.map(() => f.local(I32));
  const x = inputs.map(() => f.local(V128));
  const y = outputs.map(() => f.local(V128));
  inputs.forEach((p, k) => f.get(p).set(ptrIn[k]!));
  outputs.forEach((p, k) => f.get(p).set(ptrOut[k]!));
  f.get(n).i32(-4).and().set(quads).i32(0).set(j);
  const advance = (bytes: number): void => {
    for (const p of [...ptrIn, ...ptrOut]) f.bump(p, bytes);
  };
  f.forLoop(j, quads, 4, () => {
    ptrIn.forEach((p, k) => f.get(p).v128Load().set(x[k]!));
    compute(x, y);
    ptrOut.forEach((p, k) => f.get(p).get(y[k]!).v128Store());
    advance(16);
  });
  f.forLoop(j, n, 1, () => {
    ptrIn.forEach((p, k) => f.get(p).splatLoad().set(x[k]!));
    compute(x, y);
    ptrOut.forEach((p, k) => { f.get(p).get(y[k]!).f32x4Lane(0).f32Store(); });
    advance(4);
  });
}

/** A float attribute passed as its bits, splatted into a v128 local. */
function splatBits(f: FunctionBuilder, bits: number): number {
  const v = f.local(V128);
  f.get(bits).f32FromBits().f32x4Splat().set(v);
  return v;
}

function splatConst(f: FunctionBuilder, x: number): number {
  const v = f.local(V128);
  f.f32(x).f32x4Splat().set(v);
  return v;
}

/** σ(g) into `out` (g, out: v128 locals), from e = exp(−|g|) so that no lane overflows. */
function emitSigmoid(f: FunctionBuilder, g: number, out: number, one: number, zero: number, e: number, k: ExpConstants): void {
  f.get(g).f32x4Abs().f32x4Neg().set(e);
  emitExp(f, e, k);
  f.set(e);
  f.get(one).get(one).get(e).f32x4Add().f32x4Div().set(out); // 1/(1+e)
  f.get(out).get(e).get(out).f32x4Mul().get(g).get(zero).f32x4Ge().v128Bitselect().set(out);
}

function swiglu(): FunctionBuilder {
  const f = new FunctionBuilder(4);
  const [g, u, m, n] = [0, 1, 2, 3];
  const k = expConstants(f);
  const one = splatConst(f, 1);
  const zero = splatConst(f, 0);
  const e = f.local(V128);
  const s = f.local(V128);
  mapLoop(f, n, [g, u], [m], ([gv, uv], [mv]) => {
    emitSigmoid(f, gv!, s, one, zero, e, k);
    f.get(gv!).get(s).f32x4Mul().get(uv!).f32x4Mul().set(mv!);
  });
  return f;
}

/** out = a + b elementwise (the residual adds, split across the GEMM's threads on a shared heap). */
function add(): FunctionBuilder {
  const f = new FunctionBuilder(4);
  const [a, b, out, n] = [0, 1, 2, 3];
  mapLoop(f, n, [a, b], [out], ([av, bv], [o]) => {
    f.get(av!).get(bv!).f32x4Add().set(o!);
  });
  return f;
}

function swigluGrad(): FunctionBuilder {
  const f = new FunctionBuilder(6);
  const [g, u, dm, dg, du, n] = [0, 1, 2, 3, 4, 5];
  const k = expConstants(f);
  const one = splatConst(f, 1);
  const zero = splatConst(f, 0);
  const e = f.local(V128);
  const s = f.local(V128);
  const dms = f.local(V128);
  mapLoop(f, n, [g, u, dm], [dg, du], ([gv, uv, dmv], [dgv, duv]) => {
    emitSigmoid(f, gv!, s, one, zero, e, k);
    f.get(dmv!).get(s).f32x4Mul().set(dms); // dm·s
    f.get(dms).get(gv!).f32x4Mul().set(duv!);
    // dm·s·u·(1 + g·(1 − s))
    f.get(dms).get(uv!).f32x4Mul().get(one).get(gv!).get(one).get(s).f32x4Sub().f32x4Mul().f32x4Add().f32x4Mul().set(dgv!);
  });
  return f;
}

/** Sum of the four lanes of a v128 local, left on the stack as an f32 (lanes added in order 0..3). */
function horizontalSum(f: FunctionBuilder, v: number): void {
  f.get(v).f32x4Lane(0).get(v).f32x4Lane(1).f32Add().get(v).f32x4Lane(2).f32Add().get(v).f32x4Lane(3).f32Add();
}

function horizontalMax(f: FunctionBuilder, v: number): void {
  f.get(v).f32x4Lane(0).get(v).f32x4Lane(1).f32Max().get(v).f32x4Lane(2).f32Max().get(v).f32x4Lane(3).f32Max();
}

/**
 * Σ_j a_j·b_j (·c_j when `c` is given) over `count` floats at byte addresses `a`, `b` (, `c`) — b = a for Σ a²:
 * four lane sums, then the tail. Leaves an f32 on the stack.
 */
function dot(f: FunctionBuilder, a: number, b: number, count: number, scratch: DotScratch, c?: number): void {
  const { p, q, r, j, quads, acc, s } = scratch;
  f.get(a).set(p).get(b).set(q);
  if (c !== undefined) f.get(c).set(r);
  f.v128Zero().set(acc).get(count).i32(-4).and().set(quads).i32(0).set(j);
  f.forLoop(j, quads, 4, () => {
    f.get(acc).get(p).v128Load().get(q).v128Load().f32x4Mul();
    if (c !== undefined) f.get(r).v128Load().f32x4Mul().bump(r, 16);
    f.f32x4Add().set(acc).bump(p, 16).bump(q, 16);
  });
  horizontalSum(f, acc);
  f.set(s);
  f.forLoop(j, count, 1, () => {
    f.get(s).get(p).f32Load().get(q).f32Load().f32Mul();
    if (c !== undefined) f.get(r).f32Load().f32Mul().bump(r, 4);
    f.f32Add().set(s).bump(p, 4).bump(q, 4);
  });
  f.get(s);
}

interface DotScratch { p: number; q: number; r: number; j: number; quads: number; acc: number; s: number }

function dotScratch(f: FunctionBuilder): DotScratch {
  return { p: f.local(I32), q: f.local(I32), r: f.local(I32), j: f.local(I32), quads: f.local(I32), acc: f.local(V128), s: f.local(F32) };
}

function rmsNorm(): FunctionBuilder {
  const f = new FunctionBuilder(8);
  const [x, w, out, r, rows, d, epsBits, invBits] = [0, 1, 2, 3, 4, 5, 6, 7];
  const i = f.local(I32);
  const rowBytes = f.local(I32);
  const xr = f.local(I32);
  const orow = f.local(I32);
  const ri = f.local(F32);
  const rv = f.local(V128);
  const scratch = dotScratch(f);
  f.get(d).i32(2).shl().set(rowBytes).get(x).set(xr).get(out).set(orow).i32(0).set(i);
  f.forLoop(i, rows, 1, () => {
    dot(f, xr, xr, d, scratch);
    f.get(invBits).f32FromBits().f32Mul().get(epsBits).f32FromBits().f32Add().f32Sqrt().set(ri);
    f.f32(1).get(ri).f32Div().set(ri);
    f.get(r).get(i).i32(2).shl().add().get(ri).f32Store();
    f.get(ri).f32x4Splat().set(rv);
    mapLoop(f, d, [xr, w], [orow], ([xv, wv], [ov]) => {
      f.get(xv!).get(rv).f32x4Mul().get(wv!).f32x4Mul().set(ov!);
    });
    f.bumpBy(xr, rowBytes).bumpBy(orow, rowBytes);
  });
  return f;
}

function rmsNormGrad(): FunctionBuilder {
  const f = new FunctionBuilder(10);
  const [dh, x, r, w, res, dx, dw, rows, d, invBits] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const i = f.local(I32);
  const rowBytes = f.local(I32);
  const dhr = f.local(I32);
  const xr = f.local(I32);
  const dxr = f.local(I32);
  const resr = f.local(I32);
  const rv = f.local(V128);
  const cv = f.local(V128);
  const nv = f.local(V128);
  const dnv = f.local(V128);
  const c = f.local(F32);
  const ri = f.local(F32);
  const scratch = dotScratch(f);
  const zeroV = splatConst(f, 0);
  // dw = 0
  mapLoop(f, d, [], [dw], (_, [o]) => { f.get(zeroV).set(o!); });
  f.get(d).i32(2).shl().set(rowBytes).get(dh).set(dhr).get(x).set(xr).get(dx).set(dxr).get(res).set(resr).i32(0).set(i);
  f.forLoop(i, rows, 1, () => {
    f.get(r).get(i).i32(2).shl().add().f32Load().set(ri);
    f.get(ri).f32x4Splat().set(rv);
    // c = Σ_j dn_j·n_j · invActive = r·Σ_j dh_j·w_j·x_j · invActive: one pass of Σ dh·w·x
    dot(f, dhr, w, d, scratch, xr);
    f.get(ri).f32Mul().get(invBits).f32FromBits().f32Mul().set(c);
    f.get(c).f32x4Splat().set(cv);
    // dx = r·(dh·w − x·r·c) (+ res); dw += dh·x·r
    const body = (withRes: boolean) => (): void => {
      mapLoop(f, d, withRes ? [dhr, xr, w, dw, resr] : [dhr, xr, w, dw], [dxr, dw], ([dhv, xv, wv, dwv, resv], [dxv, dwo]) => {
        f.get(xv!).get(rv).f32x4Mul().set(nv);
        f.get(dhv!).get(wv!).f32x4Mul().set(dnv);
        f.get(rv).get(dnv).get(nv).get(cv).f32x4Mul().f32x4Sub().f32x4Mul();
        if (withRes) f.get(resv!).f32x4Add();
        f.set(dxv!);
        f.get(dwv!).get(dhv!).get(nv).f32x4Mul().f32x4Add().set(dwo!);
      });
    };
    f.get(res).ifElse(body(true), body(false));
    f.bumpBy(dhr, rowBytes).bumpBy(xr, rowBytes).bumpBy(dxr, rowBytes);
    f.get(res).ifElse(() => { f.bumpBy(resr, rowBytes); });
  });
  return f;
}

function causalSoftmax(): FunctionBuilder {
  const f = new FunctionBuilder(8);
  const [s, p, nrows, rowsPerItem, cols, seq, scaleBits, offset] = [0, 1, 2, 3, 4, 5, 6, 7];
  const r = f.local(I32);
  const valid = f.local(I32);
  const quads = f.local(I32);
  const j = f.local(I32);
  const sp = f.local(I32);
  const pp = f.local(I32);
  const rowBytes = f.local(I32);
  const m = f.local(F32);
  const sum = f.local(F32);
  const acc = f.local(V128);
  const vm = f.local(V128);
  const e = f.local(V128);
  const scale = splatBits(f, scaleBits);
  const zero = splatConst(f, 0);
  const k = expConstants(f);
  f.get(cols).i32(2).shl().set(rowBytes).i32(0).set(r);
  f.forLoop(r, nrows, 1, () => {
    // keys 0..position, position = offset + (r mod rowsPerItem) mod seq, at most cols
    f.get(r).get(rowsPerItem).remU().get(seq).remU().get(offset).add().i32(1).add().set(valid);
    f.get(valid).get(cols).gtS().ifElse(() => { f.get(cols).set(valid); });
    f.get(valid).i32(-4).and().set(quads);
    f.get(s).get(r).get(rowBytes).mul().add().set(sp);
    // 1. m = max scale·s
    f.f32(-Infinity).f32x4Splat().set(acc).get(sp).set(pp).i32(0).set(j);
    f.forLoop(j, quads, 4, () => { f.get(acc).get(pp).v128Load().get(scale).f32x4Mul().f32x4Max().set(acc).bump(pp, 16); });
    horizontalMax(f, acc);
    f.set(m);
    f.forLoop(j, valid, 1, () => { f.get(m).get(pp).f32Load().get(scale).f32x4Lane(0).f32Mul().f32Max().set(m).bump(pp, 4); });
    // 2. p = exp(scale·s − m), sum
    f.get(m).f32x4Splat().set(vm).v128Zero().set(acc).get(sp).set(pp).get(p).get(r).get(rowBytes).mul().add().set(sp).i32(0).set(j);
    // (sp now walks the output row, pp the input row)
    f.forLoop(j, quads, 4, () => {
      f.get(pp).v128Load().get(scale).f32x4Mul().get(vm).f32x4Sub().set(e);
      emitExp(f, e, k);
      f.set(e).get(acc).get(e).f32x4Add().set(acc).get(sp).get(e).v128Store().bump(pp, 16).bump(sp, 16);
    });
    horizontalSum(f, acc);
    f.set(sum);
    f.forLoop(j, valid, 1, () => {
      f.get(pp).splatLoad().get(scale).f32x4Mul().get(vm).f32x4Sub().set(e);
      emitExp(f, e, k);
      f.set(e).get(sum).get(e).f32x4Lane(0).f32Add().set(sum).get(sp).get(e).f32x4Lane(0).f32Store().bump(pp, 4).bump(sp, 4);
    });
    // 3. p *= 1/sum over the valid keys, 0 beyond
    f.f32(1).get(sum).f32Div().f32x4Splat().set(vm).get(p).get(r).get(rowBytes).mul().add().set(sp).i32(0).set(j);
    f.forLoop(j, quads, 4, () => { f.get(sp).get(sp).v128Load().get(vm).f32x4Mul().v128Store().bump(sp, 16); });
    f.forLoop(j, valid, 1, () => { f.get(sp).get(sp).f32Load().get(vm).f32x4Lane(0).f32Mul().f32Store().bump(sp, 4); });
    f.forLoop(j, cols, 1, () => { f.get(sp).get(zero).f32x4Lane(0).f32Store().bump(sp, 4); });
  });
  return f;
}

function softmaxGrad(): FunctionBuilder {
  const f = new FunctionBuilder(6);
  const [p, dp, out, nrows, cols, scaleBits] = [0, 1, 2, 3, 4, 5];
  const r = f.local(I32);
  const rowBytes = f.local(I32);
  const pr = f.local(I32);
  const dr = f.local(I32);
  const orow = f.local(I32);
  const dv = f.local(V128);
  const scale = splatBits(f, scaleBits);
  const scratch = dotScratch(f);
  f.get(cols).i32(2).shl().set(rowBytes).get(p).set(pr).get(dp).set(dr).get(out).set(orow).i32(0).set(r);
  f.forLoop(r, nrows, 1, () => {
    dot(f, pr, dr, cols, scratch);
    f.f32x4Splat().set(dv);
    mapLoop(f, cols, [pr, dr], [orow], ([pv, dpv], [ov]) => {
      f.get(pv!).get(dpv!).get(dv).f32x4Sub().f32x4Mul().get(scale).f32x4Mul().set(ov!);
    });
    f.bumpBy(pr, rowBytes).bumpBy(dr, rowBytes).bumpBy(orow, rowBytes);
  });
  return f;
}

function ropeHeads(): FunctionBuilder {
  const f = new FunctionBuilder(9);
  const [x, out, batch, seq, heads, hd, cos, sin, backward] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const b = f.local(I32);
  const h = f.local(I32);
  const t = f.local(I32);
  const half = f.local(I32);
  const flat = f.local(I32); // byte address of [b, t, h, :] (the linear layer's layout)
  const byHead = f.local(I32); // byte address of [b, h, t, :]
  const src = f.local(I32);
  const dst = f.local(I32);
  const c1 = f.local(I32);
  const s1 = f.local(I32);
  const src2 = f.local(I32);
  const dst2 = f.local(I32);
  const c2 = f.local(I32);
  const s2 = f.local(I32);
  f.get(hd).i32(1).shrU().set(half); // hd is even (checked by the caller)
  f.i32(0).set(b);
  f.forLoop(b, batch, 1, () => {
    f.i32(0).set(h);
    f.forLoop(h, heads, 1, () => {
      f.i32(0).set(t);
      f.forLoop(t, seq, 1, () => {
        // flat = ((b·seq + t)·heads + h)·hd, byHead = ((b·heads + h)·seq + t)·hd, in bytes
        f.get(b).get(seq).mul().get(t).add().get(heads).mul().get(h).add().get(hd).mul().i32(2).shl().set(flat);
        f.get(b).get(heads).mul().get(h).add().get(seq).mul().get(t).add().get(hd).mul().i32(2).shl().set(byHead);
        f.get(cos).get(t).get(hd).mul().i32(2).shl().add().set(c1);
        f.get(sin).get(t).get(hd).mul().i32(2).shl().add().set(s1);
        f.get(backward).ifElse(
          () => { f.get(x).get(byHead).add().set(src).get(out).get(flat).add().set(dst); },
          () => { f.get(x).get(flat).add().set(src).get(out).get(byHead).add().set(dst); },
        );
        f.get(src).get(half).i32(2).shl().add().set(src2);
        f.get(dst).get(half).i32(2).shl().add().set(dst2);
        f.get(c1).get(half).i32(2).shl().add().set(c2);
        f.get(s1).get(half).i32(2).shl().add().set(s2);
        // forward:  o₁ = x₁·c₁ − x₂·s₁,  o₂ = x₂·c₂ + x₁·s₂
        // backward: o₁ = d₁·c₁ + d₂·s₂,  o₂ = d₂·c₂ − d₁·s₁
        const pair = (back: boolean) => (): void => {
          mapLoop(f, half, [src, src2, c1, c2, s1, s2], [dst, dst2], ([a1, a2, cc1, cc2, ss1, ss2], [o1, o2]) => {
            if (!back) {
              f.get(a1!).get(cc1!).f32x4Mul().get(a2!).get(ss1!).f32x4Mul().f32x4Sub().set(o1!);
              f.get(a2!).get(cc2!).f32x4Mul().get(a1!).get(ss2!).f32x4Mul().f32x4Add().set(o2!);
            } else {
              f.get(a1!).get(cc1!).f32x4Mul().get(a2!).get(ss2!).f32x4Mul().f32x4Add().set(o1!);
              f.get(a2!).get(cc2!).f32x4Mul().get(a1!).get(ss1!).f32x4Mul().f32x4Sub().set(o2!);
            }
          });
        };
        f.get(backward).ifElse(pair(true), pair(false));
      });
    });
  });
  return f;
}

function adamw(): FunctionBuilder {
  const f = new FunctionBuilder(16);
  const [p, g, m, v, po, mo, vo, n] = [0, 1, 2, 3, 4, 5, 6, 7];
  const [lr, b1, b2, eps, keep, gs, ibc1, ibc2] = [8, 9, 10, 11, 12, 13, 14, 15].map((bits) => splatBits(f, bits));
  const one = splatConst(f, 1);
  const gv = f.local(V128);
  mapLoop(f, n, [p, g, m, v], [po, mo, vo], ([pv, g0, mv, vv], [pn, mn, vn]) => {
    f.get(gs!).get(g0!).f32x4Mul().set(gv);
    f.get(b1!).get(mv!).f32x4Mul().get(one).get(b1!).f32x4Sub().get(gv).f32x4Mul().f32x4Add().set(mn!);
    f.get(b2!).get(vv!).f32x4Mul().get(one).get(b2!).f32x4Sub().get(gv).f32x4Mul().get(gv).f32x4Mul().f32x4Add().set(vn!);
    f.get(pv!).get(keep!).f32x4Mul();
    f.get(lr!).get(mn!).get(ibc1!).f32x4Mul().f32x4Mul();
    f.get(vn!).get(ibc2!).f32x4Mul().f32x4Sqrt().get(eps!).f32x4Add().f32x4Div();
    f.f32x4Sub().set(pn!);
  });
  return f;
}

/**
 * Tiles of the few-row product: S rows of x against one weight row, the SIMD body unrolled U times. One weight row
 * at a time: a decode step streams each weight from memory once, and one sequential stream per thread is what the
 * hardware prefetchers follow — interleaving four rows' streams read the 37 MB LM head of a 15M model at ~12 GB/s
 * on one thread here, one row at ~30–35 (bench/README.md, 2026-12-06 third session). Several rows of x share each
 * weight load (a batch of sequences); the unrolled loop keeps a few loads in flight.
 */
const GEMV_TILES: readonly { S: number; U: number }[] = [
  { S: 4, U: 2 },
  { S: 2, U: 4 },
  { S: 1, U: 4 },
];

function gemv(): FunctionBuilder {
  const f = new FunctionBuilder(9);
  const [w, x, y, rows, k, n, bias, add, ldy] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const maxS = Math.max(...GEMV_TILES.map((t) => t.S));
  const r = f.local(I32);
  const s = f.local(I32);
  const sEnd = f.local(I32);
  const j = f.local(I32);
  const quads = f.local(I32);
  const unrolled = f.local(I32);
  const rowBytes = f.local(I32);
  const wr = f.local(I32);
  const wp = f.local(I32);
  const out = f.local(I32);
  const xp = Array.from({ length: maxS }, () => f.local(I32));
  const acc = Array.from({ length: maxS }, () => f.local(V128));
  const xv = Array.from({ length: maxS }, () => f.local(V128));
  const wv = f.local(V128);
  const sum = f.local(F32);
  f.get(k).i32(2).shl().set(rowBytes).get(k).i32(-4).and().set(quads);
  f.get(w).set(wr).i32(0).set(r);
  // y[s..s+S−1, r]: every dot product sums lanes j ≡ 0..3 (mod 4) in order of j, then lanes 0..3, then the tail —
  // the same bits whatever the tile (and as the tests' one-row reference)
  const tile = (S: number, U: number): void => {
    f.get(wr).set(wp);
    for (let q = 0; q < S; q++) {
      f.get(x).get(s).i32(q).add().get(rowBytes).mul().add().set(xp[q]!);
      f.v128Zero().set(acc[q]!);
    }
    const quadsOf = (u: number) => (): void => {
      for (let i = 0; i < u; i++) {
        for (let q = 0; q < S; q++) f.get(xp[q]!).v128Load(16 * i).set(xv[q]!);
        f.get(wp).v128Load(16 * i).set(wv);
        for (let q = 0; q < S; q++) f.get(acc[q]!).get(wv).get(xv[q]!).f32x4Mul().f32x4Add().set(acc[q]!);
      }
      f.bump(wp, 16 * u);
      for (let q = 0; q < S; q++) f.bump(xp[q]!, 16 * u);
    };
    f.i32(0).set(j).get(k).i32(-4 * U).and().set(unrolled);
    f.forLoop(j, unrolled, 4 * U, quadsOf(U));
    if (U > 1) f.forLoop(j, quads, 4, quadsOf(1));
    for (let q = 0; q < S; q++) {
      horizontalSum(f, acc[q]!);
      f.set(sum);
      // the tail (k mod 4 floats), from where the SIMD body left the weight row and this x row
      for (let t = 0; t < 3; t++) {
        f.get(j).i32(t).add().get(k).ltS().ifElse(() => {
          f.get(sum).get(wp).f32Load(4 * t).get(xp[q]!).f32Load(4 * t).f32Mul().f32Add().set(sum);
        });
      }
      // y[s + q, r]: + bias[r], then + the old y (the residual stream: y + x·wᵀ)
      f.get(y).get(s).i32(q).add().get(ldy).mul().get(r).add().i32(2).shl().add().set(out);
      f.get(bias).ifElse(() => { f.get(sum).get(bias).get(r).i32(2).shl().add().f32Load().f32Add().set(sum); });
      f.get(add).ifElse(() => { f.get(out).f32Load().get(sum).f32Add().set(sum); });
      f.get(out).get(sum).f32Store();
    }
  };
  f.forLoop(r, rows, 1, () => {
    f.i32(0).set(s);
    for (const { S, U } of GEMV_TILES) {
      // as many whole tiles of S rows of x as fit in what is left
      f.get(n).get(s).sub().i32(-S).and().get(s).add().set(sEnd);
      f.forLoop(s, sEnd, S, () => tile(S, U));
    }
    f.get(wr).get(rowBytes).add().set(wr);
  });
  return f;
}

function weightedRows(): FunctionBuilder {
  const f = new FunctionBuilder(6);
  const [p, v, out, len, hd, n] = [0, 1, 2, 3, 4, 5];
  const i = f.local(I32);
  const t = f.local(I32);
  const orow = f.local(I32);
  const vrow = f.local(I32);
  const pp = f.local(I32);
  const rowBytes = f.local(I32);
  const pv = f.local(V128);
  const zero = splatConst(f, 0);
  f.get(hd).i32(2).shl().set(rowBytes).get(out).set(orow).get(p).set(pp).i32(0).set(i);
  f.forLoop(i, n, 1, () => {
    mapLoop(f, hd, [], [orow], (_, [o]) => { f.get(zero).set(o!); });
    f.get(v).set(vrow).i32(0).set(t);
    f.forLoop(t, len, 1, () => {
      f.get(pp).splatLoad().set(pv).bump(pp, 4);
      mapLoop(f, hd, [orow, vrow], [orow], ([ov, vv], [o]) => { f.get(ov!).get(pv).get(vv!).f32x4Mul().f32x4Add().set(o!); });
      f.bumpBy(vrow, rowBytes);
    });
    f.bumpBy(orow, rowBytes);
  });
  return f;
}

/** The functions in export order, with their parameter counts. */
export const FUSED_FUNCTIONS = [
  ['swiglu', 4, swiglu],
  ['swigluGrad', 6, swigluGrad],
  ['rmsNorm', 8, rmsNorm],
  ['rmsNormGrad', 10, rmsNormGrad],
  ['causalSoftmax', 8, causalSoftmax],
  ['softmaxGrad', 6, softmaxGrad],
  ['ropeHeads', 9, ropeHeads],
  ['adamw', 16, adamw],
  ['gemv', 9, gemv],
  ['weightedRows', 6, weightedRows],
  ['add', 4, add],
] as const;

/**
 * The module's bytes, exporting FUSED_FUNCTIONS: importing an unshared `env.memory` of any size (tfjs's heap), or —
 * `shared` — a shared memory of at most MAX_PAGES (the threaded decode's own memory, threaded-decode.ts).
 */
export function fusedModuleBytes(shared = false): Uint8Array {
  return encodeModule(FUSED_FUNCTIONS.map(([name, params, body]) => ({ name, params, body: body() })), shared ? MAX_PAGES : undefined, shared);
}

export interface FusedExports {
  swiglu(g: number, u: number, m: number, n: number): void;
  swigluGrad(g: number, u: number, dm: number, dg: number, du: number, n: number): void;
  rmsNorm(x: number, w: number, out: number, r: number, rows: number, d: number, epsBits: number, invActiveBits: number): void;
  rmsNormGrad(dh: number, x: number, r: number, w: number, res: number, dx: number, dw: number, rows: number, d: number, invActiveBits: number): void;
  causalSoftmax(s: number, p: number, nrows: number, rowsPerItem: number, cols: number, seq: number, scaleBits: number, offset: number): void;
  softmaxGrad(p: number, dp: number, out: number, nrows: number, cols: number, scaleBits: number): void;
  ropeHeads(x: number, out: number, batch: number, seq: number, heads: number, hd: number, cos: number, sin: number, backward: number): void;
  adamw(p: number, g: number, m: number, v: number, po: number, mo: number, vo: number, n: number,
    lr: number, b1: number, b2: number, eps: number, keep: number, gradScale: number, invBc1: number, invBc2: number): void;
  gemv(w: number, x: number, y: number, rows: number, k: number, n: number, bias: number, add: number, ldy: number): void;
  weightedRows(p: number, v: number, out: number, len: number, hd: number, n: number): void;
  add(a: number, b: number, out: number, n: number): void;
}
