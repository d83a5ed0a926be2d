/**
 * Writes test/fixtures/calibration.json: the calibration windows the TypeScript side draws (the corpus package's
 * sampler, seed 0) for the shipped model, which bench/reference/structured_reference.py then scores in PyTorch.
 * Runs only with TOPIARY_WRITE_FIXTURES=1; the committed file is what the tests read.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTokenizer, sampleCalibration, textFileCorpus, tokenizeCorpus } from '@topiary/corpus';

const root = join(import.meta.dirname, '..', '..', '..');
const write = process.env.TOPIARY_WRITE_FIXTURES === '1';

if (!write) console.log('skipped: the fixture writer runs only with TOPIARY_WRITE_FIXTURES=1 (the tests read the committed fixtures)');
describe.skipIf(!write)('fixtures', () => {
  it('writes the calibration windows', async () => {
    const tokenizer = await loadTokenizer(join(root, 'assets/models/stories260K-hf/tokenizer.json'));
    const corpus = await tokenizeCorpus(textFileCorpus(join(root, 'assets/data/tinystories_val_head.txt')), tokenizer, { bos: true });
    const spec = { samples: 10, seqLen: 64, seed: 0 };
    const windows = sampleCalibration(corpus, spec);
    expect(windows).toHaveLength(10);
    const out = {
      source: 'assets/data/tinystories_val_head.txt',
      tokenizer: 'assets/models/stories260K-hf/tokenizer.json',
      ...spec,
      batchSize: 5,
      windows: windows.map((w) => [...w]),
    };
    writeFileSync(join(import.meta.dirname, 'fixtures', 'calibration.json'), `${JSON.stringify(out)}\n`);
  });
});
