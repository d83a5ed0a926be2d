// Root run over every package's tests: one process, one summary.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: ['packages/*/vitest.config.ts', 'plugins/*/vitest.config.ts', 'apps/*/vitest.config.ts', 'examples/*/vitest.config.ts', 'test/vitest.config.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
