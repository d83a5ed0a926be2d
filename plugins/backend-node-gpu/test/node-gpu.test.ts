import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { createContainer, resolveAllOrNone, Tokens } from '@topiary/kernel';
import plugin, { createNodeGpuBackend, inspectNativeInstall } from '../src/index.js';

function installed(): string {
  const root = mkdtempSync(join(tmpdir(), 'topiary-tfjs-node-gpu-'));
  const dir = join(root, 'node_modules', '@tensorflow', 'tfjs-node-gpu');
  mkdirSync(join(dir, 'lib', 'napi-v8'), { recursive: true });
  mkdirSync(join(dir, 'deps', 'lib'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: '@tensorflow/tfjs-node-gpu', version: '4.22.0' }));
  writeFileSync(join(dir, 'lib', 'napi-v8', 'tfjs_binding.node'), '');
  writeFileSync(join(dir, 'deps', 'lib', 'libtensorflow.so.2'), '');
  return root;
}

describe('backend-node-gpu', () => {
  it('registers one TensorBackend named node-gpu, ranked above every CPU backend', () => {
    const c = createContainer();
    plugin.register(c, {});
    const [b] = resolveAllOrNone(c, Tokens.TensorBackend);
    expect(b?.name).toBe('node-gpu');
    expect(b?.engine).toBe('tensorflow');
    expect(b?.priority).toBeGreaterThan(70);
    expect(b?.capabilities().device).toBe('gpu');
  });

  it('not installed: names the GPU package and its CUDA needs', async () => {
    const a = await createNodeGpuBackend({ searchPaths: [mkdtempSync(join(tmpdir(), 'topiary-empty-'))] }).available();
    expect(a.ok).toBe(false);
    if (a.ok) return;
    expect(a.reason).toContain('@tensorflow/tfjs-node-gpu is not installed');
    expect(a.fix).toContain('CUDA 11.2 and cuDNN 8.1');
  });

  it('installed on a machine without an NVIDIA driver: says the GPU is what is missing', () => {
    const r = inspectNativeInstall('gpu', { searchPaths: [installed()], nvidiaDriverFile: '/nonexistent/nvidia/version' });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toContain('no NVIDIA driver found');
      expect(r.fix).toContain('--backend node or wasm');
    }
  });
});

const real = createNodeGpuBackend();
const availability = await real.available();
if (!availability.ok) console.log(`skipped: real tfjs-node-gpu tests — ${availability.reason}`);
describe.skipIf(!availability.ok)('backend-node-gpu: the real engine', () => {
  it('activates libtensorflow on the GPU and multiplies', async () => {
    await real.init();
    expect(tf.getBackend()).toBe('tensorflow');
    expect(tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5, 6], [7, 8]])).arraySync()).toEqual([[19, 22], [43, 50]]);
  });
});
