#!/usr/bin/env node
// Builds native/build/Release/topiary_blas.node with node-gyp against this Node's headers and libopenblas-dev.
// Opt-in (never run by `pnpm install`): `pnpm --filter @topiary/backend-native build:native`. No download.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const nativeDir = join(here, '..', 'native');
const require = createRequire(import.meta.url);

function findNodeGyp() {
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {}
  const npmPrefix = spawnSync('npm', ['prefix', '-g'], { encoding: 'utf8' }).stdout?.trim();
  const candidates = [
    npmPrefix && join(npmPrefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    npmPrefix && join(npmPrefix, 'lib', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ].filter(Boolean);
  return candidates.find((p) => existsSync(p));
}

const libs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'];
const missing = [];
if (!libs.some((d) => existsSync(join(d, 'libopenblas.so')))) missing.push('libopenblas.so (apt-get install libopenblas-dev)');
if (!['cc', 'gcc', 'clang'].some((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0)) missing.push('a C compiler (apt-get install gcc make)');
const nodeDir = [dirname(dirname(process.execPath)), '/usr', '/usr/local'].find((d) => existsSync(join(d, 'include', 'node', 'node_api.h')));
if (!nodeDir) missing.push("Node's headers (include/node/node_api.h; apt-get install libnode-dev)");
const gyp = findNodeGyp();
if (!gyp) missing.push('node-gyp (npm i -g node-gyp; npm normally bundles it)');
if (missing.length) {
  console.error(`@topiary/backend-native: cannot build the addon; missing:\n  - ${missing.join('\n  - ')}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodeDir}`], { cwd: nativeDir, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
console.error(`@topiary/backend-native: built ${join(nativeDir, 'build', 'Release', 'topiary_blas.node')}`);
