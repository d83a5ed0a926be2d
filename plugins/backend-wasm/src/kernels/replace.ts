/**
 * Replacing one of tfjs-wasm's kernel registrations with ours while keeping the stock one (to call for the cases ours
 * leaves to it, and to put back): the registry is public (getKernel → unregisterKernel → registerKernel), and the
 * stock config rides on ours under `marker`, so installing twice does not wrap the wrapper.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc } from '@tensorflow/tfjs-core';

type Marked = KernelConfig & { [marker: symbol]: KernelConfig | undefined };

/** Register `make(stock)` for wasm's `name` (its setup and dispose kept), unless ours is there already. */
export function replaceWasmKernel(name: string, marker: symbol, make: (stock: KernelConfig) => KernelFunc): void {
  const current = tf.getKernel(name, 'wasm') as Marked | undefined;
  if (!current || current[marker]) return;
  const replacement: Marked = { ...current, kernelFunc: make(current) };
  replacement[marker] = current;
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel(replacement);
}

/** Put wasm's stock `name` back where ours (registered with `marker`) is. */
export function restoreWasmKernel(name: string, marker: symbol): void {
  const current = tf.getKernel(name, 'wasm') as Marked | undefined;
  const stock = current?.[marker];
  if (!stock) return;
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel(stock);
}
