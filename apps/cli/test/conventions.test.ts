/** Flags and listings as a careful Unix tool has them: unknown flags first, files named, plugins that cannot load, no Hub ids. */
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers.js';

const repo = resolve(__dirname, '../../..');
const model = join(repo, 'assets/models/stories260K-hf');

// The gpujs backend's WebGL helpers (from the repository: the CLI itself does not depend on backend-gpujs)
interface GpujsHelpers {
  hasXvfb(): boolean;
  loadHeadlessGl(): { ok: boolean };
  startVirtualDisplay(): Promise<{ stop(): void } | string>;
}
const gpujs = (await import(pathToFileURL(join(repo, 'plugins/backend-gpujs/src/index.ts')).href)) as GpujsHelpers;
const webglHere = process.platform === 'linux' && gpujs.hasXvfb() && gpujs.loadHeadlessGl().ok;
if (!webglHere) console.log('skipped: topiary plugins with WebGL for gpujs — needs headless-gl built and Xvfb installed (see .ci/run)');

/** A plugin folder (package.json with a "topiary" field) that brings a backend which cannot load here. */
function unavailableBackendPlugin(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'topiary-fake-backend-')), 'backend-nowhere');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'topiary-backend-nowhere', version: '2.3.4', type: 'module', main: 'index.js', peerDependencies: { '@topiary/kernel': '^0.1.0' }, topiary: { plugin: 'backend-nowhere', provides: { backends: ['nowhere'] } } }),
  );
  writeFileSync(
    join(dir, 'index.js'),
    `const backend = { name: 'nowhere', engine: 'none', priority: 1,
  async available() { return { ok: false, reason: 'no nowhere-accelerator in this machine', fix: 'run it somewhere' }; },
  async init() { throw new Error('unreachable'); }, capabilities() { return { notes: [] }; } };
export default { name: 'backend-nowhere', register(c) { c.register(Symbol.for('topiary:TensorBackend'), { useValue: backend }); } };\n`,
  );
  return dir;
}

/** A bare-file plugin (no manifest), loaded with --plugin FILE. */
function filePlugin(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'topiary-file-plugin-')), 'my-plugin.mjs');
  writeFileSync(file, `export default { name: 'my-file-plugin', description: 'a plugin from a file', register() {} };\n`);
  return file;
}

describe('prune: flag errors in the right order, files named', () => {
  it('prune --bogus complains about --bogus (not about the missing --method)', async () => {
    const r = await runCli(['prune', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown option '--bogus'");
    expect(r.stderr).not.toContain('--method');
  });

  it('without --method (and nothing else wrong): --method is required, with the installed pruners', async () => {
    const r = await runCli(['--out', join(tmpdir(), 'never'), 'prune', '--model', model]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('topiary: --method: is required');
    expect(r.stderr).toMatch(/installed: .*magnitude/);
  });

  it('a missing calibration file is named with its path and its flag, before any work (exit 1, as a missing file is)', async () => {
    const missing = join(tmpdir(), 'topiary-nowhere', 'x.txt');
    const r = await runCli(['--out', join(tmpdir(), 'never'), 'prune', '--model', model, '--method', 'wanda', '--sparsity', '0.5', '--calibration', missing]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`topiary: --calibration: no such file or folder: ${missing}`);
    expect(r.stderr).not.toContain('backend'); // nothing was started
  });
});

describe('topiary plugins', () => {
  it('lists a backend that cannot load here as unavailable, with its reason, and plugins loaded with --plugin', async () => {
    const folder = unavailableBackendPlugin();
    const file = filePlugin();
    const r = await runCli(['--allow-plugin-path', '--plugin', folder, '--plugin', file, 'plugins']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/plugin\(s\) installed, 2 loaded with --plugin/);
    expect(r.stdout).toMatch(new RegExp(`backend-nowhere\\s+2\\.3\\.4\\s+topiary-backend-nowhere from ${folder.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    expect(r.stdout).toContain('unavailable here: backend nowhere: no nowhere-accelerator in this machine');
    expect(r.stdout).toContain('fix: run it somewhere');
    expect(r.stdout).toContain(`my-file-plugin`);
    expect(r.stdout).toContain(`from ${file}`);
    // the default backend is there and available: no "unavailable" line under it
    expect(r.stdout).not.toContain('backend wasm:');

    const j = await runCli(['--json', '--allow-plugin-path', '--plugin', folder, '--plugin', file, 'plugins']);
    expect(j.code, j.stderr).toBe(0);
    type Entry = { name: string; path?: string; available?: boolean; reason?: string; fix?: string; backends?: { name: string; available: boolean }[] };
    const { plugins } = JSON.parse(j.stdout) as { plugins: Entry[] };
    expect(plugins.find((p) => p.name === 'backend-nowhere')).toMatchObject({ path: folder, available: false, reason: 'no nowhere-accelerator in this machine', fix: 'run it somewhere', backends: [{ name: 'nowhere', available: false }] });
    expect(plugins.find((p) => p.name === 'backend-wasm')).toMatchObject({ available: true, backends: [{ name: 'wasm', available: true }] });
    expect(plugins.find((p) => p.name === 'my-file-plugin')).toMatchObject({ path: file });
    expect(plugins.find((p) => p.name === 'pruner-wanda')).not.toHaveProperty('available'); // only backends say
  });

  it('backend-node without @tensorflow/tfjs-node installed: available false and why', async () => {
    let tfjsNode = true;
    try {
      createRequire(join(repo, 'plugins/backend-node/package.json')).resolve('@tensorflow/tfjs-node');
    } catch {
      tfjsNode = false;
    }
    const j = await runCli(['--json', 'plugins']);
    const node = (JSON.parse(j.stdout) as { plugins: { name: string; available?: boolean; reason?: string }[] }).plugins.find((p) => p.name === 'backend-node');
    expect(node).toBeDefined();
    expect(node!.available).toBe(tfjsNode);
    if (!tfjsNode) expect(node!.reason).toContain('@tensorflow/tfjs-node is not installed');
  });

  it('ends with a backends table: every backend, whether it can run here, and how or why not (with the fix)', async () => {
    const r = await runCli(['plugins']);
    expect(r.code, r.stderr).toBe(0);
    const table = r.stdout.slice(r.stdout.indexOf('backends (can each run here?'));
    expect(table).toMatch(/^backends \(can each run here\?/);
    const row = (name: string): string => table.split('\n').find((l) => new RegExp(`^  ${name} +\\d+ `).test(l)) ?? '';
    for (const name of ['wasm', 'cpu', 'gpujs', 'native', 'node', 'node-gpu']) expect(row(name), `row for ${name} in\n${table}`).not.toBe('');
    expect(row('wasm')).toMatch(/ yes/);
    expect(row('cpu')).toMatch(/ yes/);
    // gpujs runs everywhere; the row says on what: WebGL (headless-gl + an X display) or gpu.js's fallback and why
    expect(row('gpujs')).toMatch(/ yes +(WebGL through headless-gl on .+|gpu\.js WebAssembly\/JavaScript fallback, no GPU \(.+\))$/);
    const nativeBuilt = existsSync(join(repo, 'plugins/backend-native/native/build/Release/topiary_blas.node'));
    // not built: either it could be built (fix: the build command) or what it lacks is named (fix: the package)
    if (!nativeBuilt) expect(row('native')).toMatch(/ no +the native addon is not built[ ,].* — fix: /);
    const j = await runCli(['--json', 'plugins']);
    const { plugins } = JSON.parse(j.stdout) as { plugins: { name: string; backends?: { name: string; available: boolean; detail?: string }[] }[] };
    expect(plugins.find((p) => p.name === 'backend-gpujs')?.backends?.[0]).toMatchObject({ name: 'gpujs', available: true, detail: expect.any(String) });
  });

  it.skipIf(!webglHere)('gpujs with an X display that has WebGL (an Xvfb started here): the row names the renderer', async () => {
    const started = await gpujs.startVirtualDisplay();
    if (typeof started === 'string') throw new Error(started);
    try {
      const r = await runCli(['plugins']);
      const line = r.stdout.split('\n').find((l) => /^  gpujs +\d+ /.test(l));
      expect(line).toMatch(/ yes +WebGL through headless-gl on ANGLE \(.*llvmpipe.*\) — a software rasteriser: real WebGL shaders, on the CPU$/);
    } finally {
      started.stop();
    }
  });

  it('an unknown saliency lists each known name once, though two plugins register "wanda"', async () => {
    const j = await runCli(['--json', 'plugins']);
    const { plugins } = JSON.parse(j.stdout) as { plugins: { name: string; provides: { saliency?: string[] } }[] };
    expect(plugins.filter((p) => p.provides.saliency?.includes('wanda')).map((p) => p.name).sort()).toEqual(['pruner-wanda', 'saliency-basic']);
    const r = await runCli(['--out', join(tmpdir(), 'never'), 'prune', '--model', model, '--method', 'wanda', '--sparsity', '0.5', '--saliency', 'nope']);
    expect(r.code).toBe(2);
    const hint = r.stderr.split('\n').find((l) => l.includes('known saliency names:'))!;
    const names = hint.slice(hint.indexOf(':', hint.indexOf('names')) + 1).split(',').map((s) => s.trim());
    expect(names).toContain('wanda');
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('what is supported: local models, no --device', () => {
  it('a Hub id for --model is a usage error naming --model and saying models are local paths', async () => {
    const r = await runCli(['inspect', '--model', 'meta-llama/Llama-2-7b-hf']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('topiary: --model: "meta-llama/Llama-2-7b-hf" is not a local path nor in the local Hugging Face cache');
    expect(r.stderr).not.toContain('no such file');
    const j = await runCli(['--json', 'eval', '--model', 'org/name', '--perplexity', 'x.txt']);
    expect(j.code).toBe(2);
    expect(JSON.parse(j.stderr.trim().split('\n').pop()!).error).toMatchObject({ code: 'E_USAGE', where: '--model' });
  });

  it('a local path that is not there is named with --model (an I/O error, exit 1, as before)', async () => {
    const missing = join(tmpdir(), 'topiary-nowhere', 'model');
    const r = await runCli(['inspect', '--model', missing]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`topiary: --model: no such file or folder: ${missing}`);
  });

  it('--device is refused with what to use instead (--backend)', async () => {
    const r = await runCli(['--device', 'cuda', 'inspect', '--model', model]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('topiary: --device: is not supported');
    expect(r.stderr).toContain('--backend node-gpu');
    const after = await runCli(['inspect', '--model', model, '--device', 'cpu']);
    expect(after.code).toBe(2);
    expect(after.stderr).toContain('--device');
  });
});
