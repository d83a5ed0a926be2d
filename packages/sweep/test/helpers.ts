/** What the sweep tests share: the bundled model, a small text, grid files written into a temp folder. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const repo = resolve(__dirname, '../../..');
export const model = join(repo, 'assets/models/stories260K-hf');

/** The first 40 KB of the shipped TinyStories text: enough windows, fast to tokenize. */
export function smallText(dir: string): string {
  const file = join(dir, 'tinystories-40k.txt');
  writeFileSync(file, readFileSync(join(repo, 'assets/data/tinystories_val_head.txt'), 'utf8').slice(0, 40_000));
  return file;
}

/** A grid of the usual small run (eval, prune, eval on 4 windows of 64 tokens) with the given `matrix:` lines. */
export function writeGrid(matrix: string, options: { dir?: string; name?: string; stages?: string } = {}): { dir: string; file: string; text: string } {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'topiary-sweep-'));
  const text = smallText(dir);
  const evalStage = `  - eval: { perplexity: [${text}], seqlen: 64, limit: 4 }`;
  const stages = options.stages ?? [evalStage, '  - prune: { method: wanda, sparsity: 0.5 }', evalStage].join('\n');
  const file = join(dir, options.name ?? 'grid.yaml');
  writeFileSync(file, `model: { from: ${model} }\ndata:\n  calibration: { path: ./tinystories-40k.txt, samples: 4, seqlen: 64 }\nstages:\n${stages}\n${matrix}\noutput: ./sweep\n`);
  return { dir, file, text };
}
