/**
 * @topiary/files — how Topiary writes files: atomically (temp file, fsync, rename, fsync the folder), so a reader
 * or a resumed run sees the old file or the new one, never half of one. And `releaseHostMemory`: a streamed run gives
 * its layer-sized host arrays back between steps.
 */
export * from './atomic.js';
export { releaseHostMemory } from './release.js';
