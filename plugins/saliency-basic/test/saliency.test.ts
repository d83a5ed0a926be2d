import { describe, expect, it } from 'vitest';
import { createContainer, resolveNamed, Tokens } from '@topiary/kernel';
import plugin, { magnitudeSaliency, wandaSaliency } from '../src/index.js';

describe('basic saliencies', () => {
  it('magnitude is |W|', () => {
    expect(Array.from(magnitudeSaliency.score({ param: 'w', rows: 1, cols: 3, weight: new Float32Array([-2, 0.5, 0]) }))).toEqual([2, 0.5, 0]);
  });

  it('wanda is |W_ij|·‖X_j‖₂ (closed form)', () => {
    const s = wandaSaliency.score({ param: 'w', rows: 2, cols: 2, weight: new Float32Array([0.5, -2, 1, 3]), activationSquares: new Float64Array([16, 1]) });
    expect(Array.from(s)).toEqual([2, 2, 4, 3]);
  });

  it('wanda without activations names what is missing', () => {
    expect(() => wandaSaliency.score({ param: 'w', rows: 1, cols: 2, weight: new Float32Array(2) })).toThrow(/input-feature squares/);
  });

  it('registers both by name; an unknown name lists them', () => {
    const c = createContainer();
    plugin.register(c, {});
    expect(resolveNamed(c, Tokens.Saliency, 'wanda', 'saliency').needs).toContain('activations');
    expect(() => resolveNamed(c, Tokens.Saliency, 'taylor', 'saliency', '--saliency')).toThrow(/unknown saliency/);
  });
});
