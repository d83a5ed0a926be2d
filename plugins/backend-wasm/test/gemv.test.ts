/**
 * The fused module's few-row product (`gemv`, src/fused/module.ts), the decode step's every weight read, against a
 * float32 emulation of its documented summation order: each dot product sums lanes j ≡ 0..3 (mod 4) in order of j,
 * then lane 0 + 1 + 2 + 3, then the scalar tail in order, then the bias, then the old y. Bit for bit, for every tile
 * of x rows (4, 2, 1 at a time), inner lengths with every tail (k mod 4, and k mod 16 for the unrolled loop), and a
 * row share written into a wider y (ldy > rows, as each decode thread writes its rows).
 */
import { describe, expect, it } from 'vitest';
import { fusedModuleBytes, type FusedExports } from '../src/fused/module.js';
import { wasmApi } from '../src/gemm/wasm-api.js';

const f = Math.fround;

/** Deterministic values in [−a, a). */
function values(n: number, seed: number, a = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * a;
  });
}

function reference(w: Float32Array, x: Float32Array, y0: Float32Array, bias: Float32Array | undefined, add: boolean, rows: number, k: number, n: number, ldy: number): Float32Array {
  const y = Float32Array.from(y0);
  for (let s = 0; s < n; s++) {
    for (let r = 0; r < rows; r++) {
      const lanes = [0, 0, 0, 0];
      const quads = k & -4;
      for (let j = 0; j < quads; j++) lanes[j % 4] = f(lanes[j % 4]! + f(w[r * k + j]! * x[s * k + j]!));
      let sum = f(f(f(lanes[0]! + lanes[1]!) + lanes[2]!) + lanes[3]!);
      for (let j = quads; j < k; j++) sum = f(sum + f(w[r * k + j]! * x[s * k + j]!));
      if (bias) sum = f(sum + bias[r]!);
      if (add) sum = f(y[s * ldy + r]! + sum);
      y[s * ldy + r] = sum;
    }
  }
  return y;
}

describe('backend-wasm fused gemv', () => {
  const memory = new wasmApi.Memory({ initial: 16, maximum: 16, shared: false });
  const k = new wasmApi.Instance(new wasmApi.Module(fusedModuleBytes()), { env: { memory } }).exports as unknown as FusedExports;

  it('is the documented summation order bit for bit: every x-row tile, every tail, bias, residual add, ldy > rows', () => {
    let cases = 0;
    for (const n of [1, 2, 3, 4, 5, 7, 9]) {
      for (const kk of [1, 3, 4, 6, 16, 17, 35, 48, 64 + 13]) {
        for (const [rows, ldy] of [[5, 5], [9, 13]] as const) {
          for (const [withBias, add] of [[false, false], [true, true], [false, true]] as const) {
            const w = values(rows * kk, 7 * n + kk);
            const x = values(n * kk, 11 * n + kk, 3);
            const bias = withBias ? values(rows, kk) : undefined;
            const y0 = values(n * ldy, 5 * n + rows, 2);
            // laid out in the module's memory: w, x, bias, y (byte addresses, 16-byte aligned as tfjs's heap is)
            const at = { w: 64, x: 64 + 16 * Math.ceil(rows * kk / 4), bias: 0, y: 0 };
            at.bias = at.x + 16 * Math.ceil((n * kk) / 4);
            at.y = at.bias + 16 * Math.ceil(rows / 4);
            const heap = new Float32Array(memory.buffer);
            heap.set(w, at.w / 4);
            heap.set(x, at.x / 4);
            if (bias) heap.set(bias, at.bias / 4);
            heap.set(y0, at.y / 4);
            k.gemv(at.w, at.x, at.y, rows, kk, n, bias ? at.bias : 0, add ? 1 : 0, ldy);
            const got = heap.slice(at.y / 4, at.y / 4 + n * ldy);
            const want = reference(w, x, y0, bias, add, rows, kk, n, ldy);
            expect(Array.from(got), `n ${n} k ${kk} rows ${rows} ldy ${ldy} bias ${withBias} add ${add}`).toEqual(Array.from(want));
            cases++;
          }
        }
      }
    }
    expect(cases).toBe(7 * 9 * 2 * 3);
  });
});
