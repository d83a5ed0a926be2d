// Root run over every package's tests: one process, one summary.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: ['packages/*', 'plugins/*', 'apps/*', 'examples/*', 'test'],
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
