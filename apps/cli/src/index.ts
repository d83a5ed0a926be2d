export { buildProgram, main } from './program.js';
export { createRunContext, installedPlugins, pluginSearchRoots, type GlobalOptions, type RunContext } from './context.js';
export { reportError, exitCodeOf } from './errors.js';
