/**
 * What every command shares: global flags, the run's event bus and renderer, and the plugins installed for
 * this project, registered into a container of the run's own.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createContainer, discoverPlugins, EventBus, importPlugin, isTopiaryError, importPluginFromPath, PluginHost, selectPlugins, Tokens, type DependencyContainer, type DiscoveredPlugin, type TopiaryPlugin } from '@topiary/kernel';
import { activateBackend as activateTensorBackend, type BackendChoice } from '@topiary/pipeline';
import { renderAuto, renderJsonLines } from './render.js';

export interface GlobalOptions {
  backend: string;
  seed: number;
  json: boolean;
  quiet: boolean;
  debug: boolean;
  out?: string;
  /** Extra plugin folders/files to load (needs allowPluginPath). */
  plugin: string[];
  allowPluginPath: boolean;
}

const cliDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Where installed plugins are looked for: the working directory's project, then the CLI's own install. */
export function pluginSearchRoots(cwd = process.cwd()): string[] {
  return [cwd, cliDir];
}

export function installedPlugins(cwd = process.cwd()): DiscoveredPlugin[] {
  return discoverPlugins(pluginSearchRoots(cwd));
}

export interface RunContext {
  options: GlobalOptions;
  container: DependencyContainer;
  events: EventBus;
  plugins: TopiaryPlugin[];
  installed: DiscoveredPlugin[];
  /**
   * Select the tensor backend named by `--backend` (or `auto`), initialise it, and log which one runs and why.
   * Commands that compute call this once before touching tensors.
   */
  activateBackend(): Promise<BackendChoice>;
  /** Stop rendering events. */
  close(): void;
}

/**
 * Load every installed plugin (and any explicit path plugins) into a fresh container. `required` are names a
 * recipe asked for: each must be installed, or the error lists what is.
 */
export async function createRunContext(options: GlobalOptions, required: readonly string[] = []): Promise<RunContext> {
  const installed = installedPlugins();
  selectPlugins(installed, required);
  const events = new EventBus();
  // Events go to stderr so stdout stays clean for --json results.
  const stop = options.json
    ? renderJsonLines(events, process.stderr, { quiet: true, debug: options.debug })
    : renderAuto(events, process.stderr, { quiet: options.quiet, debug: options.debug });
  const container = createContainer();
  const host = new PluginHost(container);
  const plugins: TopiaryPlugin[] = [];
  const requiredSet = new Set(required);
  // One broken or incompatible plugin must not take every command down: it is skipped with a warning, unless the
  // recipe names it (then its error is the answer). Path plugins were asked for explicitly, so they always throw.
  for (const found of installed) {
    try {
      const plugin = await importPlugin(found);
      host.use(plugin);
      plugins.push(plugin);
    } catch (e) {
      if (requiredSet.has(found.name) || requiredSet.has(found.packageName) || !isTopiaryError(e)) {
        stop();
        throw e;
      }
      events.log('warn', `plugin ${found.name} (${found.packageName}) skipped: ${e.describe()}`);
    }
  }
  for (const path of options.plugin) {
    const plugin = await importPluginFromPath(path, options.allowPluginPath);
    host.use(plugin);
    plugins.push(plugin);
  }
  host.freeze();
  container.register(Tokens.Events, { useValue: events });
  const activateBackend = async (): Promise<BackendChoice> => {
    const choice = await activateTensorBackend(container, options.backend);
    events.log('info', choice.message);
    for (const note of choice.backend.capabilities().notes) events.log('debug', `backend ${choice.backend.name}: ${note}`);
    return choice;
  };
  return { options, container, events, plugins, installed, activateBackend, close: stop };
}
