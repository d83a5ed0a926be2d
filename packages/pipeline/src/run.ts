/**
 * A run: the plugins installed for the project (and any explicit path plugins), registered into a container of
 * the run's own, its event bus and its backend. Two runs in one process never see each other's plugins: each has
 * its own child container, and nothing is registered globally.
 */
import {
  createContainer,
  discoverPlugins,
  EventBus,
  importPlugin,
  importPluginFromPath,
  isTopiaryError,
  PluginHost,
  selectPlugins,
  Tokens,
  type DependencyContainer,
  type DiscoveredPlugin,
  type TopiaryPlugin,
} from '@topiary/kernel';
import { activateBackend as activateTensorBackend, type BackendChoice } from './backend-select.js';
import { stagesPlugin, STAGES_MANIFEST } from './stages/index.js';

export interface RunOptions {
  /** Backend name, or `auto`. */
  backend: string;
  seed: number;
  /** Extra plugin folders/files to load (needs allowPluginPath). */
  plugin: readonly string[];
  allowPluginPath: boolean;
}

export interface RunContext {
  options: RunOptions;
  container: DependencyContainer;
  events: EventBus;
  plugins: TopiaryPlugin[];
  installed: DiscoveredPlugin[];
  /** Select the tensor backend named by the options (or `auto`), initialise it, and log which one runs and why. */
  activateBackend(): Promise<BackendChoice>;
  /** Stop whatever was attached to the run (renderers). */
  close(): void;
}

/**
 * Load every installed plugin visible from `searchRoots` (and any explicit path plugins) into a fresh container,
 * with the pipeline's own stages. `required` are names a recipe asked for: each must be installed, or the error
 * lists what is. One broken or incompatible plugin must not take every command down: it is skipped with a warning
 * on the bus, unless the recipe names it (then its error is the answer).
 */
export async function openRun(
  options: RunOptions,
  searchRoots: readonly string[],
  init: { required?: readonly string[]; events?: EventBus; onClose?: () => void } = {},
): Promise<RunContext> {
  const installed = discoverPlugins(searchRoots);
  const required = init.required ?? [];
  selectPlugins(installed, required);
  const events = init.events ?? new EventBus();
  const container = createContainer();
  const host = new PluginHost(container);
  const plugins: TopiaryPlugin[] = [];
  // the pipeline's own stages: found like any plugin when the pipeline is installed where discovery looks, else added
  if (!installed.some((p) => p.name === STAGES_MANIFEST.name)) {
    host.use(stagesPlugin, {}, STAGES_MANIFEST);
    plugins.push(stagesPlugin);
  }
  const requiredSet = new Set(required);
  for (const found of installed) {
    try {
      const plugin = await importPlugin(found);
      host.use(plugin, {}, found);
      plugins.push(plugin);
    } catch (e) {
      if (requiredSet.has(found.name) || requiredSet.has(found.packageName) || !isTopiaryError(e)) {
        init.onClose?.();
        throw e;
      }
      events.log('warn', `plugin ${found.name} (${found.packageName}) skipped: ${e.describe()}`);
    }
  }
  for (const path of options.plugin) {
    const { plugin, manifest } = await importPluginFromPath(path, options.allowPluginPath);
    host.use(plugin, {}, manifest);
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
  return { options, container, events, plugins, installed, activateBackend, close: () => init.onClose?.() };
}
