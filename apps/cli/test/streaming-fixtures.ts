/**
 * Fixtures of the streaming tests (streaming.test.ts, streamed-structured.test.ts): a work folder removed after the
 * file's tests, a 24 KB slice of the bundled TinyStories text, and a seeded random LLaMA with 4 blocks in bf16 across
 * shards, with stories260K's tokenizer (the same 512-token vocabulary).
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll } from 'vitest';
import { createLlama, writeHf } from '@topiary/model-llama';

export const root = resolve(__dirname, '..', '..', '..');
export const STORIES = join(root, 'assets', 'models', 'stories260K-hf');

export interface StreamingFixtures {
  work: string;
  /** The text slice, for calibration and evaluation. */
  text: string;
  /** The random bf16 sharded model's folder (written on first call). */
  randomBf16Model(): string;
}

/** Call at a test file's top level: the work folder is removed after that file's tests. */
export function streamingFixtures(prefix: string): StreamingFixtures {
  const work = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(work, { recursive: true, force: true }));
  const text = join(work, 'stories.txt');
  writeFileSync(text, readFileSync(join(root, 'assets', 'data', 'tinystories_val_head.txt'), 'utf8').slice(0, 24_000));
  const randomBf16Model = (): string => {
    const dir = join(work, 'random-bf16');
    if (existsSync(join(dir, 'config.json'))) return dir;
    mkdirSync(dir, { recursive: true });
    const m = createLlama({ vocabSize: 512, dim: 64, nLayers: 4, nHeads: 4, nKvHeads: 2, hiddenDim: 176, maxSeqLen: 128 }, { seed: 3 });
    writeHf(dir, m.config, new Map([...m.parameters().keys()].map((n) => [n, m.readWeight(n).slice()])), { dtype: 'bfloat16', maxShardBytes: 100_000 });
    m.dispose();
    copyFileSync(join(STORIES, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    return dir;
  };
  return { work, text, randomBf16Model };
}
