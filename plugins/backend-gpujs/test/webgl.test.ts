/**
 * gpu.js on a real WebGL pipeline: headless-gl (built from source against the system's OpenGL) on an X display —
 * the one in DISPLAY, or an Xvfb this file starts (Mesa llvmpipe). Asserts the kernel class gpu.js really ran
 * (HeadlessGLKernel, a WebGL 1 context), never its fallback. Where there is no WebGL context (gl not built, no
 * Xvfb) the file skips with the printed reason.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { TopiaryError } from '@topiary/kernel';
import { genericPrimitives } from '@topiary/linalg';
import { createRequire } from 'node:module';
import type { GPU } from 'gpu.js';
import { createGpujsBackend, ensureWebGL, GpuKernels } from '../src/index.js';

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

afterAll(() => started?.stop());

describe.skipIf(!probe.ok)('backend-gpujs on WebGL (headless-gl)', () => {
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

describe.skipIf(!probe.ok)('backend-gpujs on WebGL past its limits (65536-iteration loops, 2^24-element arrays): in pieces', () => {
  it('rowNorms of rows longer than a loop (100000) and of a matrix past 2^24 elements (2000 × 9000)', async () => {
    const b = createGpujsBackend({ mode: 'webgl' });
    await b.init();
    for (const [rows, cols] of [
      [1, 100_000],
      [2000, 9000],
    ] as const) {
      const w = rand(rows * cols, rows + cols);
      // relative to each row's own norm: one wrong element read shows
      const got = b.primitives.rowNorms(w, rows, cols);
      const want = genericPrimitives.rowNorms(w, rows, cols);
      let worst = 0;
      for (let i = 0; i < rows; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / want[i]!);
      expect(worst, `${rows}×${cols}`).toBeLessThan(1e-5);
    }
    expect(b.gpuMode).toBe('headlessgl');
    b.dispose();
  });

  // the same bookkeeping with the limits lowered (64 elements per kernel argument, loops of 16), on small shapes
  it('matmul, Gram (tiles), column squares and row norms in pieces agree with the generic primitives (lowered limits)', async () => {
    const gpuJs = createRequire(import.meta.url)('gpu.js') as { GPU: new (o: { mode: string }) => GPU };
    const k = new GpuKernels(new gpuJs.GPU({ mode: 'headlessgl' }), { allowFallback: false, maxElements: 64, maxLoop: 16 });
    for (const [m, kk, n] of [
      [5, 40, 3], // k in chunks of 16, m in chunks
      [3, 9, 7], // m in chunks only
      [1, 70, 1],
    ] as const) {
      const A = rand(m * kk, m + kk);
      const B = rand(kk * n, n + kk);
      expect(relDiff(k.matmul(A, B, m, kk, n), genericPrimitives.matmul(A, B, m, kk, n)), `matmul ${m}×${kk}×${n}`).toBeLessThan(1e-5);
    }
    for (const [n, d] of [
      [37, 11], // 11² > 64: tiles of 8, blocks of 5 rows
      [20, 6],
    ] as const) {
      const x = rand(n * d, n * d);
      const [want, got] = [new Float64Array(d * d), new Float64Array(d * d)];
      genericPrimitives.accumulateGram(x, n, d, want);
      k.accumulateGram(x, n, d, got);
      expect(relDiff(got, want), `Gram ${n}×${d}`).toBeLessThan(1e-5);
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) expect(got[i * d + j]).toBe(got[j * d + i]);
      const [sqWant, sqGot] = [new Float64Array(d), new Float64Array(d)];
      genericPrimitives.accumulateColumnSquares(x, n, d, sqWant);
      k.accumulateColumnSquares(x, n, d, sqGot);
      expect(relDiff(sqGot, sqWant), `column squares ${n}×${d}`).toBeLessThan(1e-5);
    }
    for (const [rows, cols] of [
      [9, 7], // rows in chunks
      [3, 50], // rows longer than a loop: segments
    ] as const) {
      const w = rand(rows * cols, rows * cols + 1);
      expect(relDiff(k.rowNorms(w, rows, cols), genericPrimitives.rowNorms(w, rows, cols)), `rowNorms ${rows}×${cols}`).toBeLessThan(1e-5);
    }
    expect(k.mode).toBe('headlessgl');
    k.destroy();
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
