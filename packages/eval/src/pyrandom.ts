/**
 * Python's `random.Random` (MT19937), as far as lm-eval-harness's few-shot sampler uses it: `Random(seed)` for an
 * int seed and `sample(population, k)`. lm-eval draws few-shot examples with `self.rnd.sample(self.docs, n)`
 * (lm_eval/api/samplers.py, v0.4.8, `ContextSampler.sample`), with `rnd = random.Random(fewshot_random_seed)`
 * (lm_eval/api/task.py `set_fewshot_seed`, seed 1234 by default in lm_eval/evaluator.py `simple_evaluate`).
 *
 * Written from CPython's Modules/_randommodule.c (`init_genrand`, `init_by_array`, `genrand_uint32`,
 * `random_seed` splits |seed| into 32-bit words, least significant first) and Lib/random.py (`_randbelow` with
 * `getrandbits`, `sample` with its set-size rule). Checked against CPython by test/pyrandom.test.ts.
 */
const N = 624;
const M = 397;

export class PyRandom {
  private readonly mt = new Uint32Array(N);
  private mti = N + 1;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
    let s = Math.abs(seed);
    const key: number[] = [];
    do {
      key.push(s % 2 ** 32);
      s = Math.floor(s / 2 ** 32);
    } while (s > 0);
    this.initByArray(key);
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
    this.mti = N;
  }

  private initByArray(key: readonly number[]): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = ((mt[i]! ^ Math.imul(prev, 1664525)) + key[j]! + j) >>> 0;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = ((mt[i]! ^ Math.imul(prev, 1566083941)) - i) >>> 0;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1]!;
        i = 1;
      }
    }
    mt[0] = 0x80000000;
  }

  /** The next 32-bit output (genrand_uint32). */
  uint32(): number {
    const mt = this.mt;
    if (this.mti >= N) {
      let kk = 0;
      const mag = (y: number) => (y & 1 ? 0x9908b0df : 0);
      for (; kk < N - M; kk++) {
        const y = (mt[kk]! & 0x80000000) | (mt[kk + 1]! & 0x7fffffff);
        mt[kk] = mt[kk + M]! ^ (y >>> 1) ^ mag(y);
      }
      for (; kk < N - 1; kk++) {
        const y = (mt[kk]! & 0x80000000) | (mt[kk + 1]! & 0x7fffffff);
        mt[kk] = mt[kk + (M - N)]! ^ (y >>> 1) ^ mag(y);
      }
      const y = (mt[N - 1]! & 0x80000000) | (mt[0]! & 0x7fffffff);
      mt[N - 1] = mt[M - 1]! ^ (y >>> 1) ^ mag(y);
      this.mti = 0;
    }
    let y = mt[this.mti++]!;
    y ^= y >>> 11;
    y = (y ^ ((y << 7) & 0x9d2c5680)) >>> 0;
    y = (y ^ ((y << 15) & 0xefc60000)) >>> 0;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** getrandbits(k) for 1 ≤ k ≤ 32. */
  getrandbits(k: number): number {
    if (k < 1 || k > 32) throw new RangeError('getrandbits: 1 ≤ k ≤ 32 here');
    return this.uint32() >>> (32 - k);
  }

  /** random.Random._randbelow_with_getrandbits(n), n < 2^32. */
  randbelow(n: number): number {
    if (n <= 0) return 0;
    const k = Math.floor(Math.log2(n)) + 1; // n.bit_length()
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  /** random.Random.sample(population, k) (Lib/random.py): the pool method for small populations, else a set of indices. */
  sample<T>(population: readonly T[], k: number): T[] {
    const n = population.length;
    if (k < 0 || k > n) throw new RangeError('Sample larger than population or is negative');
    const result = new Array<T>(k);
    let setsize = 21;
    if (k > 5) setsize += 4 ** Math.ceil(Math.log(k * 3) / Math.log(4));
    if (n <= setsize) {
      const pool = [...population];
      for (let i = 0; i < k; i++) {
        const j = this.randbelow(n - i);
        result[i] = pool[j]!;
        pool[j] = pool[n - i - 1]!;
      }
    } else {
      const selected = new Set<number>();
      for (let i = 0; i < k; i++) {
        let j = this.randbelow(n);
        while (selected.has(j)) j = this.randbelow(n);
        selected.add(j);
        result[i] = population[j]!;
      }
    }
    return result;
  }
}

/** random.Random.random(): 53 bits from two outputs (CPython `random_random`). */
export function pyRandom53(r: PyRandom): number {
  const a = r.uint32() >>> 5;
  const b = r.uint32() >>> 6;
  return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

/**
 * lm-eval's bootstrap standard error (lm_eval/api/metrics.py v0.4.8 `bootstrap_stderr` / `_bootstrap_internal`):
 * chunks of min(1000, iters) resamples; chunk i uses `random.Random()` seeded with `i`, each resample is
 * `rnd.choices(xs, k=len(xs))` (Lib/random.py: `population[floor(random() * n)]`), and the result is the sample
 * standard deviation of `f` over all iters // chunk resamples, in chunk order (pool.imap keeps order).
 */
export function bootstrapStderr(f: (xs: Float64Array) => number, xs: readonly number[], iters: number): number {
  const chunk = Math.min(1000, iters);
  const n = xs.length;
  const values: number[] = [];
  const buf = new Float64Array(n);
  for (let i = 0; i < Math.floor(iters / chunk); i++) {
    const rnd = new PyRandom(i);
    for (let c = 0; c < chunk; c++) {
      for (let k = 0; k < n; k++) buf[k] = xs[Math.floor(pyRandom53(rnd) * n)]!;
      values.push(f(buf));
    }
  }
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1));
}
