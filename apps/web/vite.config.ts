/**
 * The page's build. Two things make the Topiary packages run here unchanged:
 * - the Node built-ins they import resolve to the page's platform seam (src/platform/node/: an in-memory file
 *   system, POSIX paths, sha256, and stubs for what the page never calls);
 * - the dev and preview servers send COOP/COEP, so the page is cross-origin isolated and the WASM GEMM gets its
 *   threads (hosting: send the same two headers; without them the page works on one thread).
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

/** Cross-origin isolation: what makes SharedArrayBuffer (and so the GEMM's threads) available to the page. */
export const isolationHeaders = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

/**
 * Packages read their own package.json at import time (`createRequire(import.meta.url)('../package.json')`: the
 * kernel's version, the pipeline's manifest); in the bundle that read becomes an import of the JSON.
 */
function packageJsonReads(): Plugin {
  const read = /createRequire\(import\.meta\.url\)\((['"])(\.{1,2}\/[^'"]*package\.json)\1\)/g;
  return {
    name: 'topiary-package-json-reads',
    transform(code, id) {
      if (!code.includes('package.json') || !read.test(code)) return null;
      read.lastIndex = 0;
      const imports: string[] = [];
      const out = code.replace(read, (_all, _quote, relative: string) => {
        const name = `__topiaryPackageJson${imports.length}`;
        imports.push(`import ${name} from ${JSON.stringify(resolve(dirname(id), relative))};`);
        return name;
      });
      return { code: `${imports.join('\n')}\n${out}`, map: null };
    },
  };
}

const builtin = (name: string, file: string) => ({ find: new RegExp(`^(node:)?${name}$`), replacement: here(`src/platform/node/${file}`) });

export default defineConfig({
  base: './',
  plugins: [packageJsonReads()],
  resolve: {
    alias: [
      builtin('fs/promises', 'fs-promises.ts'),
      builtin('fs', 'fs.ts'),
      builtin('path', 'path.ts'),
      builtin('os', 'os.ts'),
      builtin('url', 'url.ts'),
      builtin('module', 'module.ts'),
      builtin('crypto', 'crypto.ts'),
      ...['worker_threads', 'v8', 'vm', 'child_process', 'net', 'util', 'events', 'perf_hooks', 'readline', 'http', 'https', 'stream', 'zlib', 'tty'].map((name) => builtin(name, 'unavailable.ts')),
    ],
  },
  worker: { format: 'es', plugins: () => [packageJsonReads()] },
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 8000, assetsInlineLimit: 0 },
  server: { headers: isolationHeaders, fs: { allow: [here('../..')] } },
  preview: { headers: isolationHeaders },
});
