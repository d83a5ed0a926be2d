import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { createContainer, EventBus, resolveNamed, Tokens, type PruneContext, type TensorBackend } from '@topiary/kernel';
import taylor from '@topiary/saliency-taylor';

export const root = join(import.meta.dirname, '..', '..', '..');
export const shippedModel = join(root, 'assets/models/stories260K-hf');

export interface CalibrationFixture {
  samples: number;
  seqLen: number;
  batchSize: number;
  windows: number[][];
}

export function calibration(): { windows: Int32Array[]; batchSize: number } {
  const fx = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures', 'calibration.json'), 'utf8')) as CalibrationFixture;
  return { windows: fx.windows.map((w) => Int32Array.from(w)), batchSize: fx.batchSize };
}

/** Prefer wasm (fast gradients); fall back to cpu. */
export async function useFastBackend(): Promise<string> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    if (await tf.setBackend('wasm')) return 'wasm';
  } catch {
    // fall through
  }
  await tf.setBackend('cpu');
  return 'cpu';
}

export function pruneContext(windows: readonly Int32Array[]): PruneContext {
  const container = createContainer();
  taylor.register(container, {});
  return {
    backend: {} as TensorBackend,
    events: new EventBus(),
    calibration: windows,
    saliency: (name: string) => resolveNamed(container, Tokens.Saliency, name, 'saliency', '--saliency'),
  };
}
