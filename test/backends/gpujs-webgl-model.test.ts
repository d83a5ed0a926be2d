/**
 * stories260K on the gpujs backend with gpu.js on WebGL (headless-gl; under Xvfb that is Mesa llvmpipe) against
 * the default backend (wasm): the block-by-block forward and a Wanda prune give the same perplexity to 1e-4
 * relative. What runs where: the forward's tensor ops are tfjs's cpu engine on gpujs (by design: gpu.js kernels
 * serve the pruning primitives), and Wanda's statistic — the squared input-feature norms of every linear layer
 * over the calibration windows — is a gpu.js WebGL kernel (the test counts its runs and asserts their kind).
 * Skips with the printed reason where there is no WebGL context (headless-gl not built, or no Xvfb).
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { createGpujsBackend, ensureWebGL } from '@topiary/backend-gpujs';
import { createWasmBackend } from '@topiary/backend-wasm';
import { createContainer, EventBus, parseOptions, resolveNamed, Tokens, type CausalLM, type PruneContext, type Saliency, type TensorBackend } from '@topiary/kernel';
import { loadModel } from '@topiary/model-llama';
import { wandaPruner } from '@topiary/pruner-wanda';
import saliencyPlugin from '@topiary/saliency-basic';
import { evalPerplexity, fixture, MODEL_DIR } from '../../packages/prune-core/test/e2e-helpers.js';
import { relDiff } from './harness.js';

const { probe, started } = await ensureWebGL();
if (!probe.ok) console.log(`skipped: stories260K on gpujs-webgl — ${probe.reason} (fix: ${probe.fix})`);

const RELATIVE = 1e-4;

interface Side {
  /** Hidden states after the embedding and after each block, for the first 4 eval windows. */
  hidden: Float32Array[];
  dense: number;
  pruned: number;
  masks: Map<string, Uint8Array>;
}

async function runOn(backend: TensorBackend): Promise<Side> {
  await backend.init();
  const model: CausalLM = await loadModel(MODEL_DIR);
  try {
    const ids = fixture.eval.slice(0, 4);
    const hidden: Float32Array[] = [];
    tf.tidy(() => {
      let h = model.embed(tf.tensor2d(ids.flat(), [ids.length, ids[0]!.length], 'int32'));
      hidden.push(h.dataSync() as Float32Array);
      for (let i = 0; i < model.config.nLayers; i++) {
        h = model.block(i, h);
        hidden.push(h.dataSync() as Float32Array);
      }
    });
    const dense = evalPerplexity(model);
    const container = createContainer();
    saliencyPlugin.register(container, {});
    const ctx: PruneContext = {
      backend,
      events: new EventBus(),
      calibration: fixture.calibration.map((w) => Int32Array.from(w)),
      saliency: (name: string): Saliency => resolveNamed(container, Tokens.Saliency, name, 'saliency', '--saliency'),
    };
    await wandaPruner.prune(model, parseOptions(wandaPruner.options, { sparsity: 0.5 }, ''), ctx);
    const masks = new Map(model.linears().map((l) => [l.param, Uint8Array.from(model.readWeight(l.param), (v) => (v === 0 ? 0 : 1))]));
    return { hidden, dense, pruned: evalPerplexity(model), masks };
  } finally {
    model.dispose();
  }
}

describe.skipIf(!probe.ok)('stories260K: gpujs on WebGL agrees with wasm', () => {
  afterAll(() => started?.stop());

  it('block forward and Wanda 50 % perplexity within 1e-4 relative; Wanda statistics ran as WebGL kernels', async () => {
    const wasm = await runOn(createWasmBackend());
    const gpujs = createGpujsBackend({ mode: 'webgl' });
    const before = gpujs.kernelRuns;
    const gl = await runOn(gpujs);
    // every gpu.js kernel that ran was a WebGL one (mode webgl turns a CPU fallback into an error)
    expect(gpujs.gpuMode).toBe('headlessgl');
    expect(gpujs.renderer).toBe(probe.ok ? probe.renderer : '');
    // Wanda's column squares: one run per 256-row block of each distinct linear input (5 blocks × 4 inputs here)
    expect(gpujs.kernelRuns - before).toBeGreaterThanOrEqual(20);
    expect(wasm.hidden.length).toBe(gl.hidden.length);
    const blockDiffs = wasm.hidden.map((h, i) => relDiff(gl.hidden[i]!, h));
    let maskDiffs = 0;
    for (const [param, keep] of wasm.masks) {
      const other = gl.masks.get(param)!;
      for (let i = 0; i < keep.length; i++) if (keep[i] !== other[i]) maskDiffs++;
    }
    console.log(
      `stories260K on ${probe.ok ? probe.renderer : ''}: block outputs max relative difference ${blockDiffs.map((d) => d.toExponential(1)).join(' ')}; ` +
        `dense ppl wasm ${wasm.dense.toFixed(6)} gpujs ${gl.dense.toFixed(6)} (rel ${(Math.abs(gl.dense - wasm.dense) / wasm.dense).toExponential(2)}); ` +
        `Wanda 50 % ppl wasm ${wasm.pruned.toFixed(6)} gpujs ${gl.pruned.toFixed(6)} (rel ${(Math.abs(gl.pruned - wasm.pruned) / wasm.pruned).toExponential(2)}); ` +
        `mask entries that differ: ${maskDiffs}; gpu.js kernel runs ${gpujs.kernelRuns - before}`,
    );
    for (const d of blockDiffs) expect(d).toBeLessThan(RELATIVE);
    expect(Math.abs(gl.dense - wasm.dense) / wasm.dense).toBeLessThan(RELATIVE);
    expect(Math.abs(gl.pruned - wasm.pruned) / wasm.pruned).toBeLessThan(RELATIVE);
    gpujs.dispose();
  });
});
