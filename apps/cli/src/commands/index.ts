/** Every subcommand, one file each; add a command by adding its register function here. */
import type { Command } from 'commander';
import type { Catalog } from '../catalog.js';
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
import { registerRecipeSchema } from './recipe-schema.js';
import { registerExport } from './export.js';
import { registerSweep } from './sweep.js';
import { registerWorker } from './worker.js';

/** `catalog`: what the installed plugins offer (pruners and their schemas), for commands whose flags come from it. */
export type RegisterCommand = (program: Command, globals: () => GlobalOptions, catalog: Catalog) => void;

export const commands: readonly RegisterCommand[] = [registerPlugins, registerInspect, registerGenerate, registerPrune, registerTrain, registerEval, registerRun, registerFinetune, registerReport, registerRecipeSchema, registerExport, registerSweep, registerWorker];
