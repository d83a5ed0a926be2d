/**
 * @topiary/prune-core — what Topiary's post-training pruners share: the sequential layer-wise calibration driver
 * (collect statistics → apply), mask selection (row / layer / N:M), OWL layer ratios, option validation and
 * sparsity reports. One concept, one place: the methods (magnitude, Wanda, SparseGPT) only implement `apply`.
 */
export * from './masks.js';
export * from './owl.js';
export * from './options.js';
export * from './layerwise.js';
export * from './report.js';
export * from './saliency-method.js';
export * from './score-pruner.js';
