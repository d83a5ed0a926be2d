/**
 * @topiary/sweep — a recipe with axes (`matrix:`) expanded into runs, each an ordinary run folder; the runs executed
 * by local processes or by `topiary worker`s on a BullMQ/Redis queue; the results gathered into sweep.json and one
 * report with the perplexity–size frontier. The CLI's `topiary sweep` and `topiary worker` only parse and print.
 */
export * from './axis-path.js';
export * from './grid.js';
export * from './outcome.js';
export * from './execute-point.js';
export { childEntry, logFileOf, startPointChild, type ChildReply, type ChildRequest, type PointChild } from './child-process.js';
export * from './embedded.js';
export * from './queue.js';
export * from './sweep-file.js';
export * from './report.js';
export * from './sweep.js';
