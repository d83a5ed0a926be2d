import { afterAll, describe, expect, it } from 'vitest';
import { GemmPool, type ProductSpec } from '../src/index.js';
import { gemmModuleBytes, OP_KERNEL, OP_PACK_A, OP_PACK_B, OP_WORDS, TILE } from '../src/gemm/kernels.js';
import { planProduct, roundUp } from '../src/gemm/plan.js';
import { wasmApi } from '../src/gemm/wasm-api.js';

/** A small deterministic generator (xorshift32) for operands in [-1, 1). */
function operands(count: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  return Float32Array.from({ length: count }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 31 - 1;
  });
}

/** The definition, in float64, reading the operands as stored (transposed storage, broadcast batches). */
function definition(spec: ProductSpec, a: Float32Array, b: Float32Array): Float64Array {
  const { batch, m, n, k } = spec;
  const out = new Float64Array(batch * m * n);
  for (let t = 0; t < batch; t++) {
    const ao = spec.aBatched ? t * m * k : 0;
    const bo = spec.bBatched ? t * k * n : 0;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          const av = spec.transposeA ? a[ao + p * m + i]! : a[ao + i * k + p]!;
          const bv = spec.transposeB ? b[bo + j * k + p]! : b[bo + p * n + j]!;
          s += av * bv;
        }
        out[(t * m + i) * n + j] = s;
      }
  }
  return out;
}

const shapes: Array<[number, number, number, number]> = [
  [1, 1, 1, 1], // one element
  [1, 5, 7, 3], // smaller than one tile both ways
  [1, 37, 129, 300], // edge tiles in both directions
  [1, 70, 90, 1100], // three equal KC blocks of 367
  [3, 17, 9, 513], // batched, K just past one block
  [8, 64, 64, 8], // attention-like: many small items
  [1, 260, 2100, 33], // wide: split by columns, more than one NC block
  [2, 1000, 30, 70], // tall items
];

describe('GEMM (WebAssembly SIMD, worker threads)', () => {
  const pools = [new GemmPool({ threads: 1, fma: false }), new GemmPool({ threads: 3 })];
  afterAll(() => pools.forEach((p) => p.dispose()));

  for (const [batch, m, n, k] of shapes) {
    it(`${batch}× ${m}×${k}·${k}×${n}: every transpose and broadcast case matches the definition (1 and 3 threads)`, () => {
      for (const transposeA of [false, true])
        for (const transposeB of [false, true])
          for (const [aBatched, bBatched] of [[true, true], [false, true], [true, false]] as const) {
            const spec: ProductSpec = { batch, m, n, k, transposeA, transposeB, aBatched, bBatched };
            const a = operands((aBatched ? batch : 1) * m * k, 1 + m);
            const b = operands((bBatched ? batch : 1) * k * n, 2 + n);
            const want = definition(spec, a, b);
            for (const pool of pools) {
              const out = new Float32Array(batch * m * n).fill(Number.NaN);
              pool.matmul(spec, a, b, out);
              let worst = 0;
              for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(out[i]! - want[i]!));
              // float32 sums of k products of magnitude ≤ 1: error grows like √k·ε·k at worst
              expect(worst, JSON.stringify(spec)).toBeLessThan(2e-6 * k);
            }
          }
    });
  }

  it('an empty shared dimension gives zeros; a pool used after dispose() says so', () => {
    const pool = new GemmPool({ threads: 2 });
    const out = new Float32Array(6).fill(7);
    pool.matmul({ batch: 1, m: 2, n: 3, k: 0, transposeA: false, transposeB: false, aBatched: true, bBatched: true }, new Float32Array(0), new Float32Array(0), out);
    expect([...out]).toEqual([0, 0, 0, 0, 0, 0]);
    pool.dispose();
    expect(() => pool.matmul({ batch: 1, m: 1, n: 1, k: 1, transposeA: false, transposeB: false, aBatched: true, bBatched: true }, new Float32Array(1), new Float32Array(1), new Float32Array(1))).toThrow(/dispose/);
  });

  it('the generated module validates with and without fused multiply-add', () => {
    for (const fma of [false, true]) expect(gemmModuleBytes(TILE, fma).byteLength).toBeGreaterThan(100);
    expect(wasmApi.validate(gemmModuleBytes(TILE, false))).toBe(true);
  });

  it('the plan covers every output tile exactly once per KC block, splitting work evenly across threads', () => {
    const spec: ProductSpec = { batch: 1, m: 1000, n: 300, k: 700, transposeA: false, transposeB: true, aBatched: true, bBatched: true };
    const layout = { a: 0, b: 1 << 24, c: 1 << 26, scratch: [1 << 28, (1 << 28) + (1 << 24)] };
    const plan = planProduct(spec, layout, 2, TILE);
    expect(plan.ldc).toBe(roundUp(300, TILE.nr));
    expect(plan.rowsPerItem).toBe(roundUp(1000, TILE.mr));
    const covered = new Map<number, number>();
    const macsPerThread = plan.lists.map((ops) => {
      let macs = 0;
      for (let o = 0; o < ops.length; o += OP_WORDS) {
        expect([OP_PACK_A, OP_PACK_B, OP_KERNEL]).toContain(ops[o]);
        if (ops[o] !== OP_KERNEL) continue;
        const [c, ldcBytes, mPanels, nPanels, kc] = [ops[o + 3]!, ops[o + 4]!, ops[o + 5]!, ops[o + 6]!, ops[o + 7]!];
        macs += mPanels * TILE.mr * nPanels * TILE.nr * kc;
        for (let i = 0; i < mPanels; i++)
          for (let j = 0; j < nPanels; j++) {
            const tile = c + i * TILE.mr * ldcBytes + j * TILE.nr * 4;
            covered.set(tile, (covered.get(tile) ?? 0) + kc);
          }
      }
      return macs;
    });
    expect(covered.size).toBe((plan.rowsPerItem / TILE.mr) * (plan.ldc / TILE.nr));
    for (const kTotal of covered.values()) expect(kTotal).toBe(700);
    expect(Math.abs(macsPerThread[0]! - macsPerThread[1]!)).toBeLessThanOrEqual(TILE.mr * plan.ldc * 700);
  });
});

describe('softmax cross-entropy rows (SIMD exp, worker threads)', () => {
  const pools = [new GemmPool({ threads: 1 }), new GemmPool({ threads: 3 })];
  afterAll(() => pools.forEach((p) => p.dispose()));

  for (const [rows, vocab] of [[1, 1], [3, 7], [5, 512], [40, 513], [130, 4096]] as const) {
    it(`${rows} rows × vocab ${vocab}: loss and gradient match the definition in float64`, () => {
      // logits spread over ±30 so the exp sees large negative arguments too
      const z = operands(rows * vocab, 7 + vocab).map((x) => 30 * x);
      const targets = Int32Array.from({ length: rows }, (_, i) => (i * 7919) % vocab);
      if (rows > 2) targets[1] = vocab; // out of range: picks nothing, no one-hot
      const scale = 0.25;
      const wantLoss = new Float64Array(rows);
      const wantGrad = new Float64Array(rows * vocab);
      for (let i = 0; i < rows; i++) {
        const row = z.subarray(i * vocab, (i + 1) * vocab);
        const m = Math.max(...row);
        const s = row.reduce((acc, x) => acc + Math.exp(x - m), 0);
        const t = targets[i]!;
        wantLoss[i] = m + Math.log(s) - (t < vocab ? row[t]! : 0);
        for (let j = 0; j < vocab; j++) wantGrad[i * vocab + j] = (Math.exp(row[j]! - m) / s - (j === t ? 1 : 0)) * scale;
      }
      for (const pool of pools) {
        const loss = new Float32Array(rows);
        const grad = new Float32Array(rows * vocab).fill(Number.NaN);
        pool.softmaxCrossEntropy(z, targets, vocab, scale, loss, grad);
        for (let i = 0; i < rows; i++) expect(Math.abs(loss[i]! - wantLoss[i]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(wantLoss[i]!)));
        let worst = 0;
        for (let j = 0; j < grad.length; j++) worst = Math.max(worst, Math.abs(grad[j]! - wantGrad[j]!));
        expect(worst).toBeLessThan(1e-6);
        const lossOnly = new Float32Array(rows);
        pool.softmaxCrossEntropy(z, targets, vocab, scale, lossOnly);
        expect([...lossOnly]).toEqual([...loss]);
      }
    });
  }

  it('sizes that disagree are refused with the sizes named', () => {
    expect(() => pools[0]!.softmaxCrossEntropy(new Float32Array(10), new Int32Array(3), 4, 1, new Float32Array(3))).toThrow(/sizes disagree.*logits 10/);
  });
});

describe('GEMM pool: bad input and failing workers', () => {
  it('operands that do not fit the product are refused; an empty product writes nothing', () => {
    const pool = new GemmPool({ threads: 1 });
    const spec = { batch: 2, m: 3, n: 4, k: 5, transposeA: false, transposeB: false, aBatched: true, bBatched: true };
    expect(() => pool.matmul(spec, new Float32Array(30), new Float32Array(39), new Float32Array(24))).toThrow(/operand sizes 30, 39, 24 do not fit/);
    pool.matmul({ ...spec, batch: 0 }, new Float32Array(0), new Float32Array(0), new Float32Array(0));
    expect(() => new GemmPool({ threads: 2.5 })).toThrow(/whole number/);
    pool.dispose();
  });

  it('workers poll between back-to-back products and park when idle; a parked pool is woken and computes', async () => {
    const pool = new GemmPool({ threads: 3 });
    const spec = { batch: 1, m: 128, n: 96, k: 64, transposeA: false, transposeB: true, aBatched: true, bBatched: true };
    const a = operands(128 * 64, 5);
    const b = operands(96 * 64, 6);
    const want = new Float32Array(128 * 96);
    pool.matmul(spec, a, b, want);
    const control = (pool as unknown as { control: Int32Array }).control;
    const PARKED = 6;
    // idle for a while: both workers end up parked in Atomics.wait
    for (let t = 0; t < 100 && Atomics.load(control, PARKED) < 2; t++) await new Promise((r) => setTimeout(r, 10));
    expect(Atomics.load(control, PARKED)).toBe(2);
    const got = new Float32Array(128 * 96);
    pool.matmul(spec, a, b, got); // notified out of the park
    expect([...got]).toEqual([...want]);
    // back to back: the same bits every time
    for (let i = 0; i < 50; i++) {
      got.fill(0);
      pool.matmul(spec, a, b, got);
      expect(got[7]).toBe(want[7]);
    }
    expect([...got]).toEqual([...want]);
    pool.dispose();
  });

  it('a worker that dies marks the pool broken instead of hanging the next product or ending the process', async () => {
    const pool = new GemmPool({ threads: 2 });
    const spec = { batch: 1, m: 256, n: 256, k: 256, transposeA: false, transposeB: false, aBatched: true, bBatched: true };
    const a = operands(256 * 256, 3);
    const out = new Float32Array(256 * 256);
    pool.matmul(spec, a, a, out); // workers up and answering
    await (pool as unknown as { workers: Array<{ terminate(): Promise<number> }> }).workers[0]!.terminate();
    await new Promise((r) => setTimeout(r, 50)); // the exit event
    expect(pool.broken).toMatch(/worker 1 exited/);
    expect(() => pool.matmul(spec, a, a, out)).toThrow(/worker threads failed/);
    pool.dispose();
  });
});
