/** Every built-in task parses every record of its real data file (shared data; skipped with a reason when absent). */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtinTasks, loadTaskItems } from '../src/index.js';

// Same convention as the repo's test/data.ts (imported by path it would sit outside this package's rootDir).
const sharedData = process.env.TOPIARY_SHARED_DATA ?? resolve(import.meta.dirname, '..', '..', '..', '..', 'shared', 'data');
const hasSharedData = existsSync(join(sharedData, 'MANIFEST.md'));
if (!hasSharedData) console.log(`skipped: the full task data files need ${sharedData} (the shared data folder beside the checkout), which is absent`);

const expected: Record<string, number> = {
  piqa: 1838, hellaswag: 10042, arc_easy: 2376, arc_challenge: 1172, 'arc-easy-dev': 570, 'arc-challenge-dev': 299,
  winogrande: 1267, boolq_nopassage: 3270, openbookqa: 500, social_iqa: 1954, 'hellaswag-mini': 100, 'arc-easy-dev-mini': 200,
  lambada_openai: 5153,
};

describe.skipIf(!hasSharedData)('task data files (MANIFEST §4)', () => {
  for (const task of builtinTasks) {
    it(`${task.name}: all ${expected[task.name]} items parse, labels in range, choices non-empty`, async () => {
      const { items } = await loadTaskItems(task, undefined, { dataDirs: [join(import.meta.dirname, '..', 'data'), join(sharedData, 'eval')] });
      expect(items.length).toBe(expected[task.name]);
      for (const item of items) {
        expect(item.label).toBeGreaterThanOrEqual(0);
        expect(item.label).toBeLessThan(item.requests.length);
        for (const r of item.requests) expect(r.continuation.trim().length).toBeGreaterThan(0);
      }
    });
  }
});
