import { describe, expect, it } from 'vitest';
import { GemmPool, defaultThreads, nodeGemmPlatform, type GemmPlatform } from '../src/index.js';

/** Node's platform with some answers changed: how a browser page without (or with) cross-origin isolation looks. */
function platform(overrides: Partial<GemmPlatform>): GemmPlatform {
  return { ...nodeGemmPlatform, ...overrides };
}

function product(pool: GemmPool, n: number): Float32Array {
  const a = Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 113) / 113 - 0.5);
  const out = new Float32Array(n * n);
  pool.matmul({ batch: 1, m: n, n, k: n, transposeA: false, transposeB: true, aBatched: false, bBatched: false }, a, a, out);
  return out;
}

describe('the GEMM platform seam', () => {
  it('without shared memory (a page that is not cross-origin isolated): one thread, unshared memory, same numbers', async () => {
    const unshared = platform({ sharedMemory: () => false, startsWorkersWhileBlocked: false });
    expect(defaultThreads(unshared)).toBe(1);
    const pool = new GemmPool({ threads: 4, platform: unshared });
    expect(pool.threads).toBe(1);
    const reference = new GemmPool({ threads: 1 });
    expect(product(pool, 200)).toEqual(product(reference, 200));
    // large enough to grow the memory (an unshared memory's buffer is replaced when it grows)
    expect(product(pool, 700)).toEqual(product(reference, 700));
    pool.dispose();
    reference.dispose();
  });

  it('where workers start only while the caller is free (a browser): serial until ready(), then threaded, same numbers', async () => {
    const started: number[] = [];
    const browserLike = platform({
      startsWorkersWhileBlocked: false,
      startWorker(body, data, events) {
        started.push(data.index);
        return nodeGemmPlatform.startWorker(body, data, events);
      },
    });
    const pool = new GemmPool({ threads: 3, platform: browserLike });
    expect(started).toEqual([1, 2]);
    const first = product(pool, 256); // may run before the workers are up: never waits for them
    await pool.ready();
    expect(pool.started).toBe(true);
    expect(product(pool, 256)).toEqual(first);
    pool.dispose();
  });

  it('settings come from the platform (TOPIARY_WASM_THREADS, TOPIARY_WASM_FMA)', () => {
    const set = platform({ setting: (name) => ({ TOPIARY_WASM_THREADS: '2', TOPIARY_WASM_FMA: '0' })[name] });
    expect(defaultThreads(set)).toBe(2);
    const pool = new GemmPool({ platform: set });
    expect(pool.threads).toBe(2);
    expect(pool.fma).toBe(false);
    pool.dispose();
  });
});
