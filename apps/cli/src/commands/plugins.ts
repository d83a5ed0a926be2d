/** `topiary plugins`: what is installed, its version and what it provides. */
import type { Command } from 'commander';
import { KERNEL_VERSION, type DiscoveredPlugin } from '@topiary/kernel';
import { installedPlugins, type GlobalOptions } from '../context.js';

function providesText(p: DiscoveredPlugin): string {
  return Object.entries(p.provides)
    .filter(([, names]) => Array.isArray(names) && names.length > 0)
    .map(([kind, names]) => `${kind}: ${(names as string[]).join(', ')}`)
    .join('; ');
}

export function registerPlugins(program: Command, globals: () => GlobalOptions): void {
  program
    .command('plugins')
    .description('List the installed Topiary plugins, their versions and what each provides')
    .addHelpText('after', '\nExamples:\n  $ topiary plugins\n  $ topiary plugins --json')
    .action(() => {
      const list = installedPlugins();
      if (globals().json) {
        process.stdout.write(`${JSON.stringify({ kernel: KERNEL_VERSION, plugins: list.map(({ dir: _dir, ...rest }) => rest) }, null, 2)}\n`);
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
