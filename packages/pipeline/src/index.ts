/**
 * @topiary/pipeline — runs recipes: a run's plugins in a container of its own, its backend, its stages (each a
 * plugin implementing the kernel's `Stage` contract), the run folder, checkpoints, resume and results.
 * Apps only parse arguments and print.
 */
export * from './backend-select.js';
