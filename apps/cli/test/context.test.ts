import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createRunContext, type GlobalOptions } from '../src/context.js';

const options: GlobalOptions = { backend: 'wasm', seed: 0, json: true, quiet: true, debug: false, plugin: [], allowPluginPath: false };
const cwd = process.cwd();
afterEach(() => process.chdir(cwd));

function project(plugin: { name: string; kernel: string; built: boolean }): string {
  const root = mkdtempSync(join(tmpdir(), 'topiary-ctx-'));
  const dir = join(root, 'node_modules', `topiary-${plugin.name}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `topiary-${plugin.name}`, version: '9.0.0', type: 'module', main: 'index.js', peerDependencies: { '@topiary/kernel': plugin.kernel }, topiary: { plugin: plugin.name, provides: {} } }));
  if (plugin.built) {
    writeFileSync(join(dir, 'index.js'), `export default { name: '${plugin.name}', register() {} };\n`);
  }
  return root;
}

describe('run context', () => {
  it('skips an installed plugin built for another kernel, with a warning, when nothing asks for it', async () => {
    process.chdir(project({ name: 'old-thing', kernel: '^9.0.0', built: true }));
    const ctx = await createRunContext(options);
    try {
      expect(ctx.plugins.map((p) => p.name)).not.toContain('old-thing');
      expect(ctx.plugins.map((p) => p.name)).toContain('backend-wasm'); // the cli's own default still loads
    } finally {
      ctx.close();
    }
  });

  it('refuses it when a recipe names it', async () => {
    process.chdir(project({ name: 'old-thing', kernel: '^9.0.0', built: true }));
    await expect(createRunContext(options, ['old-thing'])).rejects.toMatchObject({ code: 'E_PLUGIN_VERSION' });
  });

  it('lists the installed plugins when a recipe names a missing one', async () => {
    process.chdir(project({ name: 'broken', kernel: '^0.1.0', built: false }));
    await expect(createRunContext(options, ['nonexistent'])).rejects.toMatchObject({ code: 'E_PLUGIN_UNKNOWN', hint: expect.stringContaining('broken') });
    await expect(createRunContext(options, ['broken'])).rejects.toMatchObject({ code: 'E_PLUGIN_INVALID' });
  });
});
