import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TopiaryError } from '@topiary/kernel';
import { createRunContext, type GlobalOptions } from '../src/context.js';

const options = (backend: string): GlobalOptions => ({ backend, seed: 0, json: true, quiet: true, debug: false, plugin: [], allowPluginPath: false });

describe('RunContext.activateBackend', () => {
  it('--backend auto activates the highest-priority installed backend that loads (native when its addon is built, else wasm) and says so', async () => {
    const nativeBuilt = existsSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'plugins', 'backend-native', 'native', 'build', 'Release', 'topiary_blas.node'));
    const expected = nativeBuilt ? 'native' : 'wasm';
    const ctx = await createRunContext(options('auto'));
    const messages: string[] = [];
    ctx.events.on('log', (e) => messages.push(e.message));
    try {
      const choice = await ctx.activateBackend();
      expect(choice.backend.name).toBe(expected);
      // Only init() finds out which wasm build runs / which BLAS the addon loaded.
      const notes = choice.backend.capabilities().notes;
      expect(notes[0]).toMatch(nativeBuilt ? /^matrix products: OpenBLAS/ : /^BatchMatMul \(float32\): Topiary's WebAssembly SIMD GEMM on \d+ thread/);
      if (!nativeBuilt) expect(notes.join('\n')).toMatch(/tfjs-backend-wasm-(simd|threaded-simd|plain)\.wasm/);
      expect(messages.some((m) => m.startsWith(`backend auto → ${expected}`))).toBe(true);
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
