import { describe, expect, it } from 'vitest';
import { createContainer, provide, Tokens, TopiaryError, type BackendAvailability, type TensorBackend } from '@topiary/kernel';
import { activateBackend, selectBackend } from '../src/index.js';
import { genericPrimitives } from '@topiary/linalg';

function fake(name: string, priority: number, availability: BackendAvailability, log: string[] = []): TensorBackend {
  return {
    name,
    engine: name,
    priority,
    available: async () => availability,
    init: async () => {
      log.push(`init ${name}`);
    },
    capabilities: () => ({ device: 'cpu', threads: 1, simd: false, float64: false, notes: [] }),
    primitives: genericPrimitives,
  };
}

function containerWith(...backends: TensorBackend[]) {
  const c = createContainer();
  for (const b of backends) provide(c, Tokens.TensorBackend, b);
  return c;
}

async function caught(p: Promise<unknown>): Promise<TopiaryError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TopiaryError) return err;
    throw err;
  }
  throw new Error('expected a TopiaryError');
}

describe('selectBackend', () => {
  const missing = { ok: false as const, reason: 'libtensorflow is missing', fix: 'npm rebuild @tensorflow/tfjs-node' };

  it('auto picks the highest-priority available backend and says why', async () => {
    const c = containerWith(fake('cpu', 10, { ok: true }), fake('node', 80, missing), fake('wasm', 50, { ok: true }));
    const choice = await selectBackend(c, 'auto');
    expect(choice.backend.name).toBe('wasm');
    expect(choice.message).toContain('backend auto → wasm');
    expect(choice.message).toContain('node unavailable (libtensorflow is missing)');
    expect(choice.considered.map((x) => x.name)).toEqual(['node', 'wasm', 'cpu']);
  });

  it('auto survives a plugin whose available() throws', async () => {
    const broken = fake('broken', 99, { ok: true });
    broken.available = async () => {
      throw new Error('boom');
    };
    const choice = await selectBackend(containerWith(broken, fake('cpu', 10, { ok: true })), 'auto');
    expect(choice.backend.name).toBe('cpu');
    expect(choice.message).toContain('available() threw: boom');
  });

  it('auto with nothing available raises E_BACKEND with every reason and fix', async () => {
    const err = await caught(selectBackend(containerWith(fake('node', 80, missing)), 'auto'));
    expect(err.code).toBe('E_BACKEND');
    expect(err.message).toContain('node: libtensorflow is missing');
    expect(err.hint).toContain('npm rebuild');
  });

  it('a named backend is returned as requested', async () => {
    const choice = await selectBackend(containerWith(fake('cpu', 10, { ok: true }), fake('wasm', 50, { ok: true })), 'cpu');
    expect(choice.backend.name).toBe('cpu');
    expect(choice.message).toContain('as requested');
  });

  it('an unknown name lists the installed backends', async () => {
    const err = await caught(selectBackend(containerWith(fake('wasm', 50, { ok: true }), fake('cpu', 10, { ok: true })), 'webgl'));
    expect(err.code).toBe('E_PLUGIN_UNKNOWN');
    expect(err.where).toBe('--backend');
    expect(err.hint).toBe('installed backends: cpu, wasm (or auto)');
  });

  it('an unavailable named backend raises E_BACKEND with its reason and fix', async () => {
    const err = await caught(selectBackend(containerWith(fake('node', 80, missing)), 'node'));
    expect(err.code).toBe('E_BACKEND');
    expect(err.message).toBe('backend node cannot load here: libtensorflow is missing');
    expect(err.hint).toBe('npm rebuild @tensorflow/tfjs-node');
    expect(err.exitCode).toBe(1);
  });

  it('no backend installed at all says how to install one', async () => {
    const err = await caught(selectBackend(createContainer(), 'auto'));
    expect(err.code).toBe('E_BACKEND');
    expect(err.hint).toContain('@topiary/backend-wasm');
  });

  it('activateBackend calls init() on the chosen backend only', async () => {
    const log: string[] = [];
    const c = containerWith(fake('cpu', 10, { ok: true }, log), fake('wasm', 50, { ok: true }, log));
    const choice = await activateBackend(c, 'auto');
    expect(choice.backend.name).toBe('wasm');
    expect(log).toEqual(['init wasm']);
  });

  it('activateBackend wraps a non-Topiary init failure in E_BACKEND', async () => {
    const b = fake('wasm', 50, { ok: true });
    b.init = async () => {
      throw new Error('wasm binary not found');
    };
    const err = await caught(activateBackend(containerWith(b), 'wasm'));
    expect(err.code).toBe('E_BACKEND');
    expect(err.message).toContain('wasm binary not found');
  });
});
