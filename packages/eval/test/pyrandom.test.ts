/** PyRandom against numbers printed by CPython 3.11 (`random.Random(seed)`; getrandbits / sample). */
import { describe, expect, it } from 'vitest';
import { PyRandom } from '../src/pyrandom.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('PyRandom (CPython random.Random)', () => {
  it('Random(1234).getrandbits(32) ×3 and a seed above 2^32', () => {
    const r = new PyRandom(1234);
    expect([r.getrandbits(32), r.getrandbits(32), r.getrandbits(32)]).toEqual([4150886329, 3342196574, 1892932127]);
    expect(new PyRandom(2 ** 40 + 5).getrandbits(32)).toBe(2166296868);
  });

  it('sample(): pool method (small population) and set method (large population), one generator in sequence', () => {
    const r = new PyRandom(1234);
    // python3 -c "import random; r=random.Random(1234); print(r.sample(range(200),4), r.sample(range(10),3), r.sample(range(1000),7))"
    expect(r.sample(range(200), 4)).toEqual([199, 112, 29, 1]);
    expect(r.sample(range(10), 3)).toEqual([1, 0, 9]);
    expect(r.sample(range(1000), 7)).toEqual([100, 784, 363, 242, 17, 31, 807]);
  });
});
