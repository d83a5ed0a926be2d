/**
 * Users install only what they need: pack the packages with `pnpm pack`, install ONLY the kernel, the cli,
 * backend-wasm, one pruner (wanda) and the custom saliency example (plus the libraries the cli itself depends on)
 * into an empty project with npm, and prune the shipped model with that saliency.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assets, repoRoot } from '../data.js';

/** What the user installs by choice. */
const chosen = ['packages/kernel', 'apps/cli', 'plugins/backend-wasm', 'plugins/pruner-wanda', 'examples/saliency-plugin'];

/**
 * The workspace packages the chosen ones depend on, transitively (from a registry npm would fetch them; here they
 * are packed too): the cli's libraries, and saliency-basic, which pruner-wanda depends on for its default score.
 */
function withWorkspaceDependencies(dirs: readonly string[]): string[] {
  const byName = new Map<string, string>();
  for (const group of ['packages', 'plugins', 'apps', 'examples']) {
    for (const entry of readdirSync(join(repoRoot, group))) {
      const file = join(repoRoot, group, entry, 'package.json');
      if (existsSync(file)) byName.set((JSON.parse(readFileSync(file, 'utf8')) as { name: string }).name, `${group}/${entry}`);
    }
  }
  const out = new Set<string>();
  const visit = (dir: string) => {
    if (out.has(dir)) return;
    out.add(dir);
    const pkg = JSON.parse(readFileSync(join(repoRoot, dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    for (const dep of Object.keys(pkg.dependencies ?? {})) {
      const depDir = byName.get(dep);
      if (depDir) visit(depDir);
    }
  };
  dirs.forEach(visit);
  return [...out];
}

function hasCommand(cmd: string): boolean {
  try {
    execFileSync(cmd, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const missing = ['pnpm', 'npm'].filter((c) => !hasCommand(c));
if (missing.length) console.log(`skipped: the install test needs ${missing.join(' and ')} on PATH`);

describe.skipIf(missing.length > 0)('packed packages installed into an empty project', () => {
  it('installs only the chosen plugins and prunes with the custom saliency', () => {
    const work = mkdtempSync(join(tmpdir(), 'topiary-install-'));
    const tarballs = join(work, 'tgz');
    mkdirSync(tarballs);
    const packed = withWorkspaceDependencies(chosen);
    for (const pkg of packed) {
      execFileSync('pnpm', ['pack', '--pack-destination', tarballs], { cwd: join(repoRoot, pkg), stdio: 'ignore' });
    }
    const files = readdirSync(tarballs).filter((f) => f.endsWith('.tgz'));
    expect(files).toHaveLength(packed.length);

    const project = join(work, 'project');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...files.map((f) => join(tarballs, f))], {
      cwd: project,
      stdio: 'ignore',
      timeout: 300_000,
    });
    const bin = join(project, 'node_modules', '.bin', 'topiary');
    expect(existsSync(bin)).toBe(true);

    const listed = JSON.parse(execFileSync(bin, ['--json', 'plugins'], { cwd: project, encoding: 'utf8' })) as { plugins: { name: string; provides: Record<string, string[]> }[] };
    const names = listed.plugins.map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['backend-wasm', 'pruner-wanda', 'saliency-ria']));
    // nothing the user did not ask for: no other pruner, backend or saliency plugin
    expect(names).not.toContain('pruner-sparsegpt');
    expect(names).not.toContain('pruner-magnitude');
    expect(names).not.toContain('backend-cpu');

    const text = join(project, 'calibration.txt');
    writeFileSync(text, readFileSync(join(assets, 'data', 'tinystories_val_head.txt'), 'utf8').slice(0, 30_000));
    const out = execFileSync(
      bin,
      ['--json', 'prune', '--model', join(assets, 'models', 'stories260K-hf'), '--method', 'wanda', '--saliency', 'ria', '--sparsity', '0.5', '--calibration', text, '--samples', '8', '--seqlen', '64', '--out', 'pruned'],
      { cwd: project, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    );
    const result = JSON.parse(out) as { sparsity: number; details: { saliency: string } };
    expect(result.details.saliency).toBe('ria');
    expect(result.sparsity).toBeCloseTo(0.5, 2);
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json']) expect(existsSync(join(project, 'pruned', f))).toBe(true);

    // the pruned folder is a model the same install can read back
    const inspected = JSON.parse(execFileSync(bin, ['--json', 'inspect', '--model', join(project, 'pruned')], { cwd: project, encoding: 'utf8' })) as { parameters: unknown };
    expect(inspected.parameters).toBeDefined();
  });
});
