// One place for the test settings every package uses. Workspace packages resolve to their TypeScript
// sources (the "source" export condition), so tests never run against a stale dist/.
import type { ViteUserConfig } from 'vitest/config';

export function sharedTestConfig(name: string): ViteUserConfig {
  return {
    resolve: { conditions: ['source'] },
    ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
    test: {
      name,
      include: ['test/**/*.test.ts'],
      testTimeout: 120_000,
      hookTimeout: 120_000,
      pool: 'forks',
    },
  };
}
