// Scripts, not tests: run one with `npx vitest run --config bench/prune/vitest.config.ts <name>` from the repo root.
// Vitest is used only as the TypeScript runner (workspace packages resolve to their sources).
import { defineConfig } from 'vitest/config';
import { sharedTestConfig } from '../../vitest.shared.js';

const base = sharedTestConfig('bench-prune');
export default defineConfig({
  ...base,
  test: { ...base.test, include: ['bench/prune/*.script.ts'], testTimeout: 600_000, root: '.' },
});
