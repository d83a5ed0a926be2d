/**
 * The fast subset of the fuzz stress (test/stress/fuzz.mjs): 100 mutated inputs per format, in-process. Each must
 * load or end in a TopiaryError naming the file or field; each case must finish quickly and not grow memory.
 * The stress run does 1000+ per format with a hard per-case timeout in a worker thread.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, test } from 'vitest';
// @ts-expect-error plain ESM shared with the stress runner (no type declarations)
import { mutations, prepare, runCase, targets } from './fuzz/targets.mjs';

interface Target {
  name: string;
}
interface CaseResult {
  outcome: 'ok' | 'typed' | 'unnamed' | 'untyped';
  code?: string;
  message?: string;
}

const PER_FORMAT = 100;
const SEED = 20251125;
const root = mkdtempSync(join(tmpdir(), 'topiary-fuzz-fast-'));

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

describe(`fuzz: ${PER_FORMAT} mutated inputs per format end in a loaded model or a typed, located error`, () => {
  for (const target of targets as Target[]) {
    test(target.name, async () => {
      const file = prepare(target, root);
      const list = mutations(target, PER_FORMAT, SEED);
      const failures: string[] = [];
      const tally: Record<string, number> = {};
      const tensorsBefore = tf.memory().numTensors;
      const rssBefore = process.memoryUsage().rss;
      let slowest = 0;
      for (let i = 0; i < list.length; i++) {
        const t0 = performance.now();
        const r = (await runCase(target, file, list[i])) as CaseResult;
        slowest = Math.max(slowest, performance.now() - t0);
        tally[r.outcome] = (tally[r.outcome] ?? 0) + 1;
        if (r.outcome !== 'ok' && r.outcome !== 'typed') failures.push(`#${i} ${r.outcome} ${r.code ?? ''}: ${r.message ?? ''}`);
      }
      console.log(`${target.name}: ${JSON.stringify(tally)}, slowest case ${slowest.toFixed(0)} ms`);
      expect(failures).toEqual([]);
      expect(tally.typed ?? 0).toBeGreaterThan(PER_FORMAT / 2); // the mutations really break the files
      expect(slowest).toBeLessThan(2000);
      expect(tf.memory().numTensors).toBe(tensorsBefore); // models that did load were released
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(256 * 2 ** 20);
    });
  }
});
