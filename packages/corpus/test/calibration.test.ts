/**
 * Calibration as the Wanda / SparseGPT code draws it (their get_wikitext2 / get_c4): a text file is ONE tokenized
 * text with uniform window starts; separate documents only when there are enough long ones — never a collapse onto
 * a handful of long paragraphs (the bug: 128 windows from 4 paragraphs of a 2,105-paragraph file).
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '@topiary/linalg';
import { calibrationCorpus, documentCount, loadTokenizer, sampleCalibrationSet, tokenizeCached } from '../src/index.js';

const assets = join(import.meta.dirname, '..', '..', '..', 'assets');
const textFile = join(assets, 'data', 'tinystories_val_head.txt');
const tmp = () => mkdtempSync(join(tmpdir(), 'topiary-calib-'));

describe('calibration from a plain text file', () => {
  it('is the whole file tokenized once, [BOS] + encode(text), newlines kept', async () => {
    const tok = await loadTokenizer(join(assets, 'models', 'stories260K', 'tok512.bin'));
    const c = await calibrationCorpus(textFile, tok, { cacheDir: tmp() });
    expect(documentCount(c)).toBe(1);
    const text = readFileSync(textFile, 'utf8').replace(/\r\n/g, '\n');
    expect(Array.from(c.tokens)).toEqual(tok.encode(text, { bos: true, eos: false }));
    expect(c.tokens.filter((t) => t === tok.bosId).length).toBe(1);
    const newline = tok.encode('\n', { bos: false }).at(-1)!;
    expect(c.tokens.filter((t) => t === newline).length).toBeGreaterThan(1000); // paragraph breaks are tokens
  });

  it('draws 128 × 256 windows at uniform starts in [0, N − 256 − 1] over the whole file', async () => {
    const tok = await loadTokenizer(join(assets, 'models', 'stories260K', 'tok512.bin'));
    const c = await calibrationCorpus(textFile, tok, { cacheDir: tmp() });
    const set = sampleCalibrationSet(c, { samples: 128, seqLen: 256, seed: 0 });
    expect(set.mode).toBe('stream');
    const n = c.tokens.length;
    const rng = new SeededRandom(0);
    for (const origin of set.origins) expect(origin.start).toBe(rng.int(n - 256)); // rng.int(k) ∈ [0, k − 1]
    const starts = set.origins.map((o) => o.start);
    expect(new Set(starts).size).toBe(128);
    // spread over the file: every tenth of it holds some window start (a collapse onto a few paragraphs fails this)
    const tenths = new Set(starts.map((s) => Math.floor((10 * s) / n)));
    expect(tenths.size).toBe(10);
    // no BOS inside any window (there is one, at offset 0 of the stream)
    const withBos = set.windows.filter((w, i) => w.includes(tok.bosId) && set.origins[i]!.start !== 0);
    expect(withBos).toHaveLength(0);
  });

  it('the paragraph view of the same file would have collapsed: auto switches to the stream rule instead', async () => {
    const tok = await loadTokenizer(join(assets, 'models', 'stories260K', 'tok512.bin'));
    const paragraphs = await tokenizeCached(textFile, tok, { cacheDir: tmp() });
    const long = Array.from({ length: documentCount(paragraphs) }, (_, d) => d).filter((d) => paragraphs.docStarts[d + 1]! - paragraphs.docStarts[d]! > 256);
    expect(long.length).toBeLessThan(128); // only a handful of paragraphs are that long
    expect(sampleCalibrationSet(paragraphs, { samples: 128, seqLen: 256, seed: 0 }).mode).toBe('stream');
    // forcing the documents rule reproduces the collapse the default avoids
    const forced = sampleCalibrationSet(paragraphs, { samples: 128, seqLen: 256, seed: 0, mode: 'documents' });
    expect(new Set(forced.origins.map((o) => o.doc)).size).toBeLessThanOrEqual(long.length);
  });
});

describe('calibration edge cases', () => {
  it('one window from a text file is still the joined-text rule; a folder is one document per file', async () => {
    const tok = await loadTokenizer(join(assets, 'models', 'stories260K', 'tok512.bin'));
    const c = await calibrationCorpus(textFile, tok, { cacheDir: tmp() });
    const one = sampleCalibrationSet(c, { samples: 1, seqLen: 256, seed: 5 });
    expect(one.mode).toBe('stream');
    expect(one.origins[0]!.start).toBe(new SeededRandom(5).int(c.tokens.length - 256));
    const dir = tmp();
    mkdirSync(join(dir, 'docs'));
    writeFileSync(join(dir, 'docs', 'a.txt'), 'First paragraph.\n\nSecond paragraph.\n');
    writeFileSync(join(dir, 'docs', 'b.txt'), 'Another file.\n\nWith two paragraphs.\n');
    const folder = await calibrationCorpus(join(dir, 'docs'), tok, { cacheDir: dir });
    expect(documentCount(folder)).toBe(2);
    expect(folder.tokens.filter((t) => t === tok.bosId).length).toBe(2);
  });

  it('an empty or blank calibration file is an E_DATA error naming it', async () => {
    const tok = await loadTokenizer(join(assets, 'models', 'stories260K', 'tok512.bin'));
    const dir = tmp();
    const blank = join(dir, 'blank.txt');
    writeFileSync(blank, '\n  \n');
    await expect(calibrationCorpus(blank, tok, { cacheDir: dir })).rejects.toMatchObject({ code: 'E_DATA', file: blank });
  });
});

describe('calibration from separate documents (JSON lines)', () => {
  it('takes one window from each of `samples` random long documents when enough are long, else the stream', async () => {
    const tok = await loadTokenizer(join(assets, 'models', 'stories260K', 'tok512.bin'));
    const dir = tmp();
    const story = (i: number) => `Once upon a time there was a child number ${i}. `.repeat(12);
    const file = join(dir, 'docs.jsonl');
    writeFileSync(file, Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: story(i) })).join('\n'));
    const c = await calibrationCorpus(file, tok, { cacheDir: dir });
    expect(documentCount(c)).toBe(40);
    const set = sampleCalibrationSet(c, { samples: 16, seqLen: 64, seed: 3 });
    expect(set.mode).toBe('documents');
    for (const o of set.origins) {
      expect(o.start).toBeGreaterThanOrEqual(c.docStarts[o.doc]!);
      expect(o.start + 64).toBeLessThan(c.docStarts[o.doc + 1]!);
    }
    // 40 long documents cannot feed 64 windows one each: the stream rule
    expect(sampleCalibrationSet(c, { samples: 64, seqLen: 64, seed: 3 }).mode).toBe('stream');
  });
});
