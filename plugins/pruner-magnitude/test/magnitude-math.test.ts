import { describe, expect, it } from 'vitest';
import { genericPrimitives as p } from '@topiary/linalg';
import { selectKeepMask } from '@topiary/prune-core';
import { magnitudeSaliency } from '@topiary/saliency-basic';
import { countDiff, f32, readReference, RULES, unpackBits, type UnitReference } from '../../../packages/prune-core/test/fixture.js';

const ref = readReference<UnitReference>('prune_unit.json');

describe('magnitude masks on real weights equal the PyTorch reference', () => {
  for (const c of ref.cases) {
    for (const [label, bits] of Object.entries(c.magnitude)) {
      it(`${c.param} ${label}`, () => {
        const weight = f32(c.weight);
        const scores = magnitudeSaliency.score({ param: c.param, rows: c.rows, cols: c.cols, weight });
        const keep = selectKeepMask(p, scores, c.rows, c.cols, RULES[label]!);
        expect(countDiff(keep, unpackBits(bits, c.rows * c.cols))).toBe(0);
      });
    }
  }
});
