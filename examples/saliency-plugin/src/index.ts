/**
 * The plugin: a plain object from definePlugin. `register` binds our Saliency to the kernel's token in the
 * container the host gives us; nothing happens at import time and nothing is global.
 */
import { checkNumber, definePlugin, Tokens } from '@topiary/kernel';
import { createRiaSaliency } from './ria.js';

export default definePlugin<{ power?: number }>({
  name: 'saliency-ria',
  description: 'RIA saliency: relative importance × activations',
  register(container, options) {
    const power = options.power === undefined ? 0.5 : checkNumber(options.power, 'plugins.saliency-ria.power', { min: 0 });
    container.register(Tokens.Saliency, { useValue: createRiaSaliency({ power }) });
  },
});

export { createRiaSaliency, riaScores, type RiaOptions } from './ria.js';
