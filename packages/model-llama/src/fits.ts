/**
 * Whether a whole model can be put on the tensor heap, checked before any weight is read — so a model too large
 * for the command's memory model is refused with the reason and the way round, not after minutes of loading.
 */
import * as tf from '@tensorflow/tfjs-core';
import { TopiaryError } from '@topiary/kernel';
import { parameterShapes, type LlamaConfig } from './config.js';

/** The wasm engine's heap is one wasm32 memory: 4 GiB at most, for every tensor of the process together. */
export const WASM_HEAP_BYTES = 4 * 2 ** 30;
/** Share of that heap the weights may take: the rest is left for activations, gradients and the allocator. */
const WEIGHT_SHARE = 0.85;

/** Bytes of the model's parameters as float32 tensors. */
export function float32Bytes(config: LlamaConfig): number {
  let n = 0;
  for (const shape of parameterShapes(config).values()) n += shape.reduce((a, d) => a * d, 1);
  return 4 * n;
}

/**
 * Refuse (E_USAGE, naming the checkpoint) a whole-model load that cannot fit the active engine's heap. Engines whose
 * tensors live in host memory (cpu, tfjs-node) are not limited here: the operating system is.
 */
export function checkWholeModelFits(config: LlamaConfig, where: string): void {
  const bytes = float32Bytes(config);
  if (tf.getBackend() !== 'wasm' || bytes <= WEIGHT_SHARE * WASM_HEAP_BYTES) return;
  const gib = (b: number): string => (b / 2 ** 30).toFixed(1);
  throw new TopiaryError(
    'E_USAGE',
    `this command needs the whole model on the tensor heap: ${gib(bytes)} GiB of float32 weights, and the wasm engine's heap holds 4 GiB in all (wasm32), weights at most ${gib(WEIGHT_SHARE * WASM_HEAP_BYTES)} GiB`,
    {
      file: where,
      hint: 'commands that stream one block at a time take any size: topiary prune (every method), eval, inspect. Generation, training, finetuning, export and recipes keep the whole model: use a smaller model, or a backend whose tensors live in host memory (--backend cpu, or node where it is installed)',
    },
  );
}
