/**
 * Users install only what they need: pack the packages with `pnpm pack`, install ONLY the kernel, the cli,
 * backend-wasm, one pruner (wanda), the custom saliency example and the third-party pruner example (plus the
 * libraries the cli itself depends on) into an empty project with npm, prune the shipped model with that saliency,
 * and use that pruner from flags and from a recipe.
 *
 * Offline: the third-party libraries come from the repo's own install (pnpm's store, as linked under
 * node_modules/.pnpm), packed into tarballs next to ours; npm runs with --offline, an empty cache and an
 * unreachable registry, so nothing can come from the network. When the repo's install lacks something the
 * packed packages need (or GNU tar is missing), the test skips and prints what was missing.
 *
 * The custom saliency must really be used: the masks of the RIA prune must be reproducible and differ from what
 * the same pruner gives with its default saliency (wanda) and with magnitude, so a plugin that silently fell back
 * to another score fails.
 *
 * The third-party pruner (examples/pruner-plugin, `ffn-norm`, which imports nothing but the kernel) must work with
 * no change to any Topiary package: its own flags from its options schema (`--channel-ratio`), its help lines, its
 * validation errors naming the flag (exit 2), a recipe stage with its options, and a misspelt option in a recipe
 * refused with its path before anything runs.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it, type TestContext } from 'vitest';
import { assets, repoRoot } from '../data.js';

const run = promisify(execFile);

/** What the user installs by choice. */
const chosen = ['packages/kernel', 'apps/cli', 'plugins/backend-wasm', 'plugins/pruner-wanda', 'examples/saliency-plugin', 'examples/pruner-plugin'];

interface Manifest {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}
const readManifest = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;

/** name → folder of every workspace package. */
function workspacePackages(): Map<string, string> {
  const byName = new Map<string, string>();
  for (const group of ['packages', 'plugins', 'apps', 'examples']) {
    for (const entry of readdirSync(join(repoRoot, group))) {
      if (existsSync(join(repoRoot, group, entry, 'package.json'))) byName.set(readManifest(join(repoRoot, group, entry)).name, `${group}/${entry}`);
    }
  }
  return byName;
}

/** The dependencies npm installs for a package: dependencies, optional ones, and peers that are not optional. */
function installedDeps(pkg: Manifest): { name: string; optional: boolean }[] {
  const optional = new Set([...Object.keys(pkg.optionalDependencies ?? {}), ...Object.entries(pkg.peerDependenciesMeta ?? {}).filter(([, m]) => m.optional).map(([n]) => n)]);
  const names = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})]);
  return [...names].map((name) => ({ name, optional: optional.has(name) }));
}

/**
 * The workspace packages the chosen ones depend on, transitively (from a registry npm would fetch them; here they
 * are packed too): the cli's libraries, and saliency-basic, which pruner-wanda depends on for its default score.
 */
function withWorkspaceDependencies(dirs: readonly string[], byName: Map<string, string>): string[] {
  const out = new Set<string>();
  const visit = (dir: string) => {
    if (out.has(dir)) return;
    out.add(dir);
    for (const dep of installedDeps(readManifest(join(repoRoot, dir)))) {
      const depDir = byName.get(dep.name);
      if (depDir && !dep.optional) visit(depDir);
    }
  };
  dirs.forEach(visit);
  return [...out];
}

/** Node's lookup: the package folder `name` resolves to from `from` (real path), or null. */
function resolvePackageDir(from: string, name: string): string | null {
  for (let d = from; ; d = dirname(d)) {
    const candidate = join(d, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return realpathSync(candidate);
    if (dirname(d) === d) return null;
  }
}

/**
 * Every third-party package (name@version → folder under node_modules/.pnpm) the workspace packages need at run
 * time, as the repo's install laid it out; `missing` names what the install lacks.
 */
function thirdPartyClosure(workspaceDirs: readonly string[], byName: Map<string, string>): { packages: Map<string, { name: string; version: string; dir: string }>; missing: string[] } {
  const packages = new Map<string, { name: string; version: string; dir: string }>();
  const missing: string[] = [];
  const visit = (dir: string, isWorkspace: boolean) => {
    const pkg = readManifest(dir);
    for (const dep of installedDeps(pkg)) {
      if (isWorkspace && byName.has(dep.name)) continue; // packed from the workspace
      const found = resolvePackageDir(dir, dep.name);
      if (!found) {
        if (!dep.optional) missing.push(`${dep.name} (needed by ${pkg.name})`);
        continue;
      }
      const m = readManifest(found);
      const key = `${m.name}@${m.version}`;
      if (packages.has(key)) continue;
      packages.set(key, { name: m.name, version: m.version, dir: found });
      visit(found, false);
    }
  };
  for (const d of workspaceDirs) visit(join(repoRoot, d), true);
  return { packages, missing };
}

function commandVersion(cmd: string): string | null {
  try {
    return execFileSync(cmd, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return null;
  }
}

/** Tensors of a .safetensors file (F32 only: what the pruned stories260K holds). */
function readSafetensors(file: string): Map<string, Float32Array> {
  const buf = readFileSync(file);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const out = new Map<string, Float32Array>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    expect(t.dtype, name).toBe('F32');
    const bytes = buf.subarray(8 + headerLen + t.data_offsets[0], 8 + headerLen + t.data_offsets[1]);
    out.set(name, new Float32Array(Uint8Array.from(bytes).buffer));
  }
  return out;
}

/** How many weights of the pruned layers are zero in one mask and not in the other. */
function maskDifference(a: Map<string, Float32Array>, b: Map<string, Float32Array>, params: readonly string[]): number {
  let differ = 0;
  for (const p of params) {
    const x = a.get(p)!;
    const y = b.get(p)!;
    expect(x.length, p).toBe(y.length);
    for (let i = 0; i < x.length; i++) if ((x[i] === 0) !== (y[i] === 0)) differ++;
  }
  return differ;
}

const missingTools = ['pnpm', 'npm'].filter((c) => commandVersion(c) === null);
if (!commandVersion('tar')?.includes('GNU tar')) missingTools.push('GNU tar (packs the third-party packages; needs --hard-dereference)');
if (missingTools.length) console.log(`skipped: the install test needs ${missingTools.join(' and ')} on PATH`);

interface Installed {
  project: string;
  bin: string;
}

/** What the CLI printed and how it exited, whatever the exit code. */
function topiary(bin: string, cwd: string, args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(bin, args, { cwd, encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Pack, and install offline into an empty project; done once, for every test here. */
let work: string | undefined;
let installing: Promise<Installed> | undefined;
async function install(): Promise<Installed> {
  const byName = workspacePackages();
  const packed = withWorkspaceDependencies(chosen, byName);
  const thirdParty = thirdPartyClosure(packed, byName);

  const t0 = Date.now();
  const took = (what: string) => console.log(`install test: ${what} after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  work = mkdtempSync(join(tmpdir(), 'topiary-install-'));
  const tarballs = join(work, 'tgz');
  mkdirSync(tarballs);
  // ours: pnpm pack (workspace:^ ranges become versions), all in one pnpm call
  const names = new Map([...byName].map(([name, dir]) => [dir, name]));
  await run('pnpm', ['-r', ...packed.flatMap((dir) => ['--filter', names.get(dir)!]), 'pack', '--pack-destination', tarballs], { cwd: repoRoot });
  const ours = readdirSync(tarballs).filter((f) => f.endsWith('.tgz'));
  expect(ours).toHaveLength(packed.length);
  took(`packed ${ours.length} workspace packages`);
  const dependencies: Record<string, string> = {};
  for (const f of ours) {
    const m = JSON.parse(execFileSync('tar', ['-xzOf', join(tarballs, f), 'package/package.json'], { encoding: 'utf8' })) as Manifest;
    dependencies[m.name] = `file:${join(tarballs, f)}`;
  }

  // theirs: the folders pnpm installed, as tarballs (hard links dereferenced: pnpm's store links equal files)
  const overrides: Record<string, string> = {};
  const newest = new Map<string, { name: string; version: string; dir: string }>();
  for (const p of thirdParty.packages.values()) {
    const seen = newest.get(p.name);
    if (seen) overrides[p.name] = `$${p.name}`; // one copy per name; npm uses it for every range
    if (!seen || p.version.localeCompare(seen.version, 'en', { numeric: true }) > 0) newest.set(p.name, p);
  }
  if (Object.keys(overrides).length) console.log(`install test: one version each of ${Object.keys(overrides).join(', ')} (the repo's install has several)`);
  for (const p of newest.values()) {
    const file = join(tarballs, `${p.name.replace('@', '').replace('/', '-')}-${p.version}.tar`);
    execFileSync('tar', ['-cf', file, '--hard-dereference', '--exclude=./node_modules', '--transform', 's,^\\.,package,', '-C', p.dir, '.']);
    dependencies[p.name] = `file:${file}`;
  }

  took(`packed ${newest.size} third-party packages`);
  const project = join(work, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module', dependencies, overrides }, null, 1));
  // --offline with an empty cache and a registry nobody listens on: any download would fail the install
  await run(
    'npm',
    ['install', '--offline', '--registry=http://127.0.0.1:9/', `--cache=${join(work, 'npm-cache')}`, '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'],
    { cwd: project, timeout: 300_000 },
  );
  took('installed offline');
  const bin = join(project, 'node_modules', '.bin', 'topiary');
  expect(existsSync(bin)).toBe(true);
  return { project, bin };
}

/** The installed project, or a skip (with the printed reason) when the repo's install lacks what it needs. */
async function installed(ctx: TestContext): Promise<Installed> {
  const byName = workspacePackages();
  const missing = thirdPartyClosure(withWorkspaceDependencies(chosen, byName), byName).missing;
  if (missing.length) {
    const reason = `skipped: an offline install needs these packages in the repo's install (pnpm install), which lacks them: ${missing.join(', ')}`;
    console.log(reason);
    ctx.skip(reason);
  }
  return (installing ??= install());
}

describe.skipIf(missingTools.length > 0)('packed packages installed offline into an empty project', () => {
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('installs only the chosen plugins, offline, and prunes with the custom saliency (not a fallback)', async (ctx) => {
    const { project, bin } = await installed(ctx);
    const t0 = Date.now();
    const took = (what: string) => console.log(`install test: ${what} after ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const listed = JSON.parse(execFileSync(bin, ['--json', 'plugins'], { cwd: project, encoding: 'utf8' })) as { plugins: { name: string; provides: Record<string, string[]> }[] };
    const plugins = listed.plugins.map((p) => p.name);
    expect(plugins).toEqual(expect.arrayContaining(['backend-wasm', 'pruner-wanda', 'saliency-ria', 'pruner-ffn-norm']));
    expect(listed.plugins.find((p) => p.name === 'pruner-ffn-norm')!.provides.pruners).toEqual(['ffn-norm']);
    // nothing the user did not ask for: no other pruner, backend or saliency plugin
    expect(plugins).not.toContain('pruner-sparsegpt');
    expect(plugins).not.toContain('pruner-magnitude');
    expect(plugins).not.toContain('pruner-llm-pruner');
    expect(plugins).not.toContain('backend-cpu');

    const text = join(project, 'calibration.txt');
    writeFileSync(text, readFileSync(join(assets, 'data', 'tinystories_val_head.txt'), 'utf8').slice(0, 30_000));
    const prune = (out: string, saliency?: string) => {
      const args = ['--json', 'prune', '--model', join(assets, 'models', 'stories260K-hf'), '--method', 'wanda', '--sparsity', '0.5', '--calibration', text, '--samples', '8', '--seqlen', '64', '--out', out];
      if (saliency) args.push('--saliency', saliency);
      const stdout = execFileSync(bin, args, { cwd: project, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      return JSON.parse(stdout) as { sparsity: number; details: { saliency: string }; layers: { param: string; sparsity: number }[] };
    };
    const result = prune('pruned', 'ria');
    expect(result.details.saliency).toBe('ria');
    expect(result.sparsity).toBeCloseTo(0.5, 2);
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json']) expect(existsSync(join(project, 'pruned', f))).toBe(true);

    // the scores really were RIA's: the masks are reproducible, and differ from the default (wanda) and
    // magnitude masks on the same model, calibration windows and sparsity
    const params = result.layers.map((l) => l.param);
    expect(params.length).toBeGreaterThan(0);
    const ria = readSafetensors(join(project, 'pruned', 'model.safetensors'));
    const total = params.reduce((n, p) => n + ria.get(p)!.length, 0);
    prune('pruned-ria-again', 'ria');
    expect(maskDifference(ria, readSafetensors(join(project, 'pruned-ria-again', 'model.safetensors')), params)).toBe(0);
    const byDefault = prune('pruned-default');
    expect(byDefault.details.saliency).not.toBe('ria');
    const vsDefault = maskDifference(ria, readSafetensors(join(project, 'pruned-default', 'model.safetensors')), params);
    prune('pruned-magnitude', 'magnitude');
    const vsMagnitude = maskDifference(ria, readSafetensors(join(project, 'pruned-magnitude', 'model.safetensors')), params);
    console.log(`install test: RIA mask differs from ${byDefault.details.saliency}'s in ${vsDefault} and from magnitude's in ${vsMagnitude} of ${total} weights`);
    expect(vsDefault / total).toBeGreaterThan(0.01);
    expect(vsMagnitude / total).toBeGreaterThan(0.01);

    took('pruned four times');
    // the same criterion from a recipe: a prune stage naming it, on the same windows, gives the same masks
    writeFileSync(
      join(project, 'ria.yaml'),
      [
        `model: { from: ${JSON.stringify(join(assets, 'models', 'stories260K-hf'))} }`,
        'data:',
        '  calibration: { path: ./calibration.txt, samples: 8, seqlen: 64 }',
        'stages:',
        '  - prune: { method: wanda, sparsity: 0.5, saliency: ria }',
        '',
      ].join('\n'),
    );
    const ran = topiary(bin, project, ['--json', 'run', 'ria.yaml', '--out', 'ria-run']);
    expect(ran.status, ran.stderr).toBe(0);
    expect(maskDifference(ria, readSafetensors(join(project, 'ria-run', 'model', 'model.safetensors')), params)).toBe(0);
    // and a criterion that is not installed is named with its recipe path
    writeFileSync(join(project, 'nope.yaml'), readFileSync(join(project, 'ria.yaml'), 'utf8').replace('saliency: ria', 'saliency: rai'));
    const nope = topiary(bin, project, ['--json', 'run', 'nope.yaml', '--out', 'nope-run']);
    expect(nope.status).toBe(2);
    expect(nope.stderr).toContain('unknown saliency \\"rai\\"');
    took('ran the RIA recipe');
    // the pruned folder is a model the same install can read back
    const inspected = JSON.parse(execFileSync(bin, ['--json', 'inspect', '--model', join(project, 'pruned')], { cwd: project, encoding: 'utf8' })) as { parameters: unknown };
    expect(inspected.parameters).toBeDefined();
  }, 600_000);

  it('runs a third-party pruner (examples/pruner-plugin: ffn-norm) from its own flags and from a recipe, unchanged', async (ctx) => {
    const { project, bin } = await installed(ctx);
    const t0 = Date.now();
    const model = join(assets, 'models', 'stories260K-hf');
    const config = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8')) as { hidden_size: number; intermediate_size: number; num_hidden_layers: number };
    // --channel-ratio 0.25: round(0.25 × 172) = 43 channels per block, each a gate row, an up row and a down column
    const removedPerBlock = Math.round(0.25 * config.intermediate_size);
    const expectedRemoved = config.num_hidden_layers * removedPerBlock * 3 * config.hidden_size;
    expect(expectedRemoved).toBe(41_280);

    // its flags and their help lines come from its options schema
    const help = topiary(bin, project, ['prune', '--method', 'ffn-norm', '--help']);
    expect(help.status, help.stderr).toBe(0);
    const helpText = help.stdout + help.stderr;
    for (const flag of ['--channel-ratio', '--head-ratio', '--norm', '--layers']) expect(helpText, flag).toContain(flag);
    for (const line of ['fraction of the FFN channels of each block to remove', 'fraction of the attention (query) heads of each block to remove', 'l2 (Euclidean norm) or l1']) {
      expect(helpText.replace(/\s+/g, ' '), line).toContain(line);
    }

    // one structured prune from flags, no calibration data: the model is physically smaller by exactly the removed channels
    const pruned = topiary(bin, project, ['--json', 'prune', '--model', model, '--method', 'ffn-norm', '--channel-ratio', '0.25', '--out', 'ffn-norm']);
    expect(pruned.status, pruned.stderr).toBe(0);
    const result = JSON.parse(pruned.stdout) as { method: string; parametersBefore: number; parametersAfter: number; details: { perLayer: { ffnChannels: number[] }[] } };
    expect(result.method).toBe('ffn-norm');
    expect(result.parametersBefore - result.parametersAfter).toBe(expectedRemoved);
    expect(result.details.perLayer.map((l) => l.ffnChannels)).toEqual(Array(config.num_hidden_layers).fill([config.intermediate_size, config.intermediate_size - removedPerBlock]));
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json', 'prune-report.json']) expect(existsSync(join(project, 'ffn-norm', f)), f).toBe(true);
    const savedConfig = JSON.parse(readFileSync(join(project, 'ffn-norm', 'config.json'), 'utf8')) as { intermediate_size: number };
    expect(savedConfig.intermediate_size).toBe(config.intermediate_size - removedPerBlock);
    const inspected = JSON.parse(execFileSync(bin, ['--json', 'inspect', '--model', join(project, 'ffn-norm')], { cwd: project, encoding: 'utf8' })) as { parameters: { total: number } };
    expect(inspected.parameters.total).toBe(result.parametersAfter);

    // an invalid value is refused naming its flag, as a usage error (exit 2), and nothing is written
    const invalid = topiary(bin, project, ['prune', '--model', model, '--method', 'ffn-norm', '--channel-ratio', '2', '--out', 'ffn-norm-bad']);
    expect(invalid.status, invalid.stdout + invalid.stderr).toBe(2);
    expect(invalid.stderr).toContain('--channel-ratio');
    expect(invalid.stderr).toMatch(/got 2\b/);
    expect(existsSync(join(project, 'ffn-norm-bad', 'model.safetensors'))).toBe(false);

    // a recipe: the same method with its options in a prune stage, then an evaluation of the smaller model
    writeFileSync(join(project, 'eval.txt'), readFileSync(join(assets, 'data', 'tinystories_val_head.txt'), 'utf8').slice(0, 8_000));
    const recipe = (pruneStage: string) =>
      [`model: { from: ${JSON.stringify(model)} }`, 'stages:', `  - prune: ${pruneStage}`, '  - eval: { perplexity: [./eval.txt], seqlen: 64, limit: 4 }', ''].join('\n');
    writeFileSync(join(project, 'recipe.yaml'), recipe('{ method: ffn-norm, channelRatio: 0.25 }'));
    const ran = topiary(bin, project, ['--json', 'run', 'recipe.yaml', '--out', 'run1']);
    expect(ran.status, ran.stderr).toBe(0);
    const summary = JSON.parse(ran.stdout) as {
      status: string;
      results: { kind: string; name: string; parametersBefore?: number; parametersAfter?: number; eval?: { perplexity: Record<string, { ppl: number }> } }[];
    };
    expect(summary.status).toBe('completed');
    expect(summary.results.map((r) => [r.kind, r.name])).toEqual([
      ['prune', 'ffn-norm'],
      ['eval', 'eval'],
    ]);
    expect(summary.results[0]!.parametersBefore! - summary.results[0]!.parametersAfter!).toBe(expectedRemoved);
    const ppl = Object.values(summary.results[1]!.eval!.perplexity);
    expect(ppl).toHaveLength(1);
    expect(Number.isFinite(ppl[0]!.ppl) && ppl[0]!.ppl > 1).toBe(true);
    expect(existsSync(join(project, 'run1', 'model', 'model.safetensors'))).toBe(true);
    expect(JSON.parse(readFileSync(join(project, 'run1', 'model', 'config.json'), 'utf8')).intermediate_size).toBe(config.intermediate_size - removedPerBlock);

    // a misspelt option is refused with its recipe path before anything runs
    writeFileSync(join(project, 'typo.yaml'), recipe('{ method: ffn-norm, channelRatoi: 0.25 }'));
    const typo = topiary(bin, project, ['--json', 'run', 'typo.yaml', '--out', 'run2']);
    expect(typo.status, typo.stdout + typo.stderr).toBe(2);
    expect(typo.stderr).toContain('stages[0].prune.channelRatoi');
    expect(existsSync(join(project, 'run2', 'model'))).toBe(false);
    console.log(`install test: ffn-norm from flags, help, errors and two recipes in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }, 600_000);
});
