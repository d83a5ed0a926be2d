/**
 * Finding and loading plugins. A package is a Topiary plugin when its package.json has a `"topiary"` field:
 * `{ "plugin": "<short name>", "provides": { "pruners": ["wanda"] } }`. Only packages installed for the project
 * are considered (node_modules folders from the search roots upwards); loading code from a path needs an
 * explicit opt-in. The loader checks the kernel range and refuses duplicates and unknown names with messages
 * that say what is installed.
 */
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import semver from 'semver';
import type { DependencyContainer, InjectionToken } from 'tsyringe';
import { namedToken } from './container.js';
import { parseOptions } from './options.js';
import { TopiaryError } from './errors.js';
import { isTopiaryPlugin, KERNEL_VERSION, PROVIDES_KIND_OF_TOKEN, type PluginProvides, type TopiaryPlugin } from './plugin.js';

export interface DiscoveredPlugin {
  /** The short name from the `"topiary".plugin` field. */
  name: string;
  packageName: string;
  version: string;
  dir: string;
  provides: PluginProvides;
  /** The kernel range it works with: its package.json's `peerDependencies["@topiary/kernel"]`. */
  kernel?: string;
  description?: string;
}

/** What the host knows of a plugin beyond its code: the manifest discovery read from its package.json. */
export type PluginManifest = Pick<DiscoveredPlugin, 'name' | 'packageName' | 'version' | 'provides' | 'kernel'>;

interface PackageJson {
  name?: string;
  version?: string;
  description?: string;
  peerDependencies?: Record<string, string>;
  dependencies?: Record<string, string>;
  topiary?: { plugin?: string; provides?: PluginProvides };
}

function readPackageJson(dir: string): PackageJson | undefined {
  const file = join(dir, 'package.json');
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as PackageJson;
  } catch {
    return undefined;
  }
}

function describePackage(dir: string, pkg: PackageJson): DiscoveredPlugin | undefined {
  if (!pkg.topiary || typeof pkg.name !== 'string') return undefined;
  return {
    name: pkg.topiary.plugin ?? pkg.name.replace(/^@[^/]+\//, '').replace(/^topiary-/, ''),
    packageName: pkg.name,
    version: pkg.version ?? '0.0.0',
    dir,
    provides: pkg.topiary.provides ?? {},
    kernel: pkg.peerDependencies?.['@topiary/kernel'] ?? pkg.dependencies?.['@topiary/kernel'],
    description: pkg.description,
  };
}

function packagesIn(nodeModules: string): string[] {
  const dirs: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(nodeModules);
  } catch {
    return dirs;
  }
  for (const entry of entries) {
    if (entry.startsWith('.')) continue;
    const full = join(nodeModules, entry);
    if (entry.startsWith('@')) {
      try {
        for (const inner of readdirSync(full)) dirs.push(join(full, inner));
      } catch {
        /* unreadable scope folder: skip */
      }
    } else {
      dirs.push(full);
    }
  }
  return dirs;
}

/**
 * Every installed plugin visible from the given roots (each root and its parents' node_modules), first seen wins
 * per package name. The same package reached twice (pnpm symlinks) counts once.
 */
export function discoverPlugins(roots: readonly string[]): DiscoveredPlugin[] {
  const byPackage = new Map<string, DiscoveredPlugin>();
  const seenDirs = new Set<string>();
  for (const root of roots) {
    let dir = resolve(root);
    for (;;) {
      const nm = join(dir, 'node_modules');
      if (existsSync(nm)) {
        for (const candidate of packagesIn(nm)) {
          let real: string;
          try {
            real = realpathSync(candidate);
            if (!statSync(real).isDirectory()) continue;
          } catch {
            continue;
          }
          if (seenDirs.has(real)) continue;
          seenDirs.add(real);
          const pkg = readPackageJson(real);
          const found = pkg && describePackage(real, pkg);
          if (found && !byPackage.has(found.packageName)) byPackage.set(found.packageName, found);
        }
      }
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  return [...byPackage.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** Two installed packages claiming the same short name is an error: a recipe could not say which it means. */
export function checkDuplicateNames(plugins: readonly { name: string; packageName?: string }[]): void {
  const seen = new Map<string, string>();
  for (const p of plugins) {
    const owner = seen.get(p.name);
    if (owner !== undefined) {
      throw new TopiaryError('E_PLUGIN_DUPLICATE', `two plugins claim the name "${p.name}": ${owner} and ${p.packageName ?? p.name}`, {
        where: p.name,
        hint: 'uninstall one of them',
      });
    }
    seen.set(p.name, p.packageName ?? p.name);
  }
}

/**
 * Refuse a plugin built for another kernel. The range is its package.json's kernel peer dependency; a plugin of this
 * workspace (`workspace:^`, rewritten to the kernel's version when packed) is built against this kernel.
 */
export function checkKernelRange(plugin: { name: string; version: string; kernel?: string }, kernelVersion = KERNEL_VERSION): void {
  if (plugin.kernel === undefined) {
    throw new TopiaryError('E_PLUGIN_INVALID', `plugin "${plugin.name}" does not say which kernel it works with`, {
      where: plugin.name,
      hint: 'add "peerDependencies": { "@topiary/kernel": "^<version>" } to its package.json',
    });
  }
  if (plugin.kernel.startsWith('workspace:')) return;
  const range = semver.validRange(plugin.kernel);
  if (!range) {
    throw new TopiaryError('E_PLUGIN_INVALID', `plugin "${plugin.name}" declares an invalid kernel range "${plugin.kernel}"`, {
      where: plugin.name,
    });
  }
  if (!semver.satisfies(kernelVersion, range, { includePrerelease: true })) {
    throw new TopiaryError(
      'E_PLUGIN_VERSION',
      `plugin "${plugin.name}" ${plugin.version} needs kernel ${plugin.kernel}, but this is kernel ${kernelVersion}`,
      { where: plugin.name, hint: `install a version of ${plugin.name} built for kernel ${kernelVersion}` },
    );
  }
}

/** Import a discovered package and return its default-exported plugin. */
export async function importPlugin(found: DiscoveredPlugin): Promise<TopiaryPlugin> {
  checkKernelRange(found); // before any of its code runs
  const pkg = JSON.parse(readFileSync(join(found.dir, 'package.json'), 'utf8')) as {
    exports?: unknown;
    main?: string;
    module?: string;
  };
  let entry: string | undefined;
  const exp = pkg.exports as Record<string, unknown> | string | undefined;
  const dot = typeof exp === 'string' ? exp : (exp?.['.'] as Record<string, unknown> | string | undefined);
  if (typeof dot === 'string') entry = dot;
  else if (dot && typeof dot === 'object') entry = (dot['import'] ?? dot['default']) as string | undefined;
  entry ??= pkg.module ?? pkg.main ?? 'index.js';
  const file = join(found.dir, entry);
  if (!existsSync(file)) {
    throw new TopiaryError('E_PLUGIN_INVALID', `plugin "${found.name}" entry ${entry} does not exist (is the package built?)`, {
      where: file,
    });
  }
  const mod = (await import(pathToFileURL(file).href)) as { default?: unknown; plugin?: unknown };
  const plugin = mod.default ?? mod.plugin;
  if (!isTopiaryPlugin(plugin)) {
    throw new TopiaryError('E_PLUGIN_INVALID', `package ${found.packageName} has a "topiary" field but exports no plugin`, {
      where: file,
      hint: 'export default definePlugin({ name, version, kernel, provides, register })',
    });
  }
  return plugin;
}

/**
 * Load plugins from an explicit path (a folder with package.json, or a .js file). Refused unless the caller
 * opted in (the CLI's `--allow-plugin-path`): recipes must not run arbitrary code by naming a file.
 */
export async function importPluginFromPath(path: string, allowPaths: boolean): Promise<{ plugin: TopiaryPlugin; manifest?: PluginManifest }> {
  if (!allowPaths) {
    throw new TopiaryError('E_USAGE', `loading a plugin from a path needs an explicit opt-in`, {
      where: path,
      hint: 'pass --allow-plugin-path, or install the plugin as a package',
    });
  }
  const abs = resolve(path);
  if (!existsSync(abs)) throw new TopiaryError('E_IO', 'plugin path does not exist', { where: abs });
  if (statSync(abs).isDirectory()) {
    const pkg = readPackageJson(abs);
    const found = pkg && describePackage(abs, pkg);
    if (!found) throw new TopiaryError('E_PLUGIN_INVALID', 'folder has no package.json with a "topiary" field', { where: abs });
    return { plugin: await importPlugin(found), manifest: found };
  }
  // a bare file has no manifest: nothing to check its registrations against (the user opted in explicitly)
  const mod = (await import(pathToFileURL(abs).href)) as { default?: unknown };
  if (!isTopiaryPlugin(mod.default)) throw new TopiaryError('E_PLUGIN_INVALID', 'file exports no plugin', { where: abs });
  return { plugin: mod.default };
}

/** A container that notes what is registered into it (token and implementation name), then passes it on. */
function recordingContainer(container: DependencyContainer, seen: Map<keyof PluginProvides, Set<string>>): DependencyContainer {
  return new Proxy(container, {
    get(target, prop, receiver) {
      if (prop !== 'register') return Reflect.get(target, prop, receiver) as unknown;
      return (token: unknown, provider: { useValue?: unknown }, ...rest: unknown[]) => {
        const kind = typeof token === 'symbol' && token.description ? PROVIDES_KIND_OF_TOKEN[token.description] : undefined;
        const value = provider?.useValue as { name?: unknown; kind?: unknown } | undefined;
        const name = kind === 'stages' ? value?.kind : value?.name;
        const result = (target.register as (...a: unknown[]) => unknown).call(target, token, provider, ...rest);
        if (kind && typeof name === 'string') {
          const names = seen.get(kind) ?? new Set<string>();
          names.add(name);
          seen.set(kind, names);
          // every implementation is also bound under its own name (what `provide` does), however it was registered
          const named = namedToken(token as InjectionToken<unknown>, name);
          if (!target.isRegistered(named)) target.register(named, provider as { useValue: unknown });
        }
        return result;
      };
    },
  });
}

/** `register` must bind exactly what the package.json's `provides` declares: the one declaration must not lie. */
function checkProvides(manifest: PluginManifest, seen: Map<keyof PluginProvides, Set<string>>): void {
  const kinds = new Set<keyof PluginProvides>([...(Object.keys(manifest.provides) as (keyof PluginProvides)[]), ...seen.keys()]);
  for (const kind of kinds) {
    const declared = new Set(manifest.provides[kind] ?? []);
    const registered = seen.get(kind) ?? new Set<string>();
    const missing = [...declared].filter((n) => !registered.has(n));
    const extra = [...registered].filter((n) => !declared.has(n));
    if (missing.length > 0 || extra.length > 0) {
      const parts = [
        ...(extra.length ? [`registers ${kind} ${extra.join(', ')} that package.json does not declare`] : []),
        ...(missing.length ? [`declares ${kind} ${missing.join(', ')} that register() does not bind`] : []),
      ];
      throw new TopiaryError('E_PLUGIN_INVALID', `plugin "${manifest.name}" (${manifest.packageName}) ${parts.join('; ')}`, {
        where: `${manifest.packageName}/package.json "topiary".provides.${kind}`,
        hint: 'make "topiary".provides in package.json list exactly what register() binds',
      });
    }
  }
}

/**
 * Holds the plugins of one run: checks them and registers them into that run's container.
 * Plugins are `use`d, then `freeze()` registers everything; using a plugin after freezing is an error. A plugin
 * used with its manifest (what discovery read from its package.json) has its kernel range checked at `use` and
 * its registrations checked against `provides` at `freeze`.
 */
export class PluginHost {
  private readonly plugins = new Map<string, { plugin: TopiaryPlugin; options: Record<string, unknown>; manifest?: PluginManifest }>();
  private frozen = false;

  constructor(
    private readonly container: DependencyContainer,
    private readonly kernelVersion: string = KERNEL_VERSION,
  ) {}

  use(plugin: TopiaryPlugin, options: Record<string, unknown> = {}, manifest?: PluginManifest): this {
    if (this.frozen) {
      throw new TopiaryError('E_INTERNAL', `cannot use plugin "${plugin.name}" after the plugin host was frozen`, {
        hint: 'use every plugin before resolving anything',
      });
    }
    const existing = this.plugins.get(plugin.name);
    if (existing && existing.plugin !== plugin) {
      throw new TopiaryError('E_PLUGIN_DUPLICATE', `two plugins claim the name "${plugin.name}"`, { where: plugin.name });
    }
    if (manifest) checkKernelRange(manifest, this.kernelVersion);
    this.plugins.set(plugin.name, { plugin, options: { ...(existing?.options ?? {}), ...options }, manifest: manifest ?? existing?.manifest });
    return this;
  }

  freeze(): DependencyContainer {
    if (!this.frozen) {
      for (const { plugin, options, manifest } of this.plugins.values()) {
        const seen = new Map<keyof PluginProvides, Set<string>>();
        const parsed = plugin.options ? (parseOptions(plugin.options, options, `plugins.${plugin.name}`) as Record<string, unknown>) : options;
        plugin.register(recordingContainer(this.container, seen), parsed);
        if (manifest) checkProvides(manifest, seen);
      }
      this.frozen = true;
    }
    return this.container;
  }

  names(): string[] {
    return [...this.plugins.keys()].sort();
  }

  list(): TopiaryPlugin[] {
    return [...this.plugins.values()].map((p) => p.plugin);
  }

  /** The manifest a plugin was used with (version, provides), when it came from a package. */
  manifest(name: string): PluginManifest | undefined {
    return this.plugins.get(name)?.manifest;
  }
}

/** Select plugins by short name among the installed ones; unknown names list what is installed. */
export function selectPlugins(installed: readonly DiscoveredPlugin[], wanted: readonly string[], where = 'plugins'): DiscoveredPlugin[] {
  checkDuplicateNames(installed);
  return wanted.map((name, i) => {
    const found = installed.find((p) => p.name === name || p.packageName === name);
    if (!found) {
      const known = installed.map((p) => p.name).join(', ') || '(none)';
      throw new TopiaryError('E_PLUGIN_UNKNOWN', `unknown plugin "${name}"`, {
        where: `${where}[${i}]`,
        hint: `installed plugins: ${known}`,
      });
    }
    return found;
  });
}
