/**
 * End-to-end helpers shared by the pruners' tests: the shipped stories260K model on the wasm backend, the
 * calibration/eval windows dumped by bench/prune/fixture.script.ts, and the PyTorch reference's results on them.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { createWasmBackend } from '@topiary/backend-wasm';
import { EventBus, resolveNamed, createContainer, Tokens, type CausalLM, type PruneContext, type Saliency, type TensorBackend } from '@topiary/kernel';
import { loadModel } from '@topiary/model-llama';
import saliencyPlugin from '@topiary/saliency-basic';
import { readFileSync } from 'node:fs';
import { repoRoot, unpackBits, countDiff, f32 } from './fixture.js';

export const MODEL_DIR = join(repoRoot, 'assets', 'models', 'stories260K-hf');

export interface CalibrationFixture {
  samples: number;
  seqLen: number;
  calibration: number[][];
  eval: number[][];
}

export interface E2ERun {
  method: string;
  sparsity: number;
  pattern: string | null;
  owl: boolean;
  perplexity: number;
  measuredSparsity: number;
  layerSparsity: number[];
  outlierRatios: number[] | null;
  masks?: Record<string, string>;
  /** SparseGPT only: each layer's kept weights in row-major order (float32 base64); pruned entries are 0. */
  keptWeights?: Record<string, string>;
}

export interface E2EReference {
  dense: number;
  runs: Record<string, E2ERun>;
}

export const fixture = JSON.parse(readFileSync(join(repoRoot, 'bench', 'reference', 'fixtures', 'prune_calibration.json'), 'utf8')) as CalibrationFixture;
export const e2eReference = JSON.parse(readFileSync(join(repoRoot, 'bench', 'reference', 'outputs', 'prune_e2e.json'), 'utf8')) as E2EReference;

let backend: TensorBackend | undefined;

export async function wasmBackend(): Promise<TensorBackend> {
  if (!backend) {
    backend = createWasmBackend();
    await backend.init();
  }
  return backend;
}

/** A PruneContext on the wasm backend with the fixture's calibration windows and the basic saliencies. */
export async function pruneContext(events = new EventBus()): Promise<PruneContext> {
  const container = createContainer();
  saliencyPlugin.register(container, {});
  return {
    backend: await wasmBackend(),
    events,
    calibration: fixture.calibration.map((w) => Int32Array.from(w)),
    saliency: (name: string): Saliency => resolveNamed(container, Tokens.Saliency, name, 'saliency', '--saliency'),
  };
}

export async function loadShipped(): Promise<CausalLM> {
  await wasmBackend();
  return loadModel(MODEL_DIR);
}

/** exp(mean next-token NLL) over the fixture's eval windows — the reference's protocol. */
export function evalPerplexity(model: CausalLM): number {
  let total = 0;
  let windows = 0;
  for (let s = 0; s < fixture.eval.length; s += 8) {
    const batch = fixture.eval.slice(s, s + 8);
    const loss = tf.tidy(() => model.loss(tf.tensor2d(batch.flat(), [batch.length, batch[0]!.length], 'int32')));
    total += loss.dataSync()[0]! * batch.length;
    loss.dispose();
    windows += batch.length;
  }
  return Math.exp(total / windows);
}

/** Number of weights whose pruned/kept status differs from the reference's mask, per parameter. */
export function maskDifferences(model: CausalLM, masks: Record<string, string>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [param, bits] of Object.entries(masks)) {
    const w = model.readWeight(param);
    const keep = Uint8Array.from(w, (v) => (v === 0 ? 0 : 1));
    out.set(param, countDiff(keep, unpackBits(bits, w.length)));
  }
  return out;
}

/** Record every element mask a pruner sets on `model` (the exact keep arrays, not inferred from zero weights). */
export function recordMasks(model: CausalLM): Map<string, Uint8Array> {
  const masks = new Map<string, Uint8Array>();
  const set = model.setElementMask.bind(model);
  model.setElementMask = (param: string, keep: Uint8Array): void => {
    masks.set(param, keep.slice());
    set(param, keep);
  };
  // a mask can also come with the weight it masks (writeWeight with keep)
  const write = model.writeWeight.bind(model);
  model.writeWeight = (param: string, data: Float32Array, keep?: Uint8Array): void => {
    if (keep) masks.set(param, keep.slice());
    write(param, data, keep);
  };
  return masks;
}

export interface LayerComparison {
  param: string;
  /** Weights pruned on one side and kept on the other. */
  maskDiffs: number;
  /** max |w − w_ref| over the whole layer (pruned entries are 0 on both sides where the masks agree). */
  maxAbsDiff: number;
  /** max |w_ref|, for scale. */
  maxAbs: number;
}

/** Masks and weights of every reference layer against the pruned model (masks as recorded by `recordMasks`). */
export function compareWithReference(model: CausalLM, masks: Map<string, Uint8Array>, run: E2ERun): LayerComparison[] {
  return Object.entries(run.masks!).map(([param, bits]) => {
    const w = model.readWeight(param);
    const refKeep = unpackBits(bits, w.length);
    const kept = f32(run.keptWeights![param]!);
    const ref = new Float32Array(w.length);
    let k = 0;
    for (let i = 0; i < w.length; i++) if (refKeep[i] === 1) ref[i] = kept[k++]!;
    if (k !== kept.length) throw new Error(`${param}: ${kept.length} kept weights for ${k} kept positions`);
    let maxAbsDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < w.length; i++) {
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(w[i]! - ref[i]!));
      maxAbs = Math.max(maxAbs, Math.abs(ref[i]!));
    }
    const keep = masks.get(param);
    if (!keep) throw new Error(`${param}: the pruner set no mask`);
    return { param, maskDiffs: countDiff(keep, refKeep), maxAbsDiff, maxAbs };
  });
}
