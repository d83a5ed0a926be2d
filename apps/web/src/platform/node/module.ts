/**
 * `node:module` for the page. What the packages require at import time is their own package.json, which the
 * build turns into JSON imports (vite.config.ts `packageJsonReads`); anything else required names what was asked.
 */
export function createRequire(_from: string | URL): ((id: string) => unknown) & { resolve(id: string): string } {
  const require = (id: string): unknown => {
    throw new Error(`require("${id}") is not available in the browser`);
  };
  return Object.assign(require, {
    resolve(id: string): string {
      throw new Error(`require.resolve("${id}") is not available in the browser`);
    },
  });
}

export default { createRequire };
