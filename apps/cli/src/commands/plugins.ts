/** `topiary plugins`: what is installed, its version, what it provides and (with --json) each option schema. */
import type { Command } from 'commander';
import { KERNEL_VERSION, optionsJsonSchema, resolveAllOrNone, Tokens, type DependencyContainer, type DiscoveredPlugin } from '@topiary/kernel';
import { withoutDialect } from '@topiary/pipeline';
import { createRunContext, installedPlugins, type GlobalOptions } from '../context.js';

function providesText(p: DiscoveredPlugin): string {
  return Object.entries(p.provides)
    .filter(([, names]) => Array.isArray(names) && names.length > 0)
    .map(([kind, names]) => `${kind}: ${(names as string[]).join(', ')}`)
    .join('; ');
}

/** The option schemas (JSON Schema) of what a plugin provides, by kind and name; saliency criteria say what they need. */
function schemasOf(p: DiscoveredPlugin, container: DependencyContainer): Record<string, Record<string, unknown>> {
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

export function registerPlugins(program: Command, globals: () => GlobalOptions): void {
  program
    .command('plugins')
    .description('List the installed Topiary plugins, their versions and what each provides (--json: with every option schema)')
    .addHelpText('after', '\nExamples:\n  $ topiary plugins\n  $ topiary plugins --json')
    .action(async () => {
      const g = globals();
      const list = installedPlugins();
      if (g.json) {
        // loading the plugins runs their code: only for --json, which prints what their schemas say
        const run = await createRunContext({ ...g, quiet: true });
        try {
          const plugins = list.map(({ dir: _dir, ...rest }) => ({ ...rest, schemas: schemasOf(rest as DiscoveredPlugin, run.container) }));
          process.stdout.write(`${JSON.stringify({ kernel: KERNEL_VERSION, plugins }, null, 2)}\n`);
        } finally {
          run.close();
        }
        return;
      }
      process.stdout.write(`kernel ${KERNEL_VERSION}; ${list.length} plugin(s) installed\n`);
      const width = Math.max(4, ...list.map((p) => p.name.length));
      for (const p of list) {
        process.stdout.write(`  ${p.name.padEnd(width)}  ${p.version.padEnd(8)} ${p.packageName}  (${providesText(p) || 'provides nothing'})\n`);
      }
      if (list.length === 0) process.stdout.write('  install plugins with your package manager, e.g. npm i @topiary/backend-wasm\n');
    });
}
