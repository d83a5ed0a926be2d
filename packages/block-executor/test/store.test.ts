/** StateStore: slots in memory up to the budget, in a file beyond, rewritten in place, the file gone on dispose. */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, test } from 'vitest';
import { StateStore } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'topiary-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const states = (k: number): Float32Array => Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => k * 100 + i + 0.25);

describe('StateStore', () => {
  test('the same values from memory and from the spill file; rewriting a spilled slot keeps its place', () => {
    const spillDir = join(dir, 'spill');
    const store = new StateStore({ budget: 2 * 24 * 4, spillDir });
    for (let k = 0; k < 5; k++) store.put(k, 0, states(k), [2, 3, 4]);
    expect(store.bytes).toBe(2 * 24 * 4);
    expect(store.spilled).toBe(3);
    for (let k = 0; k < 5; k++) {
      const t = store.tensor(k, 0);
      expect(t.shape).toEqual([2, 3, 4]);
      expect(t.dataSync()).toEqual(states(k));
      t.dispose();
    }
    store.put(4, 0, states(9), [2, 3, 4]);
    expect(store.spilled).toBe(3);
    const again = store.tensor(4, 0);
    expect(again.dataSync()).toEqual(states(9));
    again.dispose();
    const h = tf.tensor3d(states(7), [2, 3, 4]);
    store.putTensor(1, 1, h);
    h.dispose();
    expect(store.has(1, 1)).toBe(true);
    store.delete(0, 0);
    expect(store.has(0, 0)).toBe(false);
    expect(() => store.tensor(0, 0)).toThrow(/no hidden states/);
    store.dispose();
    expect(existsSync(spillDir) ? readdirSync(spillDir) : []).toEqual([]);
  });
});
