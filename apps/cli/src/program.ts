/** The `topiary` program: global flags, subcommands, exit codes. */
import { createRequire } from 'node:module';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { TopiaryError } from '@topiary/kernel';
import { EMPTY_CATALOG, loadCatalog, type Catalog } from './catalog.js';
import { commands } from './commands/index.js';
import type { GlobalOptions } from './context.js';
import { reportError } from './errors.js';
import { LOG_FORMATS } from './render.js';
import { quietTensorflow } from './tfjs.js';

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
    .addOption(new Option('--log-format <format>', 'stderr events: text (bars on a terminal, plain lines otherwise) or json (JSON lines); default json with --json, else text').choices(LOG_FORMATS))
    .option('-q, --quiet', 'no progress, info messages or metrics (warnings and errors still print)', false)
    .option('--debug', 'show stack traces and debug logs', false)
    .option('--out <dir>', 'output folder for commands that write files')
    .option('--plugin <path>', 'load a plugin from a folder or file (needs --allow-plugin-path)', collect, [])
    .option('--allow-plugin-path', 'allow --plugin to load code from a path', false)
    // not supported: refused with a sentence saying what is (see the preAction hook below)
    .addOption(new Option('--device <name>').hideHelp())
    .showHelpAfterError('(run with --help for usage)')
    // before any subcommand exists: commander copies these settings into each command when it is created,
    // so usage errors in subcommands also return (exit 2) instead of calling process.exit
    .exitOverride()
    .addHelpText(
      'after',
      `
Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error (130: a run interrupted, resumable).
Results go to stdout, events (progress, logs, metrics) to stderr: bars on a terminal, plain text lines otherwise,
JSON lines with --json or --log-format json. NO_COLOR is honoured. A closed stdout (topiary … | head) ends quietly.
Models are local paths (HF folder, .safetensors, llama2.c .bin); Hub ids are not fetched. There is no --device:
the backend decides where tensors live (--backend node-gpu for CUDA, --backend auto for the fastest that loads).
TOPIARY_WASM_THREADS=N sets the threads of the wasm backend's matrix products (default: all cores);
TOPIARY_WASM_FMA=0 turns off their fused multiply-add; TOPIARY_WASM_FUSED=0 runs RMSNorm, RoPE, softmax, SwiGLU
and AdamW as tfjs's composite ops instead of the fused kernels (for comparisons).

Examples:
  $ topiary plugins
  $ topiary --help`,
    );
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  // before every command's action (after commander has checked its flags)
  program.hook('preAction', () => {
    const g = globals();
    if (g.device !== undefined) {
      throw new TopiaryError('E_USAGE', 'is not supported: topiary runs where its tensor backend runs', {
        where: '--device',
        hint: 'choose the backend instead: --backend node-gpu (CUDA, needs @tensorflow/tfjs-node-gpu), node, native, wasm, cpu or auto; `topiary plugins` shows which can load here',
      });
    }
    // tfjs prints a banner and other console notes of its own; --debug keeps them
    if (!g.debug) quietTensorflow();
  });
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
