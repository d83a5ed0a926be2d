import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { createContainer, PluginHost, type DependencyContainer } from '@topiary/kernel';
import schedulerBasic from '@topiary/scheduler-basic';
import { resolveTrainOptions, type TrainDefaults, type TrainSpec } from '../src/index.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const tok512 = join(repoRoot, 'assets', 'models', 'stories260K', 'tok512.bin');
const stories = join(repoRoot, 'assets', 'data', 'tinystories_val_head.txt');

export async function useCpu(): Promise<void> {
  await tf.setBackend('cpu');
  await tf.ready();
}

export function tempDir(prefix = 'topiary-trainer-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The first `bytes` of the shipped TinyStories text, written to a temp file (keeps encoding fast). */
export function smallCorpus(dir: string, bytes = 24_000): string {
  const text = readFileSync(stories, 'utf8').slice(0, bytes);
  const path = join(dir, 'corpus.txt');
  writeFileSync(path, text);
  return path;
}

export const tinyModel = { vocabSize: 512, dim: 32, nLayers: 2, nHeads: 4, hiddenDim: 64, maxSeqLen: 64 };

/** A run's container with the scheduler plugin registered, as the plugin host does it for a recipe. */
export function withSchedulers(): DependencyContainer {
  const container = createContainer();
  new PluginHost(container).use(schedulerBasic).freeze();
  return container;
}

export const schedulers = withSchedulers();

/** Resolve a train stage against the container with the scheduler plugin. */
export function resolveStage(raw: Record<string, unknown>, where = 'train', defaults: TrainDefaults = {}): TrainSpec {
  return resolveTrainOptions(raw, where, schedulers, defaults);
}

export function spec(out: string, corpus: string, extra: Record<string, unknown> = {}): TrainSpec {
  return resolveStage(
    {
      model: tinyModel,
      data: { train: corpus, tokenizer: tok512, seqLen: 16, validFraction: 0.1 },
      batchSize: 4,
      steps: 12,
      lr: { schedule: 'cosine', lr: 1e-2, warmup: 2 },
      eval: { every: 6, batches: 2 },
      checkpoint: { every: 4, keep: 3 },
      out,
      ...extra,
    },
    'stages[0].train',
  );
}

export function metrics(out: string): Record<string, unknown>[] {
  return readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
