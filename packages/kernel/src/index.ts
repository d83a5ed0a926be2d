/**
 * @topiary/kernel — the small, stable core: DI tokens and interfaces, the plugin contract and loader, recipe
 * validation, events, errors, atomic writes, seeded randomness and the generic pruning primitives.
 */
import 'reflect-metadata';

export * from './errors.js';
export * from './tokens.js';
export * from './events.js';
export * from './validate.js';
export * from './options.js';
export * from './plugin.js';
export * from './loader.js';
export * from './recipe.js';
export * from './container.js';
export * from './fused.js';
export * from './layers.js';
export type * from './interfaces/backend.js';
export type * from './interfaces/model.js';
export type * from './interfaces/tokenizer.js';
export * from './interfaces/saliency.js';
export type * from './interfaces/pruner.js';
export type * from './interfaces/scheduler.js';
export type * from './interfaces/evaluator.js';
export type * from './interfaces/stage.js';
export { inject, injectable, type DependencyContainer, type InjectionToken } from 'tsyringe';
