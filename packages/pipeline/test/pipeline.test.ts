import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createContainer, parseRecipeText, resolveAllOrNone, resolveNamed, Tokens, z, type Stage } from '@topiary/kernel';
import { evalStage, installedStages, openRun, planRecipe, recipeJsonSchema, resolveRecipePaths, resolveStagePaths, type RunOptions } from '../src/index.js';

const options: RunOptions = { backend: 'wasm', seed: 0, plugin: [], allowPluginPath: false };

/** A project folder with one installed plugin package (plain JS, as a third party would ship it). */
function project(pkg: { name: string; plugin: string; provides: Record<string, string[]>; code: string }): string {
  const root = mkdtempSync(join(tmpdir(), 'topiary-pipeline-'));
  const dir = join(root, 'node_modules', pkg.name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: pkg.name, version: '1.0.0', type: 'module', main: 'index.js', peerDependencies: { '@topiary/kernel': '^0.1.0' }, topiary: { plugin: pkg.plugin, provides: pkg.provides } }),
  );
  writeFileSync(join(dir, 'index.js'), pkg.code);
  return root;
}

const saliencyPackage = (name: string) =>
  project({
    name: `topiary-saliency-${name}`,
    plugin: `saliency-${name}`,
    provides: { saliency: [name] },
    code: `export default { name: 'saliency-${name}', register(c) { c.register(Symbol.for('topiary:Saliency'), { useValue: { name: '${name}', description: '', needs: ['weights'], score: (s) => s.weight } }); } };\n`,
  });

/** A plugin that adds a stage kind of its own, with its own options schema. */
const stagePackage = (declared: string[]) =>
  project({
    name: 'topiary-stage-note',
    plugin: 'stage-note',
    provides: { stages: declared },
    code: `
const options = { safeParse: undefined };
export default { name: 'stage-note', register(c) { c.register(Symbol.for('topiary:Stage'), { useValue: globalThis.__noteStage }); } };\n`,
  });

describe('runs', () => {
  it('two runs in one process never see each other’s plugins (a child container each, nothing in the root)', async () => {
    const a = await openRun(options, [saliencyPackage('alpha')]);
    const b = await openRun(options, [saliencyPackage('beta')]);
    expect(resolveNamed(a.container, Tokens.Saliency, 'alpha', 'saliency').name).toBe('alpha');
    expect(() => resolveNamed(b.container, Tokens.Saliency, 'alpha', 'saliency')).toThrow(expect.objectContaining({ code: 'E_PLUGIN_UNKNOWN' }));
    expect(resolveNamed(b.container, Tokens.Saliency, 'beta', 'saliency').name).toBe('beta');
    expect(resolveAllOrNone(createContainer(), Tokens.Saliency)).toEqual([]);
    // every run has the pipeline's own stages
    expect(installedStages(a).map((s) => s.kind).sort()).toEqual(['eval', 'finetune', 'prune', 'train']);
  });

  it('a plugin adds a stage kind: recipes validate it against its schema, the recipe schema lists it', async () => {
    const noteStage: Stage = {
      kind: 'note',
      description: 'writes a line into the run log',
      options: z.object({ text: z.string().meta({ description: 'what to write' }), file: z.string().optional().meta({ path: true }) }).strict(),
      async run(model, prepared, ctx) {
        ctx.events.log('info', String((prepared as { text: string }).text));
        return { model, result: { index: ctx.index, kind: 'note', name: 'note', seconds: 0 }, changedModel: false };
      },
    };
    (globalThis as { __noteStage?: Stage }).__noteStage = noteStage;
    const run = await openRun(options, [stagePackage(['note'])]);
    const ok = parseRecipeText('model: m\nstages:\n  - note: { text: hello, file: notes/a.txt }\n', '/r/recipe.yaml');
    expect(planRecipe(run, ok)[0]!.runner).toBe(noteStage);
    expect(resolveRecipePaths(ok, '/r', installedStages(run)).stages[0]!.options).toEqual({ text: 'hello', file: '/r/notes/a.txt' });
    const typo = parseRecipeText('stages:\n  - note: { txt: hello }\n', 'r.yaml');
    expect(() => planRecipe(run, typo)).toThrow(expect.objectContaining({ code: 'E_RECIPE', file: 'r.yaml', where: 'stages[0].note.txt', message: 'unknown field' }));
    const unknown = parseRecipeText('stages:\n  - notes: {}\n', 'r.yaml');
    expect(() => planRecipe(run, unknown)).toThrow(expect.objectContaining({ where: 'stages[0]', hint: expect.stringContaining('note') }));
    const schema = recipeJsonSchema(run.container) as { properties: { stages: { items: { oneOf: { title: string }[] } } } };
    expect(schema.properties.stages.items.oneOf.map((s) => s.title)).toContain('note');

    // what register() binds must be what package.json declares
    await expect(openRun(options, [stagePackage(['note', 'other'])], { required: ['stage-note'] })).rejects.toMatchObject({ code: 'E_PLUGIN_INVALID' });
  });
});

describe('recipe paths follow the schemas', () => {
  it('eval tasks: files are resolved, registered task names are left alone', () => {
    const abs = (p: string) => `/base/${p.replace(/^\.\//, '')}`;
    expect(resolveStagePaths(evalStage, { tasks: ['piqa', './mine.jsonl', 'data/arc.json'], perplexity: 'held-out.txt', numFewshot: 2 }, abs)).toEqual({
      tasks: ['piqa', '/base/mine.jsonl', '/base/data/arc.json'],
      perplexity: '/base/held-out.txt',
      numFewshot: 2,
    });
  });

  it('makes path fields absolute at any depth, in lists, and leaves keywords alone', () => {
    const stage = {
      options: z.object({
        data: z.string().meta({ path: true }),
        files: z.union([z.string(), z.array(z.string())]).meta({ path: true }),
        teacher: z.string().meta({ path: true, keywords: ['source'] }),
        nested: z.object({ from: z.string().meta({ path: true }), name: z.string() }),
        name: z.string(),
      }),
    };
    const abs = (p: string) => `/base/${p}`;
    expect(resolveStagePaths(stage, { data: 'a.txt', files: ['b', '/c'], teacher: 'source', nested: { from: 'm', name: 'x' }, name: 'y' }, (p) => (p.startsWith('/') ? p : abs(p)))).toEqual({
      data: '/base/a.txt',
      files: ['/base/b', '/c'],
      teacher: 'source',
      nested: { from: '/base/m', name: 'x' },
      name: 'y',
    });
  });
});
