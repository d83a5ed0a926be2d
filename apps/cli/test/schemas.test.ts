/** What the plugins' own option schemas give the command line: `plugins --json`, `recipe-schema`, prune's help. */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers.js';

type Json = Record<string, unknown>;

describe('options as schemas on the command line', () => {
  it('plugins --json prints every installed pruner, scheduler and stage with its option schema', async () => {
    const r = await runCli(['--json', 'plugins']);
    expect(r.code, r.stderr).toBe(0);
    const { plugins } = JSON.parse(r.stdout) as { plugins: { name: string; schemas: Record<string, Record<string, Json>> }[] };
    const wanda = plugins.find((p) => p.name === 'pruner-wanda')!.schemas.pruners!['wanda'] as { options: { properties: Record<string, { description?: string; default?: unknown }> } };
    expect(wanda.options.properties['sparsity']!.description).toContain('fraction of weights');
    expect(wanda.options.properties['scope']!.default).toBe('row');
    const stages = plugins.find((p) => p.name === 'pipeline-stages')!.schemas.stages!;
    expect(Object.keys(stages).sort()).toEqual(['eval', 'finetune', 'prune', 'train']);
    const ria = plugins.flatMap((p) => Object.entries(p.schemas.saliency ?? {})).find(([name]) => name === 'wanda');
    expect(ria?.[1]).toMatchObject({ needs: expect.arrayContaining(['activations']) });
  });

  it('recipe-schema writes the JSON Schema of recipes: every stage kind, one prune shape per installed pruner', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'topiary-schema-')), 'recipe.schema.json');
    const r = await runCli(['--out', out, 'recipe-schema']);
    expect(r.code, r.stderr).toBe(0);
    const schema = JSON.parse(readFileSync(out, 'utf8')) as { properties: Json & { stages: { items: { oneOf: { title: string; properties: Json }[] } } } };
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['model', 'backend', 'seed', 'data', 'stages', 'output']));
    const kinds = schema.properties.stages.items.oneOf;
    expect(kinds.map((k) => k.title).sort()).toEqual(['eval', 'finetune', 'prune', 'train']);
    const prune = kinds.find((k) => k.title === 'prune')!.properties['prune'] as { oneOf: { title: string; properties: Json; required: string[]; additionalProperties: boolean }[] };
    const wanda = prune.oneOf.find((p) => p.title === 'wanda')!;
    expect(wanda.properties['method']).toEqual({ const: 'wanda' });
    expect(Object.keys(wanda.properties)).toEqual(expect.arrayContaining(['sparsity', 'pattern', 'owl', 'saliency', 'calibration']));
    expect(wanda.additionalProperties).toBe(false);
    const llmPruner = prune.oneOf.find((p) => p.title === 'llm-pruner')!;
    expect(llmPruner.required).toEqual(['method', 'ratio']);
    const finetune = kinds.find((k) => k.title === 'finetune')!.properties['finetune'] as { properties: Record<string, { default?: unknown }> };
    expect(finetune.properties['lr']!.default).toBe(1e-4);
  });

  it('prune --help --method NAME shows that method’s options from its schema, with defaults', async () => {
    const r = await runCli(['prune', '--help', '--method', 'sparsegpt']);
    expect(r.code).toBe(0);
    const section = r.stdout.slice(r.stdout.indexOf('Methods installed'));
    expect(section).toMatch(/sparsegpt — /);
    expect(section).toMatch(/--blocksize <n>\s+column block size \(default 128\)/);
    expect(section).not.toMatch(/llm-pruner — /);
  });

  it('a flag of another method is refused, naming the flag; a bad value names the flag and the rule', async () => {
    const other = await runCli(['prune', '--model', 'm', '--method', 'wanda', '--ratio', '0.2', '--out', 'x']);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain('--ratio: is not an option of --method wanda');
    const bad = await runCli(['prune', '--model', 'assets/models/stories260K-hf', '--method', 'magnitude', '--sparsity', '1.5', '--out', join(tmpdir(), 'never')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--sparsity: must be in [0,1), got 1.5');
  });
});
