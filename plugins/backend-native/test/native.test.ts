import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { FusedKernel } from '@topiary/kernel';
import { genericPrimitives, SeededRandom } from '@topiary/linalg';
import { AdamW, createLlama, softmaxCrossEntropyRows, trainStep } from '@topiary/model-llama';
import { installFastBatchMatMul } from '@topiary/backend-wasm';
import {
  ADDON_PATH,
  createNativeBackend,
  installFusedKernels,
  installNativeBatchMatMul,
  loadAddon,
  missingPrerequisites,
  nativeBatchMatMulInstalled,
  nativePrimitives,
  uninstallFusedKernels,
  uninstallNativeBatchMatMul,
  type BlasAddon,
} from '../src/index.js';

const built = existsSync(ADDON_PATH) && 'addon' in loadAddon();
if (!built) {
  console.log(`skipped: backend-native kernel tests need the compiled addon (${ADDON_PATH}); build it with \`pnpm --filter @topiary/backend-native build:native\``);
}

function randoms(n: number, rng: SeededRandom): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.next() * 2 - 1;
  return out;
}

/** float64 reference of op(A)·op(B) for one item. */
function refProduct(a: Float32Array, b: Float32Array, m: number, k: number, n: number, ta: boolean, tb: boolean): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[ta ? p * m + i : i * k + p]! * b[tb ? j * k + p : p * n + j]!;
      c[i * n + j] = s;
    }
  return c;
}

describe('backend-native: diagnostics (always run)', () => {
  it('names every missing build prerequisite and the fix', () => {
    const r = missingPrerequisites({ openblas: undefined, compiler: undefined, nodeHeaders: undefined });
    expect(r?.reason).toBe("missing libopenblas (libopenblas.so, from Debian/Ubuntu libopenblas-dev), a C compiler (cc/gcc/clang), Node's headers (node_api.h)");
    expect(r?.fix).toBe('apt-get install libopenblas-dev gcc make libnode-dev, then pnpm --filter @topiary/backend-native build:native');
    expect(missingPrerequisites({ openblas: '/x/libopenblas.so', compiler: '/usr/bin/cc', nodeHeaders: '/usr/include/node' })).toBeUndefined();
    const only = missingPrerequisites({ openblas: undefined, compiler: '/usr/bin/cc', nodeHeaders: '/usr/include/node' });
    expect(only?.fix).toBe('apt-get install libopenblas-dev, then pnpm --filter @topiary/backend-native build:native');
  });

  it('available() is ok exactly when the addon loads, else says what is missing and how to fix it', async () => {
    const a = await createNativeBackend().available();
    if (built) expect(a.ok).toBe(true);
    else {
      expect(a.ok).toBe(false);
      if (!a.ok) {
        expect(a.reason).toContain('native addon is not built');
        expect(a.fix).toMatch(/build:native|apt-get install/);
      }
    }
  });
});

describe.skipIf(!built)('backend-native: OpenBLAS kernels', () => {
  const blas = (built ? (loadAddon() as { addon: BlasAddon }).addon : undefined)!;

  it('sgemmStrided matches a float64 product for every transpose flag, batches and broadcasting', () => {
    const rng = new SeededRandom(1);
    for (const [m, k, n] of [[3, 5, 4], [17, 33, 9], [64, 1, 31]] as const) {
      for (const ta of [false, true])
        for (const tb of [false, true]) {
          const batch = 3;
          const a = randoms(batch * m * k, rng);
          const b = randoms(k * n, rng); // broadcast B (stride 0)
          const c = new Float32Array(batch * m * n);
          blas.sgemmStrided(ta, tb, m, n, k, batch, a, m * k, b, 0, c, m * n);
          for (let i = 0; i < batch; i++) {
            const ref = refProduct(a.subarray(i * m * k), b, m, k, n, ta, tb);
            for (let j = 0; j < m * n; j++) expect(Math.abs(c[i * m * n + j]! - ref[j]!)).toBeLessThan(1e-5 * (1 + Math.abs(ref[j]!)) * Math.sqrt(k));
          }
        }
    }
  });

  it('refuses arrays that are too short instead of reading past them', () => {
    expect(() => blas.sgemmStrided(false, false, 4, 4, 4, 1, new Float32Array(15), 0, new Float32Array(16), 0, new Float32Array(16), 0)).toThrow(/past the end/);
    expect(() => blas.sgemmStrided(false, false, 2, 2, 2, 1, new Float64Array(4) as unknown as Float32Array, 0, new Float32Array(4), 0, new Float32Array(4), 0)).toThrow(/Float32Array/);
  });

  it('primitives: H⁻¹, the Cholesky factor of H⁻¹ (LAPACK) and the float64 block product (dgemm) equal the generic ones; an indefinite matrix is E_NUMERIC', () => {
    const rng = new SeededRandom(4);
    const prims = nativePrimitives(blas);
    for (const d of [1, 5, 37]) {
      // H = XᵀX/n + 0.01·I: symmetric positive definite, like a damped SparseGPT Hessian
      const n = 3 * d + 4;
      const x = randoms(n * d, rng);
      const h = new Float64Array(d * d);
      genericPrimitives.accumulateGram(x, n, d, h);
      for (let i = 0; i < d * d; i++) h[i] = h[i]! / n;
      for (let i = 0; i < d; i++) h[i * d + i]! += 0.01;
      const copy = Float64Array.from(h);
      for (const name of ['choleskyInverse', 'upperCholeskyOfInverse'] as const) {
        const got = prims[name](h, d);
        const ref = genericPrimitives[name](h, d);
        let scale = 0;
        for (const v of ref) scale = Math.max(scale, Math.abs(v));
        for (let i = 0; i < d * d; i++) expect(Math.abs(got[i]! - ref[i]!) / scale, `${name} d ${d} at ${i}`).toBeLessThan(1e-9);
      }
      expect([...h]).toEqual([...copy]); // the input is not modified
    }
    // SparseGPT's lazy update on strided blocks: C[:, 3:] −= A · B[2:5, 3:]
    const [rows, cols, k] = [6, 9, 3];
    const A = Float64Array.from(randoms(rows * k, rng));
    const B = Float64Array.from(randoms(cols * cols, rng));
    const C1 = Float64Array.from(randoms(rows * cols, rng));
    const C2 = Float64Array.from(C1);
    prims.subtractProduct64(rows, cols - 3, k, A, k, B.subarray(2 * cols + 3), cols, C1.subarray(3), cols);
    genericPrimitives.subtractProduct64(rows, cols - 3, k, A, k, B.subarray(2 * cols + 3), cols, C2.subarray(3), cols);
    for (let i = 0; i < C1.length; i++) expect(Math.abs(C1[i]! - C2[i]!)).toBeLessThan(1e-12);
    for (let r = 0; r < rows; r++) for (let c = 0; c < 3; c++) expect(C1[r * cols + c]).toBe(C2[r * cols + c]); // columns left of the block untouched
    expect(() => prims.subtractProduct64(rows, cols, k, A, k, B, cols, C1.subarray(3), cols)).toThrow(/past the end/);
    const indefinite = new Float64Array([1, 2, 2, 1]);
    expect(() => prims.upperCholeskyOfInverse(indefinite, 2)).toThrow(/not positive definite \(pivot 1\)/);
  });

  it('primitives: Gram and matmul equal the generic float64 versions', () => {
    const rng = new SeededRandom(2);
    const prims = nativePrimitives(blas);
    const n = 2100; // crosses two block boundaries
    const d = 24;
    const x = randoms(n * d, rng);
    const acc = new Float64Array(d * d).fill(0.5);
    const ref = new Float64Array(d * d).fill(0.5);
    prims.accumulateGram(x, n, d, acc);
    genericPrimitives.accumulateGram(x, n, d, ref);
    for (let i = 0; i < d * d; i++) expect(Math.abs(acc[i]! - ref[i]!)).toBeLessThan(1e-3);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) expect(acc[i * d + j]).toBe(acc[j * d + i]);
    const a = randoms(7 * 11, rng);
    const b = randoms(11 * 5, rng);
    const c = prims.matmul(a, b, 7, 11, 5);
    const cr = genericPrimitives.matmul(a, b, 7, 11, 5);
    for (let i = 0; i < c.length; i++) expect(c[i]).toBeCloseTo(cr[i]!, 5);
  });

  it('the in-place wasm BatchMatMul equals the wasm kernel on every case a LLaMA uses, gradients included', async () => {
    await createNativeBackend({ threads: 2 }).init();
    expect(tf.getBackend()).toBe('wasm');
    expect(nativeBatchMatMulInstalled()).toBe(true);
    const rng = new SeededRandom(3);
    const t = (shape: number[]) => tf.tensor(randoms(shape.reduce((p, q) => p * q, 1), rng), shape);
    const cases: [number[], number[], boolean, boolean][] = [
      [[40, 24], [24, 36], false, false],
      [[40, 24], [36, 24], false, true],
      [[24, 40], [24, 36], true, false],
      [[24, 40], [36, 24], true, true],
      [[6, 16, 8], [6, 8, 16], false, false], // attention scores
      [[6, 16, 8], [6, 16, 8], false, true],
      [[6, 8, 16], [6, 8, 16], true, false],
      [[6, 16, 8], [8, 5], false, false], // B broadcast over the batch
      [[1, 16, 8], [4, 8, 3], false, false], // A broadcast
      [[2, 3, 5, 4], [2, 3, 4, 6], false, false], // rank 4
      [[0, 4], [4, 3], false, false], // empty
      [[3, 0], [0, 2], false, false], // k = 0
    ];
    const results: Float32Array[] = [];
    for (const [sa, sb, ta, tb] of cases) {
      const a = t(sa);
      const b = t(sb);
      results.push(tf.matMul(a, b, ta, tb).dataSync() as Float32Array);
      a.dispose();
      b.dispose();
    }
    uninstallNativeBatchMatMul();
    expect(nativeBatchMatMulInstalled()).toBe(false);
    installFastBatchMatMul();
    const rng2 = new SeededRandom(3);
    const t2 = (shape: number[]) => tf.tensor(randoms(shape.reduce((p, q) => p * q, 1), rng2), shape);
    for (const [i, [sa, sb, ta, tb]] of cases.entries()) {
      const a = t2(sa);
      if (sa.at(-1) === 0) {
        // k = 0: the empty sum is 0 (the wasm kernel leaves the output uninitialised here; ours writes zeros)
        expect([...results[i]!]).toEqual([0, 0, 0, 0, 0, 0]);
        t2(sb).dispose();
        a.dispose();
        continue;
      }
      const b = t2(sb);
      const ref = tf.matMul(a, b, ta, tb).dataSync();
      expect(results[i]!.length).toBe(ref.length);
      for (let j = 0; j < ref.length; j++) expect(Math.abs(results[i]![j]! - ref[j]!), `case ${i} at ${j}`).toBeLessThan(1e-5);
      a.dispose();
      b.dispose();
    }
    // Gradients through the native kernel equal those through the wasm kernel.
    const grad = () =>
      tf.tidy(() => {
        const r = new SeededRandom(9);
        const a = tf.tensor2d(randoms(12 * 20, r), [12, 20]);
        const b = tf.tensor2d(randoms(20 * 7, r), [20, 7]);
        const g = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, y))))([a, b]);
        return [g[0]!.dataSync() as Float32Array, g[1]!.dataSync() as Float32Array];
      });
    const stock = grad();
    installNativeBatchMatMul(blas);
    const native = grad();
    for (let s = 0; s < 2; s++) for (let j = 0; j < stock[s]!.length; j++) expect(Math.abs(native[s]![j]! - stock[s]![j]!)).toBeLessThan(1e-4);
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      tf.matMul(tf.ones([8, 8]), tf.ones([8, 8]), true, false);
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('fused softmax cross-entropy equals the composite ops (loss rows and gradient), and rejects bad targets', async () => {
    await createNativeBackend({ threads: 2 }).init();
    const rng = new SeededRandom(5);
    const n = 37;
    const vocab = 301;
    const z = tf.tensor2d(randoms(n * vocab, rng).map((x) => x * 8), [n, vocab]);
    const t = tf.tensor1d(Int32Array.from({ length: n }, (_, i) => (i * 97) % vocab), 'int32');
    const run = () =>
      tf.tidy(() => {
        const r = softmaxCrossEntropyRows(z, t, true, 0.25);
        const lossOnly = softmaxCrossEntropyRows(z, t, false);
        return [r.rows.dataSync(), r.grad!.dataSync(), lossOnly.rows.dataSync()] as Float32Array[];
      });
    installFusedKernels(blas);
    expect(tf.getKernel(FusedKernel.softmaxCrossEntropy, 'wasm')).toBeDefined();
    const fused = run();
    uninstallFusedKernels();
    expect(tf.getKernel(FusedKernel.softmaxCrossEntropy, 'wasm')).toBeUndefined();
    const composite = run();
    for (const k of [0, 1, 2]) {
      expect(fused[k]!.length).toBe(composite[k]!.length);
      for (let j = 0; j < fused[k]!.length; j++) expect(Math.abs(fused[k]![j]! - composite[k]![j]!), `output ${k} at ${j}`).toBeLessThan(2e-5);
    }
    // every gradient row sums to 0 (softmax sums to 1, minus the one-hot), times the scale
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < vocab; j++) s += fused[1]![i * vocab + j]!;
      expect(Math.abs(s)).toBeLessThan(1e-5);
    }
    installFusedKernels(blas);
    const bad = tf.tensor1d(Int32Array.from({ length: n }, () => vocab), 'int32');
    expect(() => softmaxCrossEntropyRows(z, bad, false)).toThrow(/outside the vocabulary/);
    tf.dispose([z, t, bad]);
  });

  it('training steps with the fused kernels (cross-entropy, AdamW, RoPE, causal softmax) equal ones with composite ops', async () => {
    await createNativeBackend({ threads: 2 }).init();
    const cfg = { dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, hiddenDim: 48, vocabSize: 97, maxSeqLen: 17 };
    const rng = new SeededRandom(11);
    const ids = tf.tensor2d(Int32Array.from({ length: 3 * 17 }, () => Math.floor(rng.next() * 97)), [3, 17], 'int32');
    const steps = (fused: boolean) => {
      if (fused) installFusedKernels(blas);
      else uninstallFusedKernels();
      const model = createLlama(cfg, { seed: 4 });
      const opt = new AdamW({ lr: 1e-2, weightDecay: 0.1, clipNorm: 0.5 });
      const losses = [0, 1, 2].map(() => trainStep(model, opt, ids));
      const weights = [...model.parameters().values()].map((p) => p.dataSync() as Float32Array);
      const state = opt.exportState();
      opt.dispose();
      model.dispose();
      return { losses, weights, m: [...state.m.values()], v: [...state.v.values()] };
    };
    const before = tf.memory().numTensors;
    const composite = steps(false);
    const fused = steps(true);
    expect(tf.memory().numTensors).toBe(before);
    for (const [i, l] of fused.losses.entries()) {
      expect(Math.abs(l.loss - composite.losses[i]!.loss)).toBeLessThan(1e-5);
      expect(Math.abs(l.gradNorm - composite.losses[i]!.gradNorm) / composite.losses[i]!.gradNorm).toBeLessThan(1e-4);
    }
    for (const [name, a, b] of [['weights', fused.weights, composite.weights], ['m', fused.m, composite.m], ['v', fused.v, composite.v]] as const) {
      expect(a.length, name).toBe(b.length);
      // AdamW's normalised steps amplify float rounding of tiny gradients: allow 1 % of one lr-sized step
      for (const [k, x] of a.entries()) for (let j = 0; j < x.length; j++) expect(Math.abs(x[j]! - b[k]![j]!), `${name} ${k} at ${j}`).toBeLessThan(name === 'weights' ? 1e-4 : 1e-5);
    }
    ids.dispose();
  });
});
