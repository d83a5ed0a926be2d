import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TopiaryError } from '@topiary/kernel';
import { SeededRandom } from '@topiary/linalg';
import {
  ByteTokenizer,
  documentCount,
  documentTokens,
  firstInvalidUtf8,
  loadTokenizer,
  openCorpus,
  packBlocks,
  packStream,
  sampleCalibration,
  sampleCalibrationSet,
  seededShuffle,
  splitTrainValid,
  tokenizeCached,
  tokenizeCorpus,
  tokenStream,
} from '../src/index.js';

const assets = join(import.meta.dirname, '..', '..', '..', 'assets');
const tmp = () => mkdtempSync(join(tmpdir(), 'topiary-corpus-'));
const collect = async (it: AsyncIterable<string>) => {
  const out: string[] = [];
  for await (const x of it) out.push(x);
  return out;
};

describe('sources', () => {
  it('splits text on blank lines, whatever the chunk size (multi-byte characters across chunk edges)', async () => {
    const dir = tmp();
    const file = join(dir, 'a.txt');
    writeFileSync(file, '\uFEFFfirst doc — é\nline two\n\n\n  \nsecond 🙂 doc\r\n\r\nthird\n');
    for (const chunkSize of [1, 2, 3, 5, 7, 65536]) {
      expect(await collect(openCorpus(file, { chunkSize }).documents())).toEqual(['first doc — é\nline two', 'second 🙂 doc', 'third']);
    }
    expect(await collect(openCorpus(file, { split: 'file', chunkSize: 3 }).documents())).toEqual(['first doc — é\nline two\n\n\n  \nsecond 🙂 doc\n\nthird\n']);
  });

  it('reports non-UTF-8 bytes as E_DATA with the byte offset, also across chunks', async () => {
    const dir = tmp();
    const file = join(dir, 'bad.txt');
    writeFileSync(file, Buffer.concat([Buffer.from('hello wörld\n', 'utf8'), Buffer.from([0xff, 0x41]), Buffer.from('tail')]));
    for (const chunkSize of [1, 4, 65536]) {
      const err = await collect(openCorpus(file, { chunkSize }).documents()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TopiaryError);
      expect((err as TopiaryError).code).toBe('E_DATA');
      expect((err as TopiaryError).file).toBe(file);
      expect((err as TopiaryError).message).toContain('at byte offset 13');
    }
    // a truncated final character is invalid too
    writeFileSync(file, Buffer.from([0x61, 0xe2, 0x82]));
    await expect(collect(openCorpus(file).documents())).rejects.toThrow(/byte offset 1/);
    expect(firstInvalidUtf8(Buffer.from('ok é 🙂'))).toBe(-1);
    expect(firstInvalidUtf8(Uint8Array.from([0x41, 0xc0, 0x80]))).toBe(1); // overlong
    expect(firstInvalidUtf8(Uint8Array.from([0xed, 0xa0, 0x80]))).toBe(0); // surrogate
  });

  it('reads JSON lines by field and names the line of a malformed one', async () => {
    const dir = tmp();
    const file = join(dir, 'd.jsonl');
    writeFileSync(file, '{"text":"one","n":1}\n\n{"text":"two"}\n{"text": oops}\n');
    await expect(collect(openCorpus(file).documents())).rejects.toMatchObject({ code: 'E_DATA', where: 'line 4', file });
    writeFileSync(file, '{"body":"one"}\n{"body":"two"}\n{"other":1}\n');
    expect(await collect(openCorpus(join(dir, 'd.jsonl'), { field: 'body' }).documents()).catch((e: TopiaryError) => e.message)).toMatch(/line 3 has no string field "body"/);
    writeFileSync(file, '{"body":"one"}\n{"body":"two"}');
    expect(await collect(openCorpus(file, { field: 'body' }).documents())).toEqual(['one', 'two']);
    writeFileSync(file, '[1,2]\n');
    await expect(collect(openCorpus(file).documents())).rejects.toThrow(/line 1 is not a JSON object/);
  });

  it('reads a folder recursively in sorted order, JSONL and text alike', async () => {
    const dir = tmp();
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'b.txt'), 'B1\n\nB2');
    writeFileSync(join(dir, 'a.jsonl'), '{"text":"A"}\n');
    writeFileSync(join(dir, 'sub', 'c.md'), 'C');
    writeFileSync(join(dir, 'skip.bin'), 'x');
    expect(await collect(openCorpus(dir).documents())).toEqual(['A', 'B1', 'B2', 'C']);
    await expect(collect(openCorpus(tmp()).documents())).rejects.toMatchObject({ code: 'E_DATA' });
    expect(() => openCorpus(join(dir, 'missing.txt'))).toThrow(/no such file/);
  });
});

describe('tokenized corpora, packing, shuffling, splits', () => {
  it('encodes each document as BOS + ids (EOS optional) and packs fixed blocks, dropping the tail', async () => {
    const dir = tmp();
    const file = join(dir, 't.txt');
    writeFileSync(file, 'ab\n\ncde\n\nf');
    const bytes = new ByteTokenizer();
    const c = await tokenizeCorpus(openCorpus(file), bytes);
    const b = (s: string) => [...Buffer.from(s)].map((x) => x + 3);
    expect(Array.from(c.tokens)).toEqual([1, ...b('ab'), 1, ...b('cde'), 1, ...b('f')]);
    expect(Array.from(c.docStarts)).toEqual([0, 3, 7, 9]);
    expect(Array.from(documentTokens(c, 1))).toEqual([1, ...b('cde')]);
    const withEos = await tokenizeCorpus(openCorpus(file), bytes, { bos: false, eos: true });
    expect(Array.from(withEos.tokens)).toEqual([...b('ab'), 2, ...b('cde'), 2, ...b('f'), 2]);
    const blocks = packBlocks(c, 4);
    expect(blocks.map((x) => Array.from(x))).toEqual([c.tokens.slice(0, 4), c.tokens.slice(4, 8)].map((x) => Array.from(x)));
    const streamed: number[][] = [];
    for await (const blk of packStream(tokenStream(openCorpus(file), bytes), 4)) streamed.push(Array.from(blk));
    expect(streamed).toEqual(blocks.map((x) => Array.from(x)));
  });

  it('shuffles deterministically from the seed with the kernel SeededRandom', () => {
    const items = Array.from({ length: 20 }, (_, i) => i);
    const a = seededShuffle(items, 7);
    expect(seededShuffle(items, 7)).toEqual(a);
    expect(seededShuffle(items, 8)).not.toEqual(a);
    expect([...a].sort((x, y) => x - y)).toEqual(items);
    expect(a).toEqual(new SeededRandom(7).shuffle([...items]));
  });

  it('splits by document, disjoint and complete', async () => {
    const docs = Array.from({ length: 50 }, (_, i) => `doc ${i}`).join('\n\n');
    const dir = tmp();
    writeFileSync(join(dir, 'd.txt'), docs);
    const c = await tokenizeCorpus(openCorpus(join(dir, 'd.txt')), new ByteTokenizer());
    const { train, valid } = splitTrainValid(c, 0.1, 3);
    expect(documentCount(valid)).toBe(5);
    expect(documentCount(train)).toBe(45);
    const text = (x: typeof c) => Array.from({ length: documentCount(x) }, (_, d) => new ByteTokenizer().decode(Array.from(documentTokens(x, d))));
    expect([...text(train), ...text(valid)].sort()).toEqual(text(c).sort());
    expect(splitTrainValid(c, 0.1, 3).valid.tokens).toEqual(valid.tokens);
  });

  it('caches the tokenized form keyed by source and tokenizer, atomically', async () => {
    const cacheDir = tmp();
    const tok = await loadTokenizer(join(assets, 'models', 'stories260K', 'tok512.bin'));
    const src = join(tmp(), 'small.txt');
    writeFileSync(src, 'Once upon a time.\n\nThe end.');
    const first = await tokenizeCached(src, tok, { cacheDir });
    expect(first.fromCache).toBe(false);
    const second = await tokenizeCached(src, tok, { cacheDir });
    expect(second.fromCache).toBe(true);
    expect(second.cacheFile).toBe(first.cacheFile);
    expect(Array.from(second.tokens)).toEqual(Array.from(first.tokens));
    expect(Array.from(second.docStarts)).toEqual(Array.from(first.docStarts));
    const bytesKey = await tokenizeCached(src, new ByteTokenizer(), { cacheDir });
    expect(bytesKey.fromCache).toBe(false);
    expect(bytesKey.key).not.toBe(first.key);
    writeFileSync(src, 'Different text.');
    expect((await tokenizeCached(src, tok, { cacheDir })).fromCache).toBe(false);
    writeFileSync(src, '\n\n  \n');
    await expect(tokenizeCached(src, tok, { cacheDir })).rejects.toMatchObject({ code: 'E_DATA', file: src });
  });
});

describe('calibration sampler', () => {
  it('draws a long-enough document uniformly, then a start in [0, len - seqLen - 1]', async () => {
    const tok = await loadTokenizer(join(assets, 'models', 'stories260K', 'tok512.bin'));
    const c = await tokenizeCached(join(assets, 'data', 'tinystories_val_head.txt'), tok, { cacheDir: tmp() });
    const set = sampleCalibrationSet(c, { samples: 64, seqLen: 128, seed: 0 });
    expect(set.mode).toBe('documents');
    expect(set.windows).toHaveLength(64);
    // replay the rule with the same generator
    const eligible = Array.from({ length: documentCount(c) }, (_, d) => d).filter((d) => c.docStarts[d + 1]! - c.docStarts[d]! > 128);
    const rng = new SeededRandom(0);
    for (let s = 0; s < 64; s++) {
      const doc = eligible[rng.int(eligible.length)]!;
      const len = c.docStarts[doc + 1]! - c.docStarts[doc]!;
      const start = c.docStarts[doc]! + rng.int(len - 128);
      expect(set.origins[s]).toEqual({ doc, start });
      expect(Array.from(set.windows[s]!)).toEqual(Array.from(c.tokens.slice(start, start + 128)));
      expect(start + 128).toBeLessThan(c.docStarts[doc + 1]!);
    }
    expect(sampleCalibration(c, { samples: 64, seqLen: 128, seed: 0 })).toEqual(set.windows);
    expect(sampleCalibration(c, { samples: 64, seqLen: 128, seed: 1 })).not.toEqual(set.windows);
    // no document is 2048 tokens long: the stream rule
    expect(sampleCalibrationSet(c, { samples: 4, seqLen: 2048, seed: 0 }).mode).toBe('stream');
  });

  it('names the file and the flag when the corpus is too short', () => {
    const tokens = Int32Array.from({ length: 100 }, (_, i) => i);
    const err = (() => {
      try {
        sampleCalibration(tokens, { samples: 2, seqLen: 100, seed: 0, file: 'calib.txt' });
      } catch (e) {
        return e as TopiaryError;
      }
    })();
    expect(err).toMatchObject({ code: 'E_DATA', file: 'calib.txt', where: '--seqlen' });
    expect(() => sampleCalibration(tokens, { samples: 20, seqLen: 10, seed: 0, file: 'calib.txt' })).toThrow(/--samples 20 × --seqlen 10/);
    expect(sampleCalibration(tokens, { samples: 3, seqLen: 10, seed: 0 })).toHaveLength(3);
  });
});
