import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createContainer, provide, Tokens, TopiaryError } from '@topiary/kernel';
import { selectBackend } from '@topiary/pipeline';
import { createNodeBackend, inspectNativeInstall } from '../src/index.js';

/** A project folder with a fake tfjs-node install in the given state. */
function project(state: { version?: string; addon?: boolean; lib?: boolean } | 'absent'): string {
  const root = mkdtempSync(join(tmpdir(), 'topiary-tfjs-node-'));
  if (state === 'absent') return root;
  const dir = join(root, 'node_modules', '@tensorflow', 'tfjs-node');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: '@tensorflow/tfjs-node', version: state.version ?? '4.22.0', main: 'index.js' }));
  writeFileSync(join(dir, 'index.js'), 'throw new Error("The Node.js native addon module (tfjs_binding.node) can not be found");\n');
  if (state.addon) {
    mkdirSync(join(dir, 'lib', 'napi-v8'), { recursive: true });
    writeFileSync(join(dir, 'lib', 'napi-v8', 'tfjs_binding.node'), '');
  }
  if (state.lib) {
    mkdirSync(join(dir, 'deps', 'lib'), { recursive: true });
    writeFileSync(join(dir, 'deps', 'lib', 'libtensorflow.so.2'), '');
  }
  return root;
}

describe('backend-node: detecting a missing or broken @tensorflow/tfjs-node', () => {
  it('not installed: says so and how to install it', () => {
    const r = inspectNativeInstall('cpu', { searchPaths: [project('absent')] });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toBe('@tensorflow/tfjs-node is not installed (it is an optional peer dependency of @topiary/backend-node)');
    expect(r.fix).toContain('npm install @tensorflow/tfjs-node@4.22.0');
    expect(r.fix).toContain('pnpm approve-builds');
  });

  it('installed without its addon (install script failed): names the missing file and the offline fix', () => {
    const r = inspectNativeInstall('cpu', { searchPaths: [project({})] });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toContain('native addon (lib/napi-v*/tfjs_binding.node) is missing');
    expect(r.fix).toContain('npm rebuild @tensorflow/tfjs-node');
    expect(r.fix).toContain('libtensorflow-cpu-linux-x86_64-2.9.1.tar.gz');
    expect(r.fix).toContain('--build-addon-from-source');
    expect(r.fix).toContain(join('deps', 'lib', 'libtensorflow.so.2'));
  });

  it('addon present but libtensorflow missing: names the library', () => {
    const r = inspectNativeInstall('cpu', { searchPaths: [project({ addon: true })] });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain('not libtensorflow 2.9.1 (libtensorflow.so.2 is in neither');
  });

  it('another version: refuses, since two tfjs versions are two engines', () => {
    const r = inspectNativeInstall('cpu', { searchPaths: [project({ version: '4.10.0', addon: true, lib: true })] });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toContain('@tensorflow/tfjs-node 4.10.0 is installed');
  });

  it('files present but the package does not load: available() reports the load error and never throws', async () => {
    const backend = createNodeBackend({ searchPaths: [project({ addon: true, lib: true })] });
    const a = await backend.available();
    expect(a.ok).toBe(false);
    if (!a.ok) expect(a.reason).toMatch(/failed to load|its own copy of @tensorflow\/tfjs/);
  });

  it('--backend node on a machine without it raises E_BACKEND with the reason and the fix', async () => {
    const c = createContainer();
    provide(c, Tokens.TensorBackend, createNodeBackend({ searchPaths: [project({})] }));
    const err = await selectBackend(c, 'node').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TopiaryError);
    expect((err as TopiaryError).code).toBe('E_BACKEND');
    expect((err as TopiaryError).message).toContain('tfjs_binding.node');
    expect((err as TopiaryError).hint).toContain('npm rebuild');
  });
});

// The real engine, where it loads (never on our CI machines: tfjs-node is not installed by default).
const real = createNodeBackend();
const realAvailability = await real.available();
if (!realAvailability.ok) console.log(`skipped: real tfjs-node tests — ${realAvailability.reason}`);
describe.skipIf(!realAvailability.ok)('backend-node: the real engine', () => {
  it('activates libtensorflow and multiplies', async () => {
    await real.init();
    expect(tf.getBackend()).toBe('tensorflow');
    expect(tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5, 6], [7, 8]])).arraySync()).toEqual([[19, 22], [43, 50]]);
  });
});
