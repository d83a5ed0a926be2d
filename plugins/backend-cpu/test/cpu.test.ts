import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createContainer, resolveAllOrNone, Tokens } from '@topiary/kernel';
import { selectBackend } from '@topiary/pipeline';
import plugin, { createCpuBackend } from '../src/index.js';

describe('backend-cpu', () => {
  it('registers one TensorBackend named cpu and activates the cpu engine', async () => {
    const c = createContainer();
    plugin.register(c, {});
    expect(resolveAllOrNone(c, Tokens.TensorBackend).map((b) => b.name)).toEqual(['cpu']);
    const choice = await selectBackend(c, 'auto');
    expect(choice.backend.name).toBe('cpu');
    await choice.backend.init();
    expect(tf.getBackend()).toBe('cpu');
    // 2×2 product against the definition.
    expect(tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5, 6], [7, 8]])).arraySync()).toEqual([[19, 22], [43, 50]]);
  });

  it('says what it is', async () => {
    const b = createCpuBackend();
    expect(await b.available()).toEqual({ ok: true });
    expect(b.capabilities()).toMatchObject({ device: 'cpu', threads: 1, float64: false });
  });
});
