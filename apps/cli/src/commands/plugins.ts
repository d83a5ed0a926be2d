/**
 * `topiary plugins`: what is installed (and loaded with --plugin PATH), its version, what it provides, whether each
 * backend can load here (and why not) and, with --json, each option schema.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import {
  importPluginFromPath,
  KERNEL_VERSION,
  optionsJsonSchema,
  resolveAllOrNone,
  Tokens,
  type BackendAvailability,
  type DependencyContainer,
  type DiscoveredPlugin,
  type PluginProvides,
} from '@topiary/kernel';
import { withoutDialect } from '@topiary/pipeline';
import { createRunContext, type GlobalOptions } from '../context.js';

function providesText(p: { provides: PluginProvides }): string {
  return Object.entries(p.provides)
    .filter(([, names]) => Array.isArray(names) && names.length > 0)
    .map(([kind, names]) => `${kind}: ${(names as string[]).join(', ')}`)
    .join('; ');
}

/** The option schemas (JSON Schema) of what a plugin provides, by kind and name; saliency criteria say what they need. */
function schemasOf(p: { provides: PluginProvides }, container: DependencyContainer): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  const add = (kind: string, name: string, value: unknown) => ((out[kind] ??= {})[name] = value);
  const pruners = resolveAllOrNone(container, Tokens.Pruner);
  const schedulers = resolveAllOrNone(container, Tokens.Scheduler);
  const stages = resolveAllOrNone(container, Tokens.Stage);
  const saliency = resolveAllOrNone(container, Tokens.Saliency);
  for (const name of p.provides.pruners ?? []) {
    const pruner = pruners.find((x) => x.name === name);
    if (pruner) add('pruners', name, { description: pruner.description, granularity: pruner.granularity, calibrationDefaults: pruner.calibrationDefaults ?? null, options: withoutDialect(optionsJsonSchema(pruner.options)) });
  }
  for (const name of p.provides.schedulers ?? []) {
    const s = schedulers.find((x) => x.name === name);
    if (s) add('schedulers', name, { description: s.description, kind: s.kind, options: withoutDialect(optionsJsonSchema(s.options)) });
  }
  for (const name of p.provides.stages ?? []) {
    const s = stages.find((x) => x.kind === name);
    if (s) add('stages', name, { description: s.description, options: s.jsonSchema ? s.jsonSchema(container) : withoutDialect(optionsJsonSchema(s.options)) });
  }
  for (const name of p.provides.saliency ?? []) {
    const s = saliency.find((x) => x.name === name);
    if (s) add('saliency', name, { description: s.description, needs: s.needs, level: s.level ?? 'element' });
  }
  return out;
}

/** What `available()` said about one backend (a backend that throws counts as unavailable, with its message). */
export interface BackendStatus {
  name: string;
  priority: number;
  available: boolean;
  /** How it runs here, when the backend says (e.g. gpujs: WebGL on which renderer, or its CPU fallback and why). */
  detail?: string;
  reason?: string;
  fix?: string;
}

async function availability(backend: { available(): Promise<BackendAvailability> }): Promise<BackendAvailability> {
  try {
    return await backend.available();
  } catch (err) {
    return { ok: false, reason: `available() threw: ${err instanceof Error ? err.message : String(err)}`, fix: 'report this to the backend plugin' };
  }
}

/** Every backend the run's plugins registered, asked whether it can load here. */
export async function backendStatuses(container: DependencyContainer): Promise<Map<string, BackendStatus>> {
  const out = new Map<string, BackendStatus>();
  for (const backend of resolveAllOrNone(container, Tokens.TensorBackend)) {
    const a = await availability(backend);
    out.set(backend.name, { name: backend.name, priority: backend.priority, available: a.ok, ...(a.ok ? (a.detail ? { detail: a.detail } : {}) : { reason: a.reason, fix: a.fix }) });
  }
  return out;
}

/** Every backend, one row each: can it run here, and how — or why not and the fix. Highest priority first. */
export function backendTable(statuses: readonly BackendStatus[]): string {
  if (statuses.length === 0) return '';
  const rows = [...statuses].sort((a, b) => b.priority - a.priority || a.name.localeCompare(b.name));
  const width = Math.max(7, ...rows.map((b) => b.name.length));
  let out = `backends (can each run here? \`--backend NAME\`; auto takes the highest priority that can):\n`;
  out += `  ${'backend'.padEnd(width)}  priority  here  how / why not\n`;
  for (const b of rows) {
    const how = b.available ? (b.detail ?? '') : `${b.reason} — fix: ${b.fix}`;
    out += `  ${b.name.padEnd(width)}  ${String(b.priority).padStart(8)}  ${(b.available ? 'yes' : 'no').padEnd(4)}  ${how}\n`.replace(/ +\n$/, '\n');
  }
  return out;
}

/** One row of the listing: an installed package, or a plugin loaded with --plugin PATH. */
interface Listed {
  name: string;
  packageName?: string;
  version?: string;
  kernel?: string;
  description?: string;
  provides: PluginProvides;
  /** Where --plugin loaded it from. */
  path?: string;
}

export function registerPlugins(program: Command, globals: () => GlobalOptions): void {
  program
    .command('plugins')
    .description('List the Topiary plugins (installed, and loaded with --plugin), their versions, what each provides and whether each backend can load here (--json: with every option schema)')
    .addHelpText(
      'after',
      `
A backend that cannot load here (e.g. backend-node without @tensorflow/tfjs-node installed) is listed with
"unavailable" and its reason; the closing "backends" table says for every backend whether it can run here and
how (gpujs: WebGL through headless-gl on which renderer, or gpu.js's CPU fallback and why) or why not, with the
fix. --json gives "available", "detail" or "reason" and "fix" under "backends".

Examples:
  $ topiary plugins
  $ topiary plugins --json
  $ topiary --allow-plugin-path --plugin ./my-pruner plugins`,
    )
    .action(async () => {
      const g = globals();
      // loading the plugins runs their code: needed to ask each backend whether it can load here
      const run = await createRunContext({ ...g, quiet: true });
      try {
        const listed: Listed[] = run.installed.map(({ dir: _dir, ...rest }) => rest);
        for (const path of g.plugin) {
          // already imported by the run (a second import is the module cache); a bare file has no manifest
          const { plugin, manifest } = await importPluginFromPath(path, g.allowPluginPath);
          listed.push({ ...(manifest ?? { name: plugin.name, provides: {} }), ...(plugin.description ? { description: plugin.description } : {}), path: resolve(path) });
        }
        const backends = await backendStatuses(run.container);
        const backendsOf = (p: Listed): BackendStatus[] => (p.provides.backends ?? []).flatMap((name) => backends.get(name) ?? []);
        if (g.json) {
          const plugins = listed.map((p) => {
            const own = backendsOf(p);
            const down = own.find((b) => !b.available);
            return {
              ...p,
              ...(own.length > 0 ? { available: !down, ...(down ? { reason: down.reason, fix: down.fix } : {}), backends: own } : {}),
              schemas: schemasOf(p, run.container),
            };
          });
          process.stdout.write(`${JSON.stringify({ kernel: KERNEL_VERSION, plugins }, null, 2)}\n`);
          return;
        }
        const fromPaths = listed.filter((p) => p.path !== undefined).length;
        process.stdout.write(`kernel ${KERNEL_VERSION}; ${listed.length - fromPaths} plugin(s) installed${fromPaths ? `, ${fromPaths} loaded with --plugin` : ''}\n`);
        const width = Math.max(4, ...listed.map((p) => p.name.length));
        for (const p of listed) {
          const source = p.path !== undefined ? `${p.packageName ?? 'file'} from ${p.path}` : (p.packageName ?? '');
          process.stdout.write(`  ${p.name.padEnd(width)}  ${(p.version ?? '-').padEnd(8)} ${source}  (${providesText(p) || 'provides nothing declared'})\n`);
          for (const b of backendsOf(p)) {
            if (!b.available) process.stdout.write(`  ${''.padEnd(width)}  unavailable here: backend ${b.name}: ${b.reason}\n  ${''.padEnd(width)}  fix: ${b.fix}\n`);
          }
        }
        if (listed.length === 0) process.stdout.write('  install plugins with your package manager, e.g. npm i @topiary/backend-wasm\n');
        else process.stdout.write(backendTable([...backends.values()]));
      } finally {
        run.close();
      }
    });
}
