/**
 * The pipeline's own stages — prune, eval, finetune, train — registered like any plugin's: under `Tokens.Stage`,
 * named by their kind. A plugin adds a stage kind the same way (and its recipe stages are validated by its schema).
 */
import { definePlugin, provide, Tokens, type PluginManifest, type Stage } from '@topiary/kernel';
import { createRequire } from 'node:module';
import { evalStage } from './eval.js';
import { finetuneStage } from './finetune.js';
import { pruneStage } from './prune.js';
import { trainStage } from './train.js';

export const builtinStages: readonly Stage[] = [pruneStage, evalStage, finetuneStage, trainStage] as unknown as readonly Stage[];

export const stagesPlugin = definePlugin({
  name: 'pipeline-stages',
  description: 'the recipe stages every run has: prune, eval, finetune, train',
  register(container) {
    for (const stage of builtinStages) provide(container, Tokens.Stage, stage);
  },
});

const pkg = createRequire(import.meta.url)('../../package.json') as { name: string; version: string; peerDependencies?: Record<string, string>; topiary: { provides: { stages: string[] } } };

/** The pipeline's manifest (its package.json), so its stages are checked like any plugin's. */
export const STAGES_MANIFEST: PluginManifest = {
  name: 'pipeline-stages',
  packageName: pkg.name,
  version: pkg.version,
  kernel: pkg.peerDependencies?.['@topiary/kernel'],
  provides: pkg.topiary.provides,
};

export { pruneStage, evalStage, finetuneStage, trainStage };
