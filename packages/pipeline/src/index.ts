/**
 * @topiary/pipeline — runs recipes: a run's plugins in a container of its own, its backend, its stages (each
 * implementing the kernel's `Stage` contract — the pipeline's own prune, eval, finetune and train, and any a
 * plugin adds), the run folder, checkpoints, resume and results. Apps only parse arguments and print.
 */
export * from './backend-select.js';
export * from './run.js';
export * from './model-io.js';
export { ggufVocab } from './gguf-vocab.js';
export * from './streaming.js';
export * from './hub-cache.js';
export * from './run-folder.js';
export * from './recipe-paths.js';
export * from './execute.js';
export * from './recipe-schema.js';
export * from './stages/env.js';
export * from './stages/prune.js';
export * from './stages/eval.js';
export * from './stages/finetune.js';
export * from './stages/train.js';
export { builtinStages, stagesPlugin, STAGES_MANIFEST } from './stages/index.js';
export { stagesPlugin as default } from './stages/index.js';
