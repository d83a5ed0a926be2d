import { describe, expect, it } from 'vitest';
import { genericPrimitives as p } from '@topiary/linalg';
import { isExactNM } from '@topiary/prune-core';
import { sparsegptPrune } from '../src/index.js';
import { countDiff, f32, f64, readReference, unpackBits, type UnitReference } from '../../../packages/prune-core/test/fixture.js';

const ref = readReference<UnitReference>('prune_unit.json');
const PATTERNS: Record<string, { sparsity: number; pattern?: { n: number; m: number } }> = {
  '50': { sparsity: 0.5 },
  '50b32': { sparsity: 0.5 },
  '2:4': { sparsity: 0.5, pattern: { n: 2, m: 4 } },
  '4:8': { sparsity: 0.5, pattern: { n: 4, m: 8 } },
  '0': { sparsity: 0 },
};

/** ‖(W − Ŵ) Xᵀ‖² through the Hessian: Σ_rows (w − ŵ) H (w − ŵ)ᵀ — the layer output error SparseGPT minimises. */
function outputError(w: Float32Array, wHat: Float32Array, h: Float64Array, rows: number, cols: number): number {
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const d = Array.from({ length: cols }, (_, j) => w[r * cols + j]! - wHat[r * cols + j]!);
    for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) total += d[i]! * h[i * cols + j]! * d[j]!;
  }
  return total;
}

describe('sparsegptPrune on real weights and Hessians matches the PyTorch reference', () => {
  for (const c of ref.cases) {
    for (const [label, expected] of Object.entries(c.sparsegpt)) {
      it(`${c.param} ${label}`, () => {
        const weight = f32(c.weight);
        const hessian = f64(c.hessian);
        const out = sparsegptPrune(weight, hessian, { rows: c.rows, cols: c.cols, blocksize: expected.blocksize, dampening: 0.01, ...PATTERNS[label]! }, p);
        const refKeep = unpackBits(expected.keep, c.rows * c.cols);
        const refW = f32(expected.weight);
        expect(countDiff(out.keep, refKeep)).toBe(0);
        let maxDiff = 0;
        let maxAbs = 0;
        for (let i = 0; i < refW.length; i++) {
          maxDiff = Math.max(maxDiff, Math.abs(out.weight[i]! - refW[i]!));
          maxAbs = Math.max(maxAbs, Math.abs(refW[i]!));
        }
        expect(maxDiff / maxAbs).toBeLessThan(1e-5);
        const pattern = PATTERNS[label]!.pattern;
        if (pattern) expect(isExactNM(out.keep, c.rows, c.cols, pattern.n, pattern.m)).toBe(true);
        if (label === '0') expect(Array.from(out.weight)).toEqual(Array.from(weight)); // closed form: nothing to prune, nothing moves
      });
    }
  }

  it('reconstructs: lower output error than masking the same weights without the update', () => {
    const c = ref.cases[1]!; // down_proj: 172 inputs, 2 blocks of 128 columns → exercises the lazy batch update
    const weight = f32(c.weight);
    const hessian = f64(c.hessian);
    const out = sparsegptPrune(weight, hessian, { rows: c.rows, cols: c.cols, blocksize: 128, dampening: 0.01, sparsity: 0.5 }, p);
    const masked = weight.map((w, i) => (out.keep[i] ? w : 0));
    const e1 = outputError(weight, out.weight, hessian, c.rows, c.cols);
    const e0 = outputError(weight, masked, hessian, c.rows, c.cols);
    expect(e1).toBeLessThan(0.7 * e0);
  });

  it('zeroes dead inputs (zero Hessian diagonal)', () => {
    const rows = 3;
    const cols = 4;
    const w = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const h = new Float64Array(16);
    for (const i of [0, 1, 3]) h[i * 4 + i] = 2;
    const out = sparsegptPrune(w, h, { rows, cols, sparsity: 0, blocksize: 128, dampening: 0.01 }, p);
    expect(out.deadInputs).toBe(1);
    expect([out.weight[2], out.weight[6], out.weight[10]]).toEqual([0, 0, 0]);
    expect(out.weight[0]).toBeCloseTo(1, 6);
  });
});
