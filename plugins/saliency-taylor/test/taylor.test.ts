import { describe, expect, it } from 'vitest';
import { createContainer, resolveNamed, Tokens, TopiaryError } from '@topiary/kernel';
import plugin, { taylorElement, taylorElementSecondOrder, taylorVector } from '../src/index.js';

const weight = new Float32Array([0.5, -2, 1, 3]);
const grad = new Float32Array([2, 0.25, -1, 0.1]);
const stats = { param: 'w', rows: 2, cols: 2, weight, grad };

describe('taylor saliencies (closed forms)', () => {
  it('taylor-element is |w·g|', () => {
    expect([...taylorElement.score(stats)]).toEqual([1, 0.5, 1, Math.fround(0.3)].map(Math.fround));
  });
  it('taylor-element-2nd is |g·w − ½ w² g²| without a Fisher, |g·w − ½ w² F| with one', () => {
    // element 0: 1 − ½·0.25·4 = 0.5; element 1: −0.5 − ½·4·0.0625 = −0.625; element 2: −1 − ½·1·1 = −1.5;
    // element 3: 0.3 − ½·9·0.01 = 0.255
    const s = taylorElementSecondOrder.score(stats);
    [0.5, 0.625, 1.5, 0.255].forEach((v, i) => expect(s[i]).toBeCloseTo(v, 6));
    const f = taylorElementSecondOrder.score({ ...stats, gradSquared: new Float32Array([1, 1, 1, 1]) });
    // 1 − ½·0.25 = 0.875; −0.5 − 2 = −2.5; −1 − 0.5 = −1.5; 0.3 − 4.5 = −4.2
    [0.875, 2.5, 1.5, 4.2].forEach((v, i) => expect(f[i]).toBeCloseTo(v, 6));
  });
  it('taylor-vector scores signed products and is vector level: |Σ| over a member', () => {
    const vector = taylorVector.score(stats);
    expect([...vector]).toEqual([1, -0.5, -1, 0.3].map(Math.fround));
    expect(taylorVector.level).toBe('vector');
    expect(taylorElement.level).toBe('element');
    expect(taylorElementSecondOrder.level).toBe('element');
    // a member spanning all four weights: the vector form takes |Σ w·g|, the element form Σ |w·g|
    expect(Math.abs(vector.reduce((a, b) => a + b, 0))).toBeCloseTo(Math.abs(1 - 0.5 - 1 + 0.3), 6); // 0.2: cancellation is the point
    expect(taylorElement.score(stats).reduce((a, b) => a + b, 0)).toBeCloseTo(2.8, 6);
  });
  it('without gradients the error names the parameter', () => {
    expect(() => taylorElement.score({ param: 'model.x', rows: 1, cols: 1, weight: new Float32Array(1) })).toThrow(/model\.x/);
  });
});

describe('plugin', () => {
  it('registers the three criteria; unknown names list the known ones', () => {
    const c = createContainer();
    plugin.register(c, {});
    expect(resolveNamed(c, Tokens.Saliency, 'taylor-vector', 'saliency', '--saliency')).toBe(taylorVector);
    let err: TopiaryError | undefined;
    try {
      resolveNamed(c, Tokens.Saliency, 'taylor', 'saliency', '--saliency');
    } catch (e) {
      err = e as TopiaryError;
    }
    expect(err?.where).toBe('--saliency');
    expect(err?.hint).toContain('taylor-element, taylor-element-2nd, taylor-vector');
  });
});
