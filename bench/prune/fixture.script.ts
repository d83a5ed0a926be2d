/**
 * Dumps the exact calibration windows and eval windows the TypeScript side uses, for the PyTorch reference to read
 * (bench/reference/fixtures/prune_calibration.json). Same tokenizer, same sampler, same seed as `topiary prune`.
 */
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'vitest';
import { loadTokenizer, sampleCalibration, tokenizeCached } from '../../packages/corpus/src/index.js';

export const repoRoot = join(__dirname, '..', '..');
export const FIXTURE = join(repoRoot, 'bench', 'reference', 'fixtures', 'prune_calibration.json');
const MODEL = join(repoRoot, 'assets', 'models', 'stories260K-hf');
const TEXT = join(repoRoot, 'assets', 'data', 'tinystories_val_head.txt');
const SAMPLES = 16;
const SEQLEN = 64;
const EVAL_WINDOWS = 16;

test('write the calibration fixture', async () => {
  const tokenizer = await loadTokenizer(MODEL);
  const corpus = await tokenizeCached(TEXT, tokenizer, { cache: false });
  const calibration = sampleCalibration(corpus, { samples: SAMPLES, seqLen: SEQLEN, seed: 0, file: TEXT });
  // Eval: the last EVAL_WINDOWS non-overlapping windows of the same token stream (calibration draws from anywhere).
  const n = corpus.tokens.length;
  const evalWindows: number[][] = [];
  for (let k = EVAL_WINDOWS; k >= 1; k--) evalWindows.push(Array.from(corpus.tokens.subarray(n - k * SEQLEN, n - (k - 1) * SEQLEN)));
  const fixture = {
    produced_by: 'bench/prune/fixture.script.ts',
    model: relative(repoRoot, MODEL),
    text: relative(repoRoot, TEXT),
    tokens: n,
    samples: SAMPLES,
    seqLen: SEQLEN,
    seed: 0,
    calibration: calibration.map((w) => Array.from(w)),
    eval: evalWindows,
  };
  writeFileSync(FIXTURE, `${JSON.stringify(fixture)}\n`);
  console.log(`wrote ${FIXTURE}: ${SAMPLES}×${SEQLEN} calibration, ${EVAL_WINDOWS}×${SEQLEN} eval tokens from ${n}`);
});
