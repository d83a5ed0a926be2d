/**
 * gpu.js on a real WebGL pipeline: headless-gl (built from source against the system's OpenGL) on an X display —
 * the one in DISPLAY, or an Xvfb this file starts (Mesa llvmpipe). Asserts the kernel class gpu.js really ran
 * (HeadlessGLKernel, a WebGL 1 context), never its fallback. Where there is no WebGL context (gl not built, no
 * Xvfb) the file skips with the printed reason.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { TopiaryError } from '@topiary/kernel';
import { genericPrimitives } from '@topiary/linalg';
import { createGpujsBackend, ensureWebGL } from '../src/index.js';

const { probe, started } = await ensureWebGL();
if (probe.ok) console.log(`webgl: ${probe.version} on DISPLAY=${probe.display}${started ? ' (Xvfb started by this test)' : ''}: ${probe.renderer}`);
else console.log(`skipped: gpujs WebGL tests — ${probe.reason} (fix: ${probe.fix})`);

function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296) * 2 - 1);
}

/** max |x − y| / max(1, max |y|) */
function relDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  expect(x.length).toBe(y.length);
  let scale = 1;
  let d = 0;
  for (let i = 0; i < y.length; i++) {
    scale = Math.max(scale, Math.abs(y[i]!));
    d = Math.max(d, Math.abs(x[i]! - y[i]!));
  }
  return d / scale;
}

describe.skipIf(!probe.ok)('backend-gpujs on WebGL (headless-gl)', () => {
  afterAll(() => started?.stop());

  it('the WebGL context is headless-gl WebGL 1.0 over ANGLE, and the renderer is named', () => {
    if (!probe.ok) return;
    expect(probe.version).toMatch(/^WebGL 1\.0 stack-gl /);
    expect(probe.renderer).toMatch(/^ANGLE \(.+\)$/);
    // Under an Xvfb we started the renderer can only be Mesa's software rasteriser
    if (started) expect(probe.renderer).toMatch(/llvmpipe/);
  });

  for (const mode of ['webgl', 'gpu'] as const) {
    it(`mode ${mode}: the kernels run as HeadlessGLKernel (WebGL), not a fallback, and agree with the generic primitives`, async () => {
      const b = createGpujsBackend({ mode });
      const a = await b.available();
      expect(a.ok).toBe(true);
      expect(a.ok && a.detail).toContain('WebGL through headless-gl');
      await b.init();
      expect(b.gpuMode).toBe('headlessgl');
      // Gram over several 256-row blocks (600 rows: blocks of 256, 256, 88), an odd width
      const x = rand(600 * 7, 1);
      const want = new Float64Array(49);
      const got = new Float64Array(49);
      genericPrimitives.accumulateGram(x, 600, 7, want);
      b.primitives.accumulateGram(x, 600, 7, got);
      expect(b.gpuMode).toBe('headlessgl');
      expect(relDiff(got, want)).toBeLessThan(1e-5);
      const sqWant = new Float64Array(7);
      const sqGot = new Float64Array(7);
      genericPrimitives.accumulateColumnSquares(x, 600, 7, sqWant);
      b.primitives.accumulateColumnSquares(x, 600, 7, sqGot);
      expect(b.gpuMode).toBe('headlessgl');
      expect(relDiff(sqGot, sqWant)).toBeLessThan(1e-5);
      const m = rand(5 * 9, 2);
      const n = rand(9 * 3, 3);
      expect(relDiff(b.primitives.matmul(m, n, 5, 9, 3), genericPrimitives.matmul(m, n, 5, 9, 3))).toBeLessThan(1e-5);
      expect(b.gpuMode).toBe('headlessgl');
      expect(relDiff(b.primitives.rowNorms(m, 5, 9), genericPrimitives.rowNorms(m, 5, 9))).toBeLessThan(1e-5);
      expect(b.gpuMode).toBe('headlessgl');
      expect(b.renderer).toBe(probe.ok ? probe.renderer : undefined);
      expect(b.capabilities().notes[0]).toMatch(/^gpu\.js mode: headlessgl \(WebGL, renderer ANGLE/);
      b.dispose();
    });
  }

  it('long reductions (k = 1500 and 2500 columns, past gpu.js loopMaxIterations 1000) and LLaMA-sized widths are exact to float32', async () => {
    const b = createGpujsBackend({ mode: 'webgl' });
    await b.init();
    const [m, k, n] = [6, 1500, 5];
    const A = rand(m * k, 4);
    const B = rand(k * n, 5);
    expect(relDiff(b.primitives.matmul(A, B, m, k, n), genericPrimitives.matmul(A, B, m, k, n))).toBeLessThan(1e-5);
    const W = rand(4 * 2500, 6);
    expect(relDiff(b.primitives.rowNorms(W, 4, 2500), genericPrimitives.rowNorms(W, 4, 2500))).toBeLessThan(1e-5);
    // stories260K's FFN width (172) and a 300-row calibration batch: d×d = 29584 outputs, two blocks
    const X = rand(300 * 172, 7);
    const want = new Float64Array(172 * 172);
    const got = new Float64Array(172 * 172);
    genericPrimitives.accumulateGram(X, 300, 172, want);
    b.primitives.accumulateGram(X, 300, 172, got);
    expect(relDiff(got, want)).toBeLessThan(1e-5);
    expect(b.gpuMode).toBe('headlessgl');
    b.dispose();
  });
});

describe('backend-gpujs mode webgl without a display', () => {
  it('is unavailable with the reason, and refuses to run (E_BACKEND) instead of falling back', async () => {
    const display = process.env.DISPLAY;
    delete process.env.DISPLAY;
    try {
      const b = createGpujsBackend({ mode: 'webgl' });
      const a = await b.available();
      expect(a.ok).toBe(false);
      if (!a.ok) expect(a.reason).toMatch(/no WebGL context: (no X display|headless-gl)/);
      let err: unknown;
      try {
        await b.init();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TopiaryError);
      expect((err as TopiaryError).code).toBe('E_BACKEND');
    } finally {
      if (display !== undefined) process.env.DISPLAY = display;
    }
  });
});
