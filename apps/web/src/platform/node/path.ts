/** `node:path` for the page: POSIX paths (pathe), as every path in the page's file system is. */
import * as pathe from 'pathe';

export const { basename, delimiter, dirname, extname, format, isAbsolute, join, normalize, parse, relative, resolve, sep, toNamespacedPath } = pathe;
export const posix = pathe;
export default pathe;
