/**
 * One declaration each, and it must not lie:
 * - every plugin package's `"topiary".provides` (package.json) is exactly what its `register()` binds — checked by
 *   the kernel's PluginHost when the package is loaded with its manifest;
 * - the kernel range is written once: workspace packages name the kernel as `workspace:^` (pnpm writes the
 *   kernel's version when packing), never a hand-copied range;
 * - packages never import plugins: nothing under packages/ depends on or imports a plugins/ package.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createContainer, importPlugin, PluginHost, type DiscoveredPlugin } from '@topiary/kernel';
import { repoRoot } from '../data.js';

interface Manifest {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  topiary?: { plugin?: string; provides?: Record<string, string[]> };
}

const groups = ['packages', 'plugins', 'apps', 'examples'];
const workspace = groups.flatMap((group) =>
  readdirSync(join(repoRoot, group))
    .filter((d) => existsSync(join(repoRoot, group, d, 'package.json')))
    .map((d) => ({ dir: join(repoRoot, group, d), rel: `${group}/${d}`, manifest: JSON.parse(readFileSync(join(repoRoot, group, d, 'package.json'), 'utf8')) as Manifest })),
);
const pluginPackages = new Set(workspace.filter((w) => w.rel.startsWith('plugins/')).map((w) => w.manifest.name));

describe('one declaration each', () => {
  const plugins = workspace.filter((w) => w.manifest.topiary);
  it.each(plugins.map((p) => [p.rel, p] as const))('%s registers exactly what its package.json provides', async (_rel, w) => {
    if (!existsSync(join(w.dir, 'dist'))) {
      console.log(`skipped ${w.rel}: not built (run pnpm build)`);
      return;
    }
    const found: DiscoveredPlugin = {
      name: w.manifest.topiary!.plugin!,
      packageName: w.manifest.name,
      version: w.manifest.version,
      dir: w.dir,
      provides: w.manifest.topiary!.provides ?? {},
      kernel: w.manifest.peerDependencies?.['@topiary/kernel'],
    };
    const plugin = await importPlugin(found);
    expect(plugin.name).toBe(found.name);
    expect(() => new PluginHost(createContainer()).use(plugin, {}, found).freeze()).not.toThrow();
  });

  it('the kernel range is written in one place: workspace packages take the kernel as workspace:^', () => {
    const copied = workspace
      .filter((w) => !w.rel.startsWith('examples/')) // the examples are third-party templates: they write a range, as an outsider would
      .flatMap((w) => Object.entries({ ...w.manifest.dependencies, ...w.manifest.peerDependencies }).filter(([n, range]) => n === '@topiary/kernel' && !range.startsWith('workspace:')).map(([, r]) => `${w.rel}: ${r}`));
    expect(copied).toEqual([]);
  });

  it('dependencies point one way: the kernel needs no Topiary package, nothing depends on an app, examples only on the kernel', () => {
    const topiaryDeps = (m: Manifest) => Object.keys({ ...m.dependencies, ...m.peerDependencies }).filter((n) => n.startsWith('@topiary/') || n.startsWith('topiary-'));
    const apps = new Set(workspace.filter((w) => w.rel.startsWith('apps/')).map((w) => w.manifest.name));
    const kernel = workspace.find((w) => w.rel === 'packages/kernel')!;
    expect(topiaryDeps(kernel.manifest)).toEqual([]);
    expect(workspace.flatMap((w) => topiaryDeps(w.manifest).filter((d) => apps.has(d)).map((d) => `${w.rel} → ${d}`))).toEqual([]);
    for (const w of workspace.filter((x) => x.rel.startsWith('examples/'))) expect(topiaryDeps(w.manifest), w.rel).toEqual(['@topiary/kernel']);
  });

  it('packages never import plugins (dependencies or imports in src)', () => {
    const offenders: string[] = [];
    for (const w of workspace.filter((x) => x.rel.startsWith('packages/'))) {
      for (const dep of Object.keys(w.manifest.dependencies ?? {})) if (pluginPackages.has(dep)) offenders.push(`${w.rel} depends on ${dep}`);
      const walk = (dir: string): void => {
        for (const entry of readdirSync(dir, { withFileTypes: true })) {
          const full = join(dir, entry.name);
          if (entry.isDirectory()) walk(full);
          else if (entry.name.endsWith('.ts')) {
            const text = readFileSync(full, 'utf8');
            for (const name of pluginPackages) if (text.includes(`from '${name}'`)) offenders.push(`${full.slice(repoRoot.length + 1)} imports ${name}`);
          }
        }
      };
      walk(join(w.dir, 'src'));
    }
    expect(offenders).toEqual([]);
  });
});
