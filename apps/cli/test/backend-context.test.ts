import { describe, expect, it } from 'vitest';
import { TopiaryError } from '@topiary/kernel';
import { createRunContext, type GlobalOptions } from '../src/context.js';

const options = (backend: string): GlobalOptions => ({ backend, seed: 0, json: true, quiet: true, debug: false, plugin: [], allowPluginPath: false });

describe('RunContext.activateBackend', () => {
  it('--backend auto activates the highest-priority installed backend that loads (wasm here) and says so', async () => {
    const ctx = await createRunContext(options('auto'));
    const messages: string[] = [];
    ctx.events.on('log', (e) => messages.push(e.message));
    try {
      const choice = await ctx.activateBackend();
      expect(choice.backend.name).toBe('wasm');
      // Only init() finds out which wasm build runs.
      expect(choice.backend.capabilities().notes[0]).toMatch(/^runs tfjs-backend-wasm-/);
      expect(messages.some((m) => m.startsWith('backend auto → wasm'))).toBe(true);
    } finally {
      ctx.close();
    }
  });

  it('an unknown --backend lists the installed backends', async () => {
    const ctx = await createRunContext(options('webgl'));
    try {
      const err = await ctx.activateBackend().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TopiaryError);
      expect((err as TopiaryError).code).toBe('E_PLUGIN_UNKNOWN');
      expect((err as TopiaryError).hint).toContain('wasm');
    } finally {
      ctx.close();
    }
  });
});
