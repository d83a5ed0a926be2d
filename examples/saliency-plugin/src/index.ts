/**
 * The plugin: a plain object from definePlugin. `register` binds our Saliency to the kernel's token in the
 * container the host gives us; nothing happens at import time and nothing is global.
 */
import { definePlugin, Tokens, z } from '@topiary/kernel';
import { createRiaSaliency } from './ria.js';

/** The plugin's own options, declared once: the host validates them (errors name `plugins.saliency-ria.power`). */
const riaPluginOptions = z
  .object({ power: z.number().min(0).default(0.5).meta({ description: 'exponent a of the activation norm ‖X_j‖^a (RIA uses 0.5)' }) })
  .strict();

export default definePlugin<z.output<typeof riaPluginOptions>>({
  name: 'saliency-ria',
  description: 'RIA saliency: relative importance × activations',
  options: riaPluginOptions,
  register(container, options) {
    container.register(Tokens.Saliency, { useValue: createRiaSaliency({ power: options.power }) });
  },
});

export { createRiaSaliency, riaScores, type RiaOptions } from './ria.js';
