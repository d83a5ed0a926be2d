/**
 * What the installed plugins offer, known before the command line is parsed: `topiary prune` builds its flags and
 * help from every installed pruner's options schema. Loading is best effort here (the command itself opens the
 * run again and reports a broken plugin properly).
 */
import { EventBus, resolveAllOrNone, Tokens, type Pruner } from '@topiary/kernel';
import { openRun } from '@topiary/pipeline';
import { pluginSearchRoots } from './context.js';

export interface Catalog {
  pruners: readonly Pruner[];
  /** The `--method` on the command line, if any (`--help --method NAME` shows that method's options only). */
  method?: string;
}

export const EMPTY_CATALOG: Catalog = { pruners: [] };

/** Commands whose flags come from plugins' schemas. */
const NEEDS_CATALOG = new Set(['prune']);

/** `--plugin PATH` values and `--allow-plugin-path` from raw arguments (path plugins can bring pruners too). */
function pathPlugins(argv: readonly string[]): { plugin: string[]; allowPluginPath: boolean } {
  const plugin: string[] = [];
  argv.forEach((arg, i) => {
    if (arg === '--plugin' && argv[i + 1] !== undefined) plugin.push(argv[i + 1]!);
    else if (arg.startsWith('--plugin=')) plugin.push(arg.slice('--plugin='.length));
  });
  return { plugin, allowPluginPath: argv.includes('--allow-plugin-path') };
}

export async function loadCatalog(argv: readonly string[]): Promise<Catalog> {
  if (!argv.some((a) => NEEDS_CATALOG.has(a))) return EMPTY_CATALOG;
  const paths = pathPlugins(argv);
  const i = argv.indexOf('--method');
  const method = i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith('--method='))?.slice('--method='.length);
  for (const attempt of [paths, { plugin: [], allowPluginPath: false }]) {
    try {
      const run = await openRun({ backend: 'wasm', seed: 0, ...attempt }, pluginSearchRoots(), { events: new EventBus() });
      return { pruners: resolveAllOrNone(run.container, Tokens.Pruner), ...(method !== undefined ? { method } : {}) };
    } catch {
      // a broken path plugin: the command reports it when it opens its run
    }
  }
  return EMPTY_CATALOG;
}
