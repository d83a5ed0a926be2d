/**
 * What every command shares: global flags, and a run (its plugins in a container of its own, its event bus and
 * backend — opened by @topiary/pipeline) with the run's events rendered on stderr.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { discoverPlugins, EventBus, type DiscoveredPlugin } from '@topiary/kernel';
import { openRun, type RunContext } from '@topiary/pipeline';
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

export type { RunContext };

/**
 * Open a run for a command. `required` are plugin names a recipe asked for: each must be installed, or the error
 * lists what is. Events go to stderr so stdout stays clean for --json results.
 */
export async function createRunContext(options: GlobalOptions, required: readonly string[] = []): Promise<RunContext> {
  const events = new EventBus();
  const stop = options.json
    ? renderJsonLines(events, process.stderr, { quiet: true, debug: options.debug })
    : renderAuto(events, process.stderr, { quiet: options.quiet, debug: options.debug });
  return openRun(options, pluginSearchRoots(), { required, events, onClose: stop });
}
