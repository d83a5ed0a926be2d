/** `node:fs/promises` for the page: the in-memory file system's promise calls (fs.ts). */
import { promises } from './fs.js';

export const { readFile, writeFile, stat, readdir, mkdir, rm, rename, access } = promises;
export default promises;
