import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createContainer, Tokens, TopiaryError, type TokenizerFactory } from '@topiary/kernel';
import corpusPlugin, { ByteTokenizer, Llama2cTokenizer, loadTokenizer, parseLlama2cTokenizer } from '../src/index.js';

const assets = join(import.meta.dirname, '..', '..', '..', 'assets');
const tok512 = join(assets, 'models', 'stories260K', 'tok512.bin');
const hfJson = join(assets, 'models', 'stories260K-hf', 'tokenizer.json');
const golden = JSON.parse(readFileSync(join(assets, 'models', 'stories260K', 'stories260K.golden.json'), 'utf8')) as {
  greedy_ids: number[];
  greedy_text: string;
  prompt_encoding_example: { text: string; ids_without_bos: number[] };
};

/** llama2.c's encode, transcribed literally (O(n²) scan), to check the heap version against. */
function naiveEncode(tok: Llama2cTokenizer, text: string): number[] {
  const ids: number[] = [];
  const table = new Map<string, number>();
  for (let id = tok.vocabSize - 1; id >= 0; id--) table.set(tok.piece(id), id); // lowest id wins
  const lookup = (s: string): number | undefined => table.get(s);
  if (text.length > 0) ids.push(lookup(' ')!);
  for (const ch of text) {
    const id = lookup(ch);
    if (id !== undefined) ids.push(id);
    else for (const b of Buffer.from(ch, 'utf8')) ids.push(b + 3);
  }
  for (;;) {
    let best = -Infinity;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i + 1 < ids.length; i++) {
      const id = lookup(tok.piece(ids[i]!) + tok.piece(ids[i + 1]!));
      if (id !== undefined && tok.score(id) > best) {
        best = tok.score(id);
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx < 0) break;
    ids.splice(bestIdx, 2, bestId);
  }
  return ids;
}

describe('llama2.c tokenizer', () => {
  it('reads tok512.bin to the end: 512 entries, conventions of MANIFEST §5', async () => {
    const tok = (await loadTokenizer(tok512)) as Llama2cTokenizer;
    expect(tok).toBeInstanceOf(Llama2cTokenizer);
    expect(tok.vocabSize).toBe(512);
    expect(tok.maxTokenLength).toBe(7);
    expect(tok.piece(1)).toBe('\n<s>\n');
    expect(tok.piece(3)).toBe('<0x00>');
    expect(tok.piece(258)).toBe('<0xFF>');
  });

  it('encodes the golden prompt exactly as llama2.c', async () => {
    const tok = await loadTokenizer(tok512);
    const { text, ids_without_bos } = golden.prompt_encoding_example;
    expect(tok.encode(text)).toEqual(ids_without_bos);
    expect(tok.encode(text, { bos: true, eos: true })).toEqual([1, ...ids_without_bos, 2]);
    expect(tok.decode([1, ...ids_without_bos])).toBe(text);
  });

  it('decodes the golden greedy ids to the golden text (minus the dummy-prefix space)', async () => {
    const tok = await loadTokenizer(tok512);
    expect(golden.greedy_text.startsWith(' ')).toBe(true);
    expect(tok.decode(golden.greedy_ids)).toBe(golden.greedy_text.slice(1));
  });

  it('matches a literal O(n²) llama2.c merge loop, byte fallback included', async () => {
    const tok = (await loadTokenizer(tok512)) as Llama2cTokenizer;
    const texts = ['Hello, wörld! ✓ 你好 🙂 ', '  double  spaces\nand\ttabs', 'aaaaaaaaaa', 'x', readFileSync(join(assets, 'data', 'tinystories_val_head.txt'), 'utf8').slice(0, 600)];
    for (const t of texts) {
      const ids = tok.encode(t);
      expect(ids).toEqual(naiveEncode(tok, t));
      expect(tok.decode(ids)).toBe(t);
    }
    // Non-pieces fall back to bytes: "🙂" is 4 bytes F0 9F 99 82.
    expect(tok.encode('🙂').slice(-4)).toEqual([0xf0 + 3, 0x9f + 3, 0x99 + 3, 0x82 + 3]);
    expect(tok.encode('')).toEqual([]);
  });

  it('rejects files that are not llama2.c tokenizers with E_FORMAT and the byte offset', () => {
    const bad = new Uint8Array(20);
    new DataView(bad.buffer).setInt32(0, 7, true);
    new DataView(bad.buffer).setInt32(8, 1000, true);
    expect(() => parseLlama2cTokenizer(bad, 'bad.bin')).toThrowError(/impossible length 1000 at byte 8/);
    try {
      parseLlama2cTokenizer(new Uint8Array(2), 'x.bin');
    } catch (e) {
      expect(e).toBeInstanceOf(TopiaryError);
      expect((e as TopiaryError).code).toBe('E_FORMAT');
      expect((e as TopiaryError).file).toBe('x.bin');
    }
  });
});

describe('HF tokenizer.json', () => {
  it('encodes real TinyStories text to the same ids as tok512.bin', async () => {
    const hf = await loadTokenizer(hfJson);
    const l2c = await loadTokenizer(tok512);
    expect(hf.name).toBe('hf-json');
    expect(hf.vocabSize).toBe(512);
    expect([hf.bosId, hf.eosId]).toEqual([1, 2]);
    const stories = readFileSync(join(assets, 'data', 'tinystories_val_head.txt'), 'utf8').split('\n\n').slice(0, 300);
    let tokens = 0;
    for (const s of stories) {
      const ids = l2c.encode(s, { bos: true });
      expect(hf.encode(s, { bos: true })).toEqual(ids);
      expect(hf.decode(ids)).toBe(l2c.decode(ids));
      tokens += ids.length;
    }
    expect(tokens).toBeGreaterThan(10_000);
    expect(hf.encode(golden.prompt_encoding_example.text)).toEqual(golden.prompt_encoding_example.ids_without_bos);
  });
});

describe('bytes tokenizer and loader', () => {
  it('round-trips UTF-8 with id = byte + 3', async () => {
    const tok = await loadTokenizer('bytes');
    expect(tok).toBeInstanceOf(ByteTokenizer);
    expect(tok.encode('Aé', { bos: true, eos: true })).toEqual([1, 65 + 3, 0xc3 + 3, 0xa9 + 3, 2]);
    expect(tok.decode(tok.encode('héllo 🙂', { bos: true }))).toBe('héllo 🙂');
  });

  it('finds the tokenizer inside a model folder', async () => {
    expect((await loadTokenizer(join(assets, 'models', 'stories260K'))).name).toBe('llama2c');
    expect((await loadTokenizer(join(assets, 'models', 'stories260K-hf'))).name).toBe('hf-json');
  });

  it('reports a missing tokenizer as E_IO naming the path', async () => {
    await expect(loadTokenizer('/nonexistent/tok.bin')).rejects.toMatchObject({ code: 'E_IO', where: '/nonexistent/tok.bin' });
  });

  it('registers three TokenizerFactory implementations through the plugin', async () => {
    const container = createContainer();
    corpusPlugin.register(container, {});
    const factories = container.resolveAll<TokenizerFactory>(Tokens.TokenizerFactory);
    expect(factories.map((f) => f.name).sort()).toEqual(['bytes', 'hf-json', 'llama2c']);
    const l2c = factories.find((f) => f.name === 'llama2c')!;
    expect(l2c.canLoad(tok512)).toBe(true);
    expect((await l2c.load(tok512)).vocabSize).toBe(512);
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { topiary: { provides: { tokenizers: string[] } } };
    // package.json's provides is the one declaration: it lists exactly what register() binds
    expect(factories.map((f) => f.name).sort()).toEqual([...pkg.topiary.provides.tokenizers].sort());
  });
});
