/**
 * @topiary/block-executor — passes over a causal LM one block at a time. The hidden states at a block boundary (all
 * sequences × positions × dim) live in host memory between blocks, off the tensor heap; each block runs over every
 * batch before the next block starts. A streamed model (`residency: 'block'`) then holds only the block being
 * computed; an in-memory model computes exactly the same numbers (each batch runs the same operations either way).
 */
export { Activations, windowBatches, type ActivationOptions, type Batch } from './activations.js';
export { passes, DEFAULT_ACTIVATION_BYTES } from './passes.js';
export { StateStore } from './store.js';
