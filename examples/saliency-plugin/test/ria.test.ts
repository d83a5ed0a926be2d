import { describe, expect, it } from 'vitest';
import { createContainer, PluginHost, resolveNamed, Tokens } from '@topiary/kernel';
import plugin, { riaScores } from '../src/index.js';

describe('ria saliency plugin', () => {
  it('computes the closed form on a 2×2 example', () => {
    // W = [[1, -2], [3, 4]], ‖X‖² = [4, 16] → ‖X‖^0.5 = [√2, 2]
    const s = riaScores({ param: 'w', rows: 2, cols: 2, weight: new Float32Array([1, -2, 3, 4]), activationSquares: new Float64Array([4, 16]) });
    const expected = [(1 / 3 + 1 / 4) * Math.SQRT2, (2 / 3 + 2 / 6) * 2, (3 / 7 + 3 / 4) * Math.SQRT2, (4 / 7 + 4 / 6) * 2];
    expected.forEach((v, i) => expect(s[i]).toBeCloseTo(v, 6));
  });

  it('registers under the saliency token and refuses to run without activations', () => {
    const container = createContainer();
    new PluginHost(container).use(plugin).freeze();
    const ria = resolveNamed(container, Tokens.Saliency, 'ria', 'saliency');
    expect(ria.needs).toContain('activations');
    expect(() => ria.score({ param: 'layers.0.q', rows: 1, cols: 1, weight: new Float32Array([1]) })).toThrow(/needs activation statistics/);
  });
});
