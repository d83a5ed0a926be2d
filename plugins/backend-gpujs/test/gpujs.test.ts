import { describe, expect, it } from 'vitest';
import { createContainer, resolveAllOrNone, Tokens } from '@topiary/kernel';
import { genericPrimitives } from '@topiary/linalg';
import plugin, { createGpujsBackend, probeWebGL } from '../src/index.js';

function rand(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1);
}

describe('backend-gpujs', () => {
  it('registers one TensorBackend named gpujs, ranked below wasm', () => {
    const c = createContainer();
    plugin.register(c, {});
    const [b] = resolveAllOrNone(c, Tokens.TensorBackend);
    expect(b?.name).toBe('gpujs');
    expect(b?.priority).toBeLessThan(50);
  });

  for (const mode of ['cpu', 'gpu'] as const) {
    it(`mode ${mode}: kernels agree with the generic primitives (Gram over several 256-row blocks, odd shapes)`, async () => {
      const b = createGpujsBackend({ mode });
      expect((await b.available()).ok).toBe(true);
      const x = rand(600 * 7, 1);
      const want = new Float64Array(49);
      const got = new Float64Array(49);
      genericPrimitives.accumulateGram(x, 600, 7, want);
      b.primitives.accumulateGram(x, 600, 7, got);
      for (let i = 0; i < 49; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-4 * Math.abs(want[i]!) + 1e-4);
      const a = rand(5 * 9, 2);
      const bb = rand(9 * 3, 3);
      const mm = b.primitives.matmul(a, bb, 5, 9, 3);
      const mw = genericPrimitives.matmul(a, bb, 5, 9, 3);
      for (let i = 0; i < 15; i++) expect(mm[i]).toBeCloseTo(mw[i]!, 5);
      const norms = b.primitives.rowNorms(a, 5, 9);
      const nw = genericPrimitives.rowNorms(a, 5, 9);
      for (let i = 0; i < 5; i++) expect(norms[i]).toBeCloseTo(nw[i]!, 5);
      // the mode of the kernels that really ran: cpu by option; for gpu, WebGL exactly when a context exists here
      // (this file starts no X server: with DISPLAY unset that is gpu.js's WebAssembly fallback)
      const webgl = probeWebGL();
      expect(b.gpuMode).toBe(mode === 'cpu' ? 'cpu' : webgl.ok ? 'headlessgl' : 'webasm');
      expect(b.capabilities().notes[0]).toMatch(new RegExp(`^gpu\\.js mode: ${b.gpuMode}`));
      b.dispose();
    });
  }
});
