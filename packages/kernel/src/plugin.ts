/**
 * The plugin contract. A plugin is a plain object made by `definePlugin`: a name and a `register` that binds
 * implementations to kernel tokens in the container it is given. Plugins hold no global state and never register
 * anything at import time.
 *
 * What a plugin *is* — its version, the kernel range it works with and what it provides — is written once, in its
 * package.json (`version`, `peerDependencies["@topiary/kernel"]`, `"topiary": { "provides": ... }`), where
 * discovery reads it without running any code. The loader checks the range before importing and checks, when it
 * registers the plugin, that `register` binds exactly what `provides` declares.
 */
import { createRequire } from 'node:module';
import type { DependencyContainer } from 'tsyringe';
import { TopiaryError } from './errors.js';
import type { z } from './options.js';

const kernelPackage = createRequire(import.meta.url)('../package.json') as { version: string };
export const KERNEL_VERSION: string = kernelPackage.version;

/** What a plugin provides, by kind; mirrors the `"topiary"` field of its package.json. */
export interface PluginProvides {
  backends?: readonly string[];
  pruners?: readonly string[];
  saliency?: readonly string[];
  schedulers?: readonly string[];
  evaluators?: readonly string[];
  formats?: readonly string[];
  tokenizers?: readonly string[];
  stages?: readonly string[];
}

/** Which `provides` kind each token's registrations count under (what `register` is checked against). */
export const PROVIDES_KIND_OF_TOKEN: Readonly<Record<string, keyof PluginProvides>> = Object.freeze({
  'topiary:TensorBackend': 'backends',
  'topiary:Pruner': 'pruners',
  'topiary:Saliency': 'saliency',
  'topiary:Scheduler': 'schedulers',
  'topiary:Evaluator': 'evaluators',
  'topiary:ModelFormat': 'formats',
  'topiary:TokenizerFactory': 'tokenizers',
  'topiary:Stage': 'stages',
});

export interface PluginDefinition<Options = Record<string, unknown>> {
  /** Short name recipes write (`wanda`, `backend-wasm`); the package.json's `"topiary".plugin`. */
  name: string;
  description?: string;
  /**
   * Its own options (a backend's threads, a criterion's exponent), declared once as a schema: the host validates
   * what it is given (errors name `plugins.<name>.<field>`) and hands `register` the typed value with defaults.
   */
  options?: z.ZodType<Options>;
  register(container: DependencyContainer, options: Options): void;
}

export type TopiaryPlugin<Options = Record<string, unknown>> = Readonly<PluginDefinition<Options>>;

const NAME = /^[a-z0-9][a-z0-9-]*$/;

export function definePlugin<Options = Record<string, unknown>>(definition: PluginDefinition<Options>): TopiaryPlugin<Options> {
  if (!NAME.test(definition.name)) {
    throw new TopiaryError('E_PLUGIN_INVALID', `plugin name "${definition.name}" must be lowercase letters, digits and dashes`, {
      where: 'definePlugin.name',
    });
  }
  if (typeof definition.register !== 'function') {
    throw new TopiaryError('E_PLUGIN_INVALID', `plugin "${definition.name}" has no register function`, { where: 'definePlugin.register' });
  }
  return Object.freeze({ ...definition });
}

export function isTopiaryPlugin(value: unknown): value is TopiaryPlugin {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as TopiaryPlugin).name === 'string' &&
    typeof (value as TopiaryPlugin).register === 'function'
  );
}
