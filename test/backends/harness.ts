/**
 * The backends under test: every backend plugin that loads here. Native ones (node, node-gpu) are included only
 * where their optional tfjs-node package really loads; elsewhere they are skipped with the printed reason.
 */
import * as tf from '@tensorflow/tfjs';
import type { TensorBackend } from '@topiary/kernel';
import { createCpuBackend } from '@topiary/backend-cpu';
import { createGpujsBackend, ensureWebGL } from '@topiary/backend-gpujs';
import { createNodeBackend } from '@topiary/backend-node';
import { createNodeGpuBackend } from '@topiary/backend-node-gpu';
import { createWasmBackend } from '@topiary/backend-wasm';

export interface BackendUnderTest {
  /** Label in test names (`gpujs-cpu` is the gpujs plugin in gpu.js's cpu mode, `gpujs-webgl` in its WebGL mode). */
  label: string;
  backend: TensorBackend;
  /** Why it is skipped here, or undefined when it runs. */
  skip?: string;
}

export async function backendsUnderTest(): Promise<BackendUnderTest[]> {
  // gpujs-webgl needs a WebGL context: the X display in DISPLAY, or an Xvfb started here (Mesa llvmpipe); it ends
  // with this test process. Without headless-gl built or Xvfb installed, gpujs-webgl skips with the reason.
  const { probe } = await ensureWebGL();
  if (probe.ok) console.log(`conformance: gpujs-webgl runs on ${probe.version}, DISPLAY=${probe.display}, renderer ${probe.renderer}`);
  const all: BackendUnderTest[] = [
    { label: 'wasm', backend: createWasmBackend() },
    { label: 'cpu', backend: createCpuBackend() },
    { label: 'gpujs-cpu', backend: createGpujsBackend({ mode: 'cpu' }) },
    // mode webgl: WebGL or an error, never gpu.js's silent CPU fallback
    { label: 'gpujs-webgl', backend: createGpujsBackend({ mode: 'webgl' }) },
    { label: 'node', backend: createNodeBackend() },
    { label: 'node-gpu', backend: createNodeGpuBackend() },
  ];
  for (const b of all) {
    const a = await b.backend.available();
    if (!a.ok) {
      b.skip = `${a.reason} (fix: ${a.fix})`;
      console.log(`skipped: conformance for backend ${b.label} — ${a.reason}`);
    }
  }
  return all;
}

/** Run `f` on the tfjs cpu engine (the reference) and return to the engine that was active. */
export async function onCpu<T>(f: () => T): Promise<T> {
  const previous = tf.getBackend();
  await tf.setBackend('cpu');
  try {
    return f();
  } finally {
    await tf.setBackend(previous);
  }
}

export function maxAbsDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  expectSameLength(x, y);
  let d = 0;
  for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i]! - y[i]!));
  return d;
}

/** max |x − y| / max(1, max |y|): relative to the size of the reference values. */
export function relDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let scale = 1;
  for (let i = 0; i < y.length; i++) scale = Math.max(scale, Math.abs(y[i]!));
  return maxAbsDiff(x, y) / scale;
}

function expectSameLength(x: ArrayLike<number>, y: ArrayLike<number>): void {
  if (x.length !== y.length) throw new Error(`length ${x.length} vs ${y.length}`);
}

/** Deterministic values in [-1, 1) (an LCG: the same inputs on every backend and every run). */
export function uniform(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return out;
}

/** C = A·B in float64 for row-major A [m,k], B [k,n] (the definition, used as the closed form). */
export function hostMatMul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p]!;
      for (let j = 0; j < n; j++) c[i * n + j]! += av * b[p * n + j]!;
    }
  return c;
}

export function hostTranspose(a: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j]!;
  return t;
}
