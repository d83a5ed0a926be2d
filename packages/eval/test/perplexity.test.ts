import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EventBus, TopiaryError } from '@topiary/kernel';
import { ByteTokenizer } from '@topiary/corpus';
import { evaluatePerplexity, perplexityWindows } from '../src/index.js';
import { logSoftmaxAt, stubModel } from './stub.js';

const V = 7;
// A bigram table: logits depend only on the current token.
const table = Array.from({ length: V }, (_, a) => Array.from({ length: V }, (_, b) => Math.sin(1 + a * 7 + b * 3) * 2));
const bigram = () => stubModel(V, 16, (row, p) => table[row[p]!]!);
const ids = Array.from({ length: 50 }, (_, i) => (i * i + 3 * i + 1) % V);
const ctx = (extra: object = {}) => ({ events: new EventBus(), ...extra });

describe('perplexity windows', () => {
  it('non-overlapping: floor(N/L) windows, tail dropped, L-1 tokens scored each', () => {
    expect(perplexityWindows(10, 4)).toEqual([
      { begin: 0, end: 4, scoreFrom: 1 },
      { begin: 4, end: 8, scoreFrom: 1 },
    ]);
  });

  it('strided (HF guide): every token but the first scored once, with ≥ L−S context after the first window', () => {
    expect(perplexityWindows(10, 4, 2)).toEqual([
      { begin: 0, end: 4, scoreFrom: 1 },
      { begin: 2, end: 6, scoreFrom: 2 },
      { begin: 4, end: 8, scoreFrom: 2 },
      { begin: 6, end: 10, scoreFrom: 2 },
    ]);
    for (const [n, L, S] of [[50, 16, 5], [17, 16, 1], [16, 16, 3], [100, 7, 7], [33, 10, 9]] as const) {
      const seen = new Array<number>(n).fill(0);
      perplexityWindows(n, L, S).forEach((w, k) => {
        expect(w.end - w.begin).toBeLessThanOrEqual(L);
        for (let q = w.scoreFrom; q < w.end - w.begin; q++) {
          seen[w.begin + q]! += 1;
          if (k > 0 && S < L) expect(q).toBeGreaterThanOrEqual(L - S);
        }
      });
      expect(seen[0]).toBe(0);
      if (S < L) expect(seen.slice(1).every((c) => c === 1)).toBe(true);
    }
  });
});

describe('evaluatePerplexity against closed forms', () => {
  it('non-overlapping windows: mean NLL over the pairs inside each window', async () => {
    const r = await evaluatePerplexity(bigram(), new ByteTokenizer(), { file: 'ids', ids, seqLen: 16 }, ctx({ batchSize: 2 }));
    let nll = 0;
    let n = 0;
    for (let k = 0; (k + 1) * 16 <= ids.length; k++) {
      for (let q = k * 16 + 1; q < (k + 1) * 16; q++) {
        nll -= logSoftmaxAt(table[ids[q - 1]!]!, ids[q]!);
        n++;
      }
    }
    expect(r.tokens).toBe(45);
    expect(n).toBe(45);
    expect(r.nll).toBeCloseTo(nll / n, 6);
    expect(r.ppl).toBeCloseTo(Math.exp(nll / n), 5);
    expect(r.mode).toBe('non-overlapping');
    expect(r.windows).toBe(3);
  });

  it('strided windows: all N−1 consecutive pairs, and the same with any batch size', async () => {
    let nll = 0;
    for (let q = 1; q < ids.length; q++) nll -= logSoftmaxAt(table[ids[q - 1]!]!, ids[q]!);
    for (const batchSize of [1, 3, 64]) {
      const r = await evaluatePerplexity(bigram(), new ByteTokenizer(), { file: 'ids', ids, seqLen: 16, stride: 5 }, ctx({ batchSize }));
      expect(r.tokens).toBe(49);
      expect(r.nll).toBeCloseTo(nll / 49, 6);
      expect(r.mode).toBe('strided');
    }
  });

  it('scores window-relative positions (a model whose logits depend on the position in the window)', async () => {
    const posModel = stubModel(V, 16, (_row, p) => Array.from({ length: V }, (_, v) => (v === 0 ? p / 3 : 0)));
    const windows = perplexityWindows(ids.length, 16, 5);
    let nll = 0;
    let n = 0;
    for (const w of windows) {
      for (let q = w.scoreFrom; q < w.end - w.begin; q++) {
        const logits = Array.from({ length: V }, (_, v) => (v === 0 ? (q - 1) / 3 : 0));
        nll -= logSoftmaxAt(logits, ids[w.begin + q]!);
        n++;
      }
    }
    const r = await evaluatePerplexity(posModel, new ByteTokenizer(), { file: 'ids', ids, seqLen: 16, stride: 5 }, ctx({ batchSize: 4 }));
    expect(r.tokens).toBe(n);
    expect(r.nll).toBeCloseTo(nll / n, 6);
  });

  it('honours limit and emits progress events', async () => {
    const events = new EventBus();
    const seen: number[] = [];
    events.on('progress', (e) => seen.push(e.current));
    const r = await evaluatePerplexity(bigram(), new ByteTokenizer(), { file: 'ids', ids, seqLen: 16 }, { events, limit: 2, batchSize: 1 });
    expect(r.windows).toBe(2);
    expect(r.tokens).toBe(30);
    expect(seen).toEqual([0, 1, 2]);
  });
});

describe('perplexity bad input', () => {
  const dir = mkdtempSync(join(tmpdir(), 'topiary-ppl-'));
  const model = stubModel(259, 64, () => new Array(259).fill(0));
  const run = (file: string, extra: object = {}) =>
    evaluatePerplexity(model, new ByteTokenizer(), { file, seqLen: 32, ...extra }, ctx()).catch((e: unknown) => e as TopiaryError);

  it('empty file, file shorter than a window, non-UTF-8, missing file, bad flags', async () => {
    writeFileSync(join(dir, 'empty.txt'), '\n \n');
    expect(await run(join(dir, 'empty.txt'))).toMatchObject({ code: 'E_DATA', message: expect.stringMatching(/empty/) });
    writeFileSync(join(dir, 'short.txt'), 'tiny text');
    expect(await run(join(dir, 'short.txt'))).toMatchObject({ code: 'E_DATA', where: '--seqlen', message: expect.stringMatching(/9 tokens, shorter than one window of --seqlen 32/) });
    // the default puts no BOS in front (the common protocol); bos: true adds exactly one
    expect(await run(join(dir, 'short.txt'), { bos: true })).toMatchObject({ message: expect.stringMatching(/10 tokens, shorter/) });
    writeFileSync(join(dir, 'latin1.txt'), Buffer.from('caf\xe9 '.repeat(20), 'latin1'));
    expect(await run(join(dir, 'latin1.txt'))).toMatchObject({ code: 'E_DATA', message: expect.stringMatching(/not valid UTF-8: invalid byte 0xe9 at byte offset 3/) });
    expect(await run(join(dir, 'missing.txt'))).toMatchObject({ code: 'E_IO' });
    writeFileSync(join(dir, 'ok.txt'), 'x'.repeat(100));
    expect(await run(join(dir, 'ok.txt'), { seqLen: 65 })).toMatchObject({ code: 'E_USAGE', where: '--seqlen' });
    expect(await run(join(dir, 'ok.txt'), { stride: 33 })).toMatchObject({ code: 'E_USAGE', where: '--stride' });
    const ok = await run(join(dir, 'ok.txt'));
    // uniform logits over 259 tokens: ppl is exactly the vocabulary size
    expect((ok as { ppl: number }).ppl).toBeCloseTo(259, 3);
    expect(ok).toMatchObject({ bos: false, totalTokens: 100, tokens: 3 * 31 });
    expect(await run(join(dir, 'ok.txt'), { bos: true })).toMatchObject({ bos: true, totalTokens: 101, tokens: 3 * 31 });
  });
});
