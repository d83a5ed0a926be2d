/**
 * `loadTokenizer(path)`: one entry point that recognises what it is given. `bytes` → the byte-level tokenizer;
 * a folder → its `tokenizer.json`, else `tokenizer.bin`, else a single `tok*.bin`; `*.json` → Hugging Face;
 * anything else → a llama2.c tokenizer .bin (validated by reading every entry to the end of the file).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { TopiaryError, type Tokenizer, type TokenizerFactory } from '@topiary/kernel';
import { ByteTokenizer } from './bytes.js';
import { loadHfTokenizer } from './hf.js';
import { loadLlama2cTokenizer } from './llama2c.js';

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The tokenizer file inside a model folder, or undefined. */
export function findTokenizerIn(dir: string): string | undefined {
  for (const name of ['tokenizer.json', 'tokenizer.bin']) if (existsSync(join(dir, name))) return join(dir, name);
  const bins = readdirSync(dir).filter((f) => /^tok.*\.bin$/.test(f));
  return bins.length === 1 ? join(dir, bins[0]!) : undefined;
}

export const bytesTokenizerFactory: TokenizerFactory = {
  name: 'bytes',
  canLoad: (path) => path === 'bytes',
  load: async () => new ByteTokenizer(),
};

export const hfJsonTokenizerFactory: TokenizerFactory = {
  name: 'hf-json',
  canLoad: (path) => path.toLowerCase().endsWith('.json') || (isDir(path) && existsSync(join(path, 'tokenizer.json'))),
  load: (path) => loadHfTokenizer(isDir(path) ? join(path, 'tokenizer.json') : path),
};

export const llama2cTokenizerFactory: TokenizerFactory = {
  name: 'llama2c',
  canLoad: (path) => (isDir(path) ? findTokenizerIn(path)?.endsWith('.bin') === true : path.toLowerCase().endsWith('.bin')),
  load: (path) => {
    const file = isDir(path) ? findTokenizerIn(path) : path;
    if (file === undefined) throw new TopiaryError('E_IO', 'no tokenizer file in this folder', { where: path });
    return loadLlama2cTokenizer(file);
  },
};

export const tokenizerFactories: readonly TokenizerFactory[] = [bytesTokenizerFactory, hfJsonTokenizerFactory, llama2cTokenizerFactory];

export async function loadTokenizer(path: string): Promise<Tokenizer> {
  if (path === 'bytes') return new ByteTokenizer();
  if (!existsSync(path)) {
    throw new TopiaryError('E_IO', 'tokenizer not found: no such file or directory', {
      where: path,
      hint: 'give a tokenizer.json, a llama2.c tokenizer .bin, a model folder holding one, or `bytes`',
    });
  }
  let file = path;
  if (isDir(path)) {
    const found = findTokenizerIn(path);
    if (found === undefined) {
      throw new TopiaryError('E_IO', 'no tokenizer.json, tokenizer.bin or tok*.bin in this folder', {
        where: path,
        hint: 'pass --tokenizer FILE',
      });
    }
    file = found;
  }
  if (basename(file).toLowerCase().endsWith('.json')) return loadHfTokenizer(file);
  return loadLlama2cTokenizer(file);
}
