/**
 * Just enough of a WebAssembly binary writer to emit the GEMM kernels (kernels.ts): i32 arithmetic, structured
 * loops, scalar f32 and 128-bit SIMD loads/stores, calls, and one imported shared memory. Emitting the binary
 * from TypeScript keeps the default install free of any compiler: the module is generated at run time in well
 * under a millisecond, with the register tile and the FMA choice as parameters.
 */

export const I32 = 0x7f;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;
export type ValueType = typeof I32 | typeof F32 | typeof F64 | typeof V128;

/** Unsigned LEB128. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 (i32 constants). */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function name(s: string): number[] {
  return [...uleb(s.length), ...Buffer.from(s, 'utf8')];
}

function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

/** Opcodes used below (numbering of the core spec, SIMD and relaxed-SIMD proposals). */
const OP = {
  block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, brIf: 0x0d, call: 0x10,
  localGet: 0x20, localSet: 0x21, localTee: 0x22,
  i32Load: 0x28, f32Load: 0x2a, f64Load: 0x2b, i32Load8U: 0x2d, f32Store: 0x38, f64Store: 0x39, i32Const: 0x41, f32Const: 0x43, f64Const: 0x44,
  i32Eqz: 0x45, i32Eq: 0x46, i32LtS: 0x48, i32LtU: 0x49, i32GtS: 0x4a, i32GeS: 0x4e,
  i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c, i32RemU: 0x70, i32And: 0x71, i32Shl: 0x74, i32ShrU: 0x76,
  f32Sqrt: 0x91, f32Add: 0x92, f32Sub: 0x93, f32Mul: 0x94, f32Div: 0x95, f32Max: 0x97, f64Sub: 0xa1, f64Mul: 0xa2, f64Div: 0xa3,
  f32ReinterpretI32: 0xbe,
  simd: 0xfd,
} as const;

const SIMD = {
  load: 0x00, load32Splat: 0x09, store: 0x0b, const: 0x0c, i32x4Splat: 0x11, f32x4Splat: 0x13, f32x4ExtractLane: 0x1f,
  f32x4Ge: 0x46, v128Bitselect: 0x52,
  f32x4Nearest: 0x6a, i32x4Shl: 0xab, i32x4Add: 0xae, f32x4Abs: 0xe0, f32x4Neg: 0xe1, f32x4Sqrt: 0xe3,
  f32x4Add: 0xe4, f32x4Sub: 0xe5, f32x4Mul: 0xe6, f32x4Div: 0xe7, f32x4Max: 0xe9,
  i32x4TruncSatF32x4S: 0xf8, f32x4RelaxedMadd: 0x105, f64x2Splat: 0x14, f64x2Sub: 0xf1, f64x2Mul: 0xf2,
} as const;

/** A function body under construction: each method appends one instruction and returns `this`. */
export class FunctionBuilder {
  private readonly code: number[] = [];
  private readonly localTypes: ValueType[] = [];

  constructor(readonly params: number) {}

  /** A new local of `type`; returns its index. */
  local(type: ValueType): number {
    this.localTypes.push(type);
    return this.params + this.localTypes.length - 1;
  }

  get(i: number): this { return this.emit(OP.localGet, ...uleb(i)); }
  set(i: number): this { return this.emit(OP.localSet, ...uleb(i)); }
  tee(i: number): this { return this.emit(OP.localTee, ...uleb(i)); }
  i32(n: number): this { return this.emit(OP.i32Const, ...sleb(n | 0)); }
  add(): this { return this.emit(OP.i32Add); }
  sub(): this { return this.emit(OP.i32Sub); }
  mul(): this { return this.emit(OP.i32Mul); }
  shl(): this { return this.emit(OP.i32Shl); }
  shrU(): this { return this.emit(OP.i32ShrU); }
  and(): this { return this.emit(OP.i32And); }
  eq(): this { return this.emit(OP.i32Eq); }
  ltS(): this { return this.emit(OP.i32LtS); }
  gtS(): this { return this.emit(OP.i32GtS); }
  geS(): this { return this.emit(OP.i32GeS); }
  call(fn: number): this { return this.emit(OP.call, ...uleb(fn)); }

  /** `local[i] += n` */
  bump(i: number, n: number): this { return this.get(i).i32(n).add().set(i); }
  /** `local[i] += local[j]` */
  bumpBy(i: number, j: number): this { return this.get(i).get(j).add().set(i); }

  i32Load(offset = 0): this { return this.emit(OP.i32Load, 2, ...uleb(offset)); }
  f32Load(offset = 0): this { return this.emit(OP.f32Load, 2, ...uleb(offset)); }
  f32Store(offset = 0): this { return this.emit(OP.f32Store, 2, ...uleb(offset)); }
  f64Load(offset = 0): this { return this.emit(OP.f64Load, 3, ...uleb(offset)); }
  f64Store(offset = 0): this { return this.emit(OP.f64Store, 3, ...uleb(offset)); }
  /** f64.const +0 */
  f64Zero(): this { return this.emit(OP.f64Const, 0, 0, 0, 0, 0, 0, 0, 0); }
  f64Sub(): this { return this.emit(OP.f64Sub); }
  f64Div(): this { return this.emit(OP.f64Div); }
  /** One unsigned byte, zero-extended. */
  i32Load8U(offset = 0): this { return this.emit(OP.i32Load8U, 0, ...uleb(offset)); }
  eqz(): this { return this.emit(OP.i32Eqz); }
  f64Mul(): this { return this.emit(OP.f64Mul); }
  f64x2Splat(): this { return this.simd(SIMD.f64x2Splat); }
  f64x2Sub(): this { return this.simd(SIMD.f64x2Sub); }
  f64x2Mul(): this { return this.simd(SIMD.f64x2Mul); }
  f32Zero(): this { return this.f32(0); }
  v128Load(offset = 0): this { return this.simd(SIMD.load, 4, ...uleb(offset)); }
  v128Store(offset = 0): this { return this.simd(SIMD.store, 4, ...uleb(offset)); }
  /** Load one f32 and copy it into all four lanes. */
  splatLoad(offset = 0): this { return this.simd(SIMD.load32Splat, 2, ...uleb(offset)); }
  v128Zero(): this { return this.simd(SIMD.const, ...new Array<number>(16).fill(0)); }
  f32x4Add(): this { return this.simd(SIMD.f32x4Add); }
  f32x4Mul(): this { return this.simd(SIMD.f32x4Mul); }
  /** a·b + c in one fused step where the CPU has FMA (relaxed SIMD; stack: a b c). */
  f32x4Madd(): this { return this.simd(SIMD.f32x4RelaxedMadd); }
  f32x4Sub(): this { return this.simd(SIMD.f32x4Sub); }
  f32x4Div(): this { return this.simd(SIMD.f32x4Div); }
  f32x4Sqrt(): this { return this.simd(SIMD.f32x4Sqrt); }
  f32x4Abs(): this { return this.simd(SIMD.f32x4Abs); }
  f32x4Neg(): this { return this.simd(SIMD.f32x4Neg); }
  /** Lane-wise a ≥ b as an all-ones / all-zeros mask (stack: a b). */
  f32x4Ge(): this { return this.simd(SIMD.f32x4Ge); }
  /** (a & mask) | (b & ~mask) (stack: a b mask). */
  v128Bitselect(): this { return this.simd(SIMD.v128Bitselect); }
  f32x4Max(): this { return this.simd(SIMD.f32x4Max); }
  f32x4Nearest(): this { return this.simd(SIMD.f32x4Nearest); }
  f32x4Splat(): this { return this.simd(SIMD.f32x4Splat); }
  f32x4Lane(lane: number): this { return this.simd(SIMD.f32x4ExtractLane, lane); }
  i32x4Splat(): this { return this.simd(SIMD.i32x4Splat); }
  i32x4Add(): this { return this.simd(SIMD.i32x4Add); }
  i32x4Shl(): this { return this.simd(SIMD.i32x4Shl); }
  /** Lane-wise float → int32, rounding toward zero, saturating. */
  i32x4FromF32x4(): this { return this.simd(SIMD.i32x4TruncSatF32x4S); }

  f32(x: number): this {
    const bytes = new Uint8Array(new Float32Array([x]).buffer);
    return this.emit(OP.f32Const, ...bytes);
  }
  f32Add(): this { return this.emit(OP.f32Add); }
  f32Sub(): this { return this.emit(OP.f32Sub); }
  f32Mul(): this { return this.emit(OP.f32Mul); }
  f32Div(): this { return this.emit(OP.f32Div); }
  f32Max(): this { return this.emit(OP.f32Max); }
  f32Sqrt(): this { return this.emit(OP.f32Sqrt); }
  /** Unsigned remainder of two i32s. */
  remU(): this { return this.emit(OP.i32RemU); }
  /** The i32 on the stack, its bits read as an f32. */
  f32FromBits(): this { return this.emit(OP.f32ReinterpretI32); }
  /** Unsigned a < b (so a negative index is out of range too). */
  i32LtU(): this { return this.emit(OP.i32LtU); }

  /** `if (cond) { then } else { otherwise }` — the condition is on the stack. */
  ifElse(then: () => void, otherwise?: () => void): this {
    this.emit(OP.if, 0x40);
    then();
    if (otherwise) {
      this.emit(OP.else);
      otherwise();
    }
    return this.emit(OP.end);
  }

  /**
   * `while (counter < limit) { body; counter += step }` — a counted loop over an i32 local; `limit` is a
   * local index, evaluated each time round.
   */
  forLoop(counter: number, limit: number, step: number, body: () => void): this {
    this.emit(OP.block, 0x40, OP.loop, 0x40);
    this.get(counter).get(limit).geS().emit(OP.brIf, 1);
    body();
    this.bump(counter, step);
    return this.emit(OP.br, 0, OP.end, OP.end);
  }

  /** `do { body } while (--counter > 0)` — the caller guarantees at least one round. */
  countDown(counter: number, body: () => void): this {
    this.emit(OP.loop, 0x40);
    body();
    this.get(counter).i32(1).sub().tee(counter).i32(0).gtS().emit(OP.brIf, 0);
    return this.emit(OP.end);
  }

  /** The encoded body (locals + code), for the code section. */
  encode(): number[] {
    const body = [...vector(this.localTypes.map((t) => [1, t])), ...this.code, OP.end];
    return [...uleb(body.length), ...body];
  }

  private simd(op: number, ...immediates: number[]): this {
    return this.emit(OP.simd, ...uleb(op), ...immediates);
  }

  private emit(...bytes: number[]): this {
    for (const b of bytes) this.code.push(b);
    return this;
  }
}

export interface ExportedFunction {
  name: string;
  /** Number of i32 parameters (every function here takes only i32s and returns nothing). */
  params: number;
  body: FunctionBuilder;
}

/**
 * A module importing `env.memory` (shared unless `shared` is false, up to `maxPages` 64 KiB pages; an unshared
 * memory may leave the maximum open, `maxPages` undefined, so that any memory can be imported — tfjs's own heap,
 * for kernels that work in place on it) and exporting `functions` in order (function index = position, so bodies
 * can `call` each other by index). An unshared memory is for engines without shared memory (a browser page that
 * is not cross-origin isolated) or for another module's heap: one thread only.
 */
export function encodeModule(functions: ExportedFunction[], maxPages: number | undefined, shared = true): Uint8Array {
  if (shared && maxPages === undefined) throw new Error('encodeModule: a shared memory needs a maximum');
  const arities = [...new Set(functions.map((f) => f.params))];
  const types = arities.map((n) => [0x60, ...vector(new Array<number[]>(n).fill([I32])), 0]);
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector(types)),
    // import env.memory: kind 0x02 (memory), limits 0x03 (shared, with maximum), 0x01 (unshared, with maximum) or
    // 0x00 (unshared, no maximum)
    ...section(2, vector([[...name('env'), ...name('memory'), 0x02, ...(maxPages === undefined ? [0x00, ...uleb(1)] : [shared ? 0x03 : 0x01, ...uleb(1), ...uleb(maxPages)])]])),
    ...section(3, vector(functions.map((f) => uleb(arities.indexOf(f.params))))),
    ...section(7, vector(functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]))),
    ...section(10, vector(functions.map((f) => f.body.encode()))),
  ];
  return new Uint8Array(bytes);
}
