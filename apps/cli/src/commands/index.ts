/** Every subcommand, one file each; add a command by adding its register function here. */
import type { Command } from 'commander';
import type { GlobalOptions } from '../context.js';
import { registerPlugins } from './plugins.js';
import { registerInspect } from './inspect.js';
import { registerGenerate } from './generate.js';
import { registerPrune } from './prune.js';
import { registerTrain } from './train.js';
import { registerEval } from './eval.js';
import { registerRun } from './run.js';
import { registerReport } from './report.js';
import { registerFinetune } from './finetune.js';

export type RegisterCommand = (program: Command, globals: () => GlobalOptions) => void;

export const commands: readonly RegisterCommand[] = [registerPlugins, registerInspect, registerGenerate, registerPrune, registerTrain, registerEval, registerRun, registerFinetune, registerReport];
