import { describe, expect, it } from 'vitest';
import { genericPrimitives as p } from '@topiary/linalg';
import { isExactNM, selectKeepMask } from '@topiary/prune-core';
import { wandaSaliency } from '@topiary/saliency-basic';
import { countDiff, f32, f64, readReference, RULES, unpackBits, type UnitReference } from '../../../packages/prune-core/test/fixture.js';

// Real stories260K weights (block 1 q_proj and down_proj) with real activations of a TinyStories text, from
// bench/reference/prune_reference.py (PyTorch, float32 scores, stable ties).
const ref = readReference<UnitReference>('prune_unit.json');

describe('Wanda masks on real weights equal the PyTorch reference', () => {
  for (const c of ref.cases) {
    for (const [label, bits] of Object.entries(c.wanda)) {
      it(`${c.param} ${label}`, () => {
        const weight = f32(c.weight);
        const scores = wandaSaliency.score({ param: c.param, rows: c.rows, cols: c.cols, weight, activationSquares: f64(c.activationSquares), tokens: c.tokens });
        const keep = selectKeepMask(p, scores, c.rows, c.cols, RULES[label]!);
        expect(countDiff(keep, unpackBits(bits, c.rows * c.cols))).toBe(0);
        const rule = RULES[label]!;
        if (rule.pattern) expect(isExactNM(keep, c.rows, c.cols, rule.pattern.n, rule.pattern.m)).toBe(true);
      });
    }
  }

  it('differs from plain magnitude (activations matter)', () => {
    const c = ref.cases[1]!;
    expect(countDiff(unpackBits(c.wanda.row50!, c.rows * c.cols), unpackBits(c.magnitude.row50!, c.rows * c.cols))).toBeGreaterThan(100);
  });
});
