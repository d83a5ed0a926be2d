/**
 * @topiary/linalg — host-side numerics every room shares, on plain typed arrays: the generic pruning primitives
 * (Gram accumulation, float64 Cholesky and inverses, lowest-k / per-row / N:M masks) that backends override where
 * they are faster, and a seeded random generator whose state can be saved and restored.
 */
export * from './factor.js';
export * from './primitives.js';
export * from './select.js';
export * from './rng.js';
