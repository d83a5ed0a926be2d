// The performance leak check (not part of `pnpm test`): cd test && npx vitest run --config stress/perf-leaks.vitest.config.ts
import { defineConfig } from 'vitest/config';
import { sharedTestConfig } from '../../vitest.shared.js';

const config = sharedTestConfig('stress-perf-leaks');
export default defineConfig({ ...config, test: { ...config.test, include: ['stress/perf-leaks.test.ts'], root: '.', testTimeout: 900_000 } });
