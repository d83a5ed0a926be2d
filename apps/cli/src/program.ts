/** The `topiary` program: global flags, subcommands, exit codes. */
import { createRequire } from 'node:module';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { TopiaryError } from '@topiary/kernel';
import { EMPTY_CATALOG, loadCatalog, type Catalog } from './catalog.js';
import { commands } from './commands/index.js';
import type { GlobalOptions } from './context.js';
import { reportError } from './errors.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

function parseSeed(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function buildProgram(catalog: Catalog = EMPTY_CATALOG): Command {
  const program = new Command('topiary');
  program
    .version(version, '-V, --version')
    .description('Shape language models: prune, train, recover and evaluate LLaMA-family models.')
    .addOption(new Option('--backend <name>', 'tensor backend: wasm, native (opt-in OpenBLAS build), cpu, node, node-gpu, gpujs, or auto (the fastest that loads)').default('wasm'))
    .addOption(new Option('--seed <n>', 'random seed').argParser(parseSeed).default(0))
    .option('--json', 'print results as one JSON object (events go to stderr as JSON lines)', false)
    .option('-q, --quiet', 'no progress bars or info messages', false)
    .option('--debug', 'show stack traces and debug logs', false)
    .option('--out <dir>', 'output folder for commands that write files')
    .option('--plugin <path>', 'load a plugin from a folder or file (needs --allow-plugin-path)', collect, [])
    .option('--allow-plugin-path', 'allow --plugin to load code from a path', false)
    .showHelpAfterError('(run with --help for usage)')
    // before any subcommand exists: commander copies these settings into each command when it is created,
    // so usage errors in subcommands also return (exit 2) instead of calling process.exit
    .exitOverride()
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
Progress bars are shown on a terminal; otherwise events are JSON lines on stderr. NO_COLOR is honoured.
TOPIARY_WASM_THREADS=N sets the threads of the wasm backend's matrix products (default: all cores);
TOPIARY_WASM_FMA=0 turns off their fused multiply-add.

Examples:
  $ topiary plugins
  $ topiary --help`,
    );
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  for (const register of commands) register(program, globals, catalog);
  return program;
}

/** Run the CLI; resolves to the exit code instead of exiting, so tests can call it in-process. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram(await loadCatalog(argv));
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return 0;
      return 2; // commander already printed the usage error
    }
    const opts = program.opts<GlobalOptions>();
    return reportError(error, { debug: Boolean(opts.debug), json: Boolean(opts.json) });
  }
}

export { TopiaryError };
