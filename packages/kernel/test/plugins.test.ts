import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  checkKernelRange,
  createContainer,
  definePlugin,
  discoverPlugins,
  importPlugin,
  importPluginFromPath,
  KERNEL_VERSION,
  namedToken,
  resolveAllOrNone,
  PluginHost,
  resolveNamed,
  selectPlugins,
  Tokens,
  TopiaryError,
  type Saliency,
} from '../src/index.js';

function saliencyPlugin(name: string) {
  const saliency: Saliency = {
    name,
    description: 'test criterion',
    needs: ['weights'],
    score: (s) => s.weight.map((w) => Math.abs(w)),
  };
  return definePlugin({
    name,
    register(container) {
      container.register(Tokens.Saliency, { useValue: saliency });
    },
  });
}

function fakeInstall(root: string, pkgName: string, pluginName: string, kernel = '^0.1.0'): void {
  const dir = join(root, 'node_modules', ...pkgName.split('/'));
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: pkgName, version: '0.3.0', type: 'module', main: 'index.js', peerDependencies: { '@topiary/kernel': kernel }, topiary: { plugin: pluginName, provides: { saliency: [pluginName] } } }),
  );
  writeFileSync(
    join(dir, 'index.js'),
    `export default { name: ${JSON.stringify(pluginName)}, register(c) { c.register(Symbol.for('topiary:Saliency'), { useValue: { name: ${JSON.stringify(pluginName)}, description: '', needs: [], score: (s) => s.weight } }); } };\n`,
  );
}

describe('plugin registration', () => {
  it('registers implementations into the run container and resolves them by name', () => {
    const container = createContainer();
    new PluginHost(container).use(saliencyPlugin('alpha')).use(saliencyPlugin('beta')).freeze();
    const beta = resolveNamed(container, Tokens.Saliency, 'beta', 'saliency');
    expect(beta.name).toBe('beta');
    // named registrations: each implementation is bound under its own name too, however the plugin registered it
    expect(container.isRegistered(namedToken(Tokens.Saliency, 'beta'))).toBe(true);
    expect(container.resolve(namedToken(Tokens.Saliency, 'beta'))).toBe(beta);
    expect(resolveAllOrNone(container, Tokens.Saliency).map((s) => s.name)).toEqual(['alpha', 'beta']);
    expect(Array.from(beta.score({ param: 'w', rows: 1, cols: 3, weight: new Float32Array([-2, 1, -3]) }))).toEqual([2, 1, 3]);
  });

  it('keeps runs apart: a second container sees none of the first one’s registrations', () => {
    const a = createContainer();
    new PluginHost(a).use(saliencyPlugin('alpha')).freeze();
    const b = createContainer();
    expect(() => resolveNamed(b, Tokens.Saliency, 'alpha', 'saliency')).toThrow(
      expect.objectContaining({ code: 'E_PLUGIN_UNKNOWN', hint: 'no saliency plugin is installed' }),
    );
  });

  it('lists the known names when one is unknown', () => {
    const container = createContainer();
    new PluginHost(container).use(saliencyPlugin('alpha')).use(saliencyPlugin('beta')).freeze();
    try {
      resolveNamed(container, Tokens.Saliency, 'gamma', 'saliency', '--saliency');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(TopiaryError);
      const err = e as TopiaryError;
      expect(err.code).toBe('E_PLUGIN_UNKNOWN');
      expect(err.where).toBe('--saliency');
      expect(err.hint).toContain('alpha, beta');
      expect(err.exitCode).toBe(2);
    }
  });

  it('refuses a plugin built for another kernel (the range is its package.json peer dependency)', async () => {
    const container = createContainer();
    const manifest = { name: 'old', packageName: 'topiary-old', version: '1.2.3', provides: { saliency: ['old'] }, kernel: '^0.0.1' };
    expect(() => new PluginHost(container).use(saliencyPlugin('old'), {}, manifest)).toThrow(/needs kernel \^0\.0\.1, but this is kernel/);
    const root = mkdtempSync(join(tmpdir(), 'topiary-old-'));
    fakeInstall(root, 'topiary-old', 'old', '^0.0.1');
    // refused before any of its code is imported
    await expect(importPlugin(discoverPlugins([root])[0]!)).rejects.toMatchObject({ code: 'E_PLUGIN_VERSION' });
    expect(() => checkKernelRange({ name: 'x', version: '1.0.0' })).toThrow(/does not say which kernel/);
    expect(() => checkKernelRange({ name: 'x', version: '1.0.0', kernel: 'workspace:^' })).not.toThrow();
    expect(() => checkKernelRange({ name: 'x', version: '1.0.0', kernel: `^${KERNEL_VERSION}` })).not.toThrow();
    expect(() => checkKernelRange({ name: 'x', version: '1.0.0', kernel: 'not a range' })).toThrow(/invalid kernel range/);
  });

  it('refuses two different plugins with the same name', () => {
    const container = createContainer();
    const host = new PluginHost(container).use(saliencyPlugin('same'));
    expect(() => host.use(saliencyPlugin('same'))).toThrow(/two plugins claim the name "same"/);
  });

  it('refuses plugins used after freezing', () => {
    const host = new PluginHost(createContainer());
    host.freeze();
    expect(() => host.use(saliencyPlugin('late'))).toThrow(/after the plugin host was frozen/);
  });

  it('validates the definition', () => {
    expect(() => definePlugin({ name: 'Bad Name', register() {} })).toThrow(/lowercase/);
  });

  it('checks that register() binds exactly what package.json declares in provides', () => {
    const manifest = (provides: Record<string, string[]>) => ({ name: 'alpha', packageName: 'topiary-alpha', version: '1.0.0', kernel: '^0.1.0', provides });
    expect(() => new PluginHost(createContainer()).use(saliencyPlugin('alpha'), {}, manifest({ saliency: ['alpha'] })).freeze()).not.toThrow();
    expect(() => new PluginHost(createContainer()).use(saliencyPlugin('alpha'), {}, manifest({ saliency: ['alpha', 'beta'] })).freeze()).toThrow(
      expect.objectContaining({ code: 'E_PLUGIN_INVALID', message: expect.stringContaining('declares saliency beta that register() does not bind') }),
    );
    expect(() => new PluginHost(createContainer()).use(saliencyPlugin('alpha'), {}, manifest({})).freeze()).toThrow(
      expect.objectContaining({ code: 'E_PLUGIN_INVALID', where: 'topiary-alpha/package.json "topiary".provides.saliency' }),
    );
  });
});

describe('plugin discovery', () => {
  it('finds installed packages with a "topiary" field, imports them and lists them when a name is unknown', async () => {
    const root = mkdtempSync(join(tmpdir(), 'topiary-plugins-'));
    fakeInstall(root, '@acme/topiary-entropy', 'entropy');
    fakeInstall(root, 'topiary-other', 'other');
    mkdirSync(join(root, 'node_modules', 'not-a-plugin'), { recursive: true });
    writeFileSync(join(root, 'node_modules', 'not-a-plugin', 'package.json'), JSON.stringify({ name: 'not-a-plugin', version: '1.0.0' }));
    const sub = join(root, 'project', 'deep');
    mkdirSync(sub, { recursive: true });

    const found = discoverPlugins([sub]);
    expect(found.map((p) => p.name)).toEqual(['entropy', 'other']);
    expect(found[0]!.packageName).toBe('@acme/topiary-entropy');

    const plugin = await importPlugin(found[0]!);
    const container = createContainer();
    new PluginHost(container).use(plugin).freeze();
    expect(resolveNamed(container, Tokens.Saliency, 'entropy', 'saliency').name).toBe('entropy');

    expect(() => selectPlugins(found, ['entropy', 'nope'], 'plugins')).toThrow(
      expect.objectContaining({ code: 'E_PLUGIN_UNKNOWN', where: 'plugins[1]', hint: 'installed plugins: entropy, other' }),
    );
  });

  it('reports two installed packages that claim one name', () => {
    const root = mkdtempSync(join(tmpdir(), 'topiary-dupes-'));
    fakeInstall(root, 'topiary-a', 'same');
    fakeInstall(root, 'topiary-b', 'same');
    expect(() => selectPlugins(discoverPlugins([root]), [])).toThrow(/two plugins claim the name "same": topiary-a and topiary-b/);
  });

  it('loads code from a path only with an explicit opt-in', async () => {
    const root = mkdtempSync(join(tmpdir(), 'topiary-path-'));
    fakeInstall(root, 'topiary-local', 'local');
    const dir = join(root, 'node_modules', 'topiary-local');
    await expect(importPluginFromPath(dir, false)).rejects.toThrow(/explicit opt-in/);
    const { plugin, manifest } = await importPluginFromPath(dir, true);
    expect(plugin.name).toBe('local');
    expect(manifest?.provides).toEqual({ saliency: ['local'] });
  });
});
