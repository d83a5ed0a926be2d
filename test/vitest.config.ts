import { defineConfig } from 'vitest/config';
import { sharedTestConfig } from '../vitest.shared.js';

const config = sharedTestConfig('cross-package');
export default defineConfig({ ...config, test: { ...config.test, include: ['**/*.test.ts'], exclude: ['**/node_modules/**', 'stress/**'] } });
