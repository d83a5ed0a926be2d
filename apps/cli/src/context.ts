/**
 * What every command shares: global flags, and a run (its plugins in a container of its own, its event bus and
 * backend — opened by @topiary/pipeline) with the run's events rendered on stderr.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { discoverPlugins, EventBus, type DiscoveredPlugin } from '@topiary/kernel';
import { openRun, type RunContext } from '@topiary/pipeline';
import { renderJsonLines, renderText, renderTty, type LogFormat, type RendererOptions, type WritableLike } from './render.js';

export interface GlobalOptions {
  backend: string;
  seed: number;
  json: boolean;
  /** How stderr events are written; default `json` with --json, else `text`. */
  logFormat?: LogFormat;
  quiet: boolean;
  debug: boolean;
  out?: string;
  /** Extra plugin folders/files to load (needs allowPluginPath). */
  plugin: string[];
  allowPluginPath: boolean;
  /** Refused with a sentence (the backend decides where tensors live); kept so the refusal can name it. */
  device?: string;
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
 * Attach the renderer the global flags ask for to a run's events: JSON lines with `--log-format json` (or `--json`,
 * which keeps to warnings, errors, metrics and checkpoints, as it always has), else text — bars on a terminal, plain
 * lines otherwise. `-q` drops progress, info logs and metrics everywhere. Returns the unsubscribe function.
 */
export function renderEvents(events: EventBus, options: Pick<GlobalOptions, 'json' | 'logFormat' | 'quiet' | 'debug'>, out: WritableLike = process.stderr): () => void {
  const base: RendererOptions = { quiet: options.quiet, debug: options.debug };
  const format = options.logFormat ?? (options.json ? 'json' : 'text');
  if (format === 'json') {
    // --json alone: results on stdout, and on stderr only what a machine acts on (no progress, no info chatter)
    return renderJsonLines(events, out, options.logFormat === undefined ? { ...base, progress: false, info: false } : base);
  }
  return out.isTTY ? renderTty(events, out, base) : renderText(events, out, base);
}

/**
 * Open a run for a command. `required` are plugin names a recipe asked for: each must be installed, or the error
 * lists what is. Events go to stderr so stdout stays clean for --json results.
 */
export async function createRunContext(options: GlobalOptions, required: readonly string[] = []): Promise<RunContext> {
  const events = new EventBus();
  const stop = renderEvents(events, options);
  return openRun(options, pluginSearchRoots(), { required, events, onClose: stop });
}
