/**
 * Hugging Face `tokenizer.json` through the maintained `@huggingface/tokenizers` library (loaded offline from the
 * parsed JSON). BOS/EOS are added by us (not by the file's post-processor) so `encode(text, { bos })` means the
 * same thing for every tokenizer; `tokenizer_config.json` beside the file names them when present.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { ioError, TopiaryError, type EncodeOptions, type Tokenizer } from '@topiary/kernel';

async function readJson(path: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw ioError(e, path, `read the ${what}`);
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
    return value as Record<string, unknown>;
  } catch (e) {
    throw new TopiaryError('E_FORMAT', `not a valid ${what}: ${(e as Error).message}`, { file: path, cause: e });
  }
}

function tokenName(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

export class HfJsonTokenizer implements Tokenizer {
  readonly name = 'hf-json';
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  private readonly special: ReadonlySet<number>;
  private readonly file: string;

  /** The library throws plain errors (TypeError on a damaged post_processor, ...): report them against the file. */
  private guard<T>(what: string, run: () => T): T {
    try {
      return run();
    } catch (e) {
      throw new TopiaryError('E_FORMAT', `the tokenizer could not ${what}: ${(e as Error).message}`, { file: this.file, cause: e, hint: 'the tokenizer.json is damaged or uses a feature the library does not support' });
    }
  }

  constructor(
    private readonly inner: HfTokenizer,
    ids: { bos: number; eos: number; vocabSize: number; special: ReadonlySet<number>; file?: string },
  ) {
    this.file = ids.file ?? 'tokenizer.json';
    this.bosId = ids.bos;
    this.eosId = ids.eos;
    this.vocabSize = ids.vocabSize;
    this.special = ids.special;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids = text.length > 0 ? this.guard('encode text', () => this.inner.encode(text, { add_special_tokens: false }).ids) : [];
    return [...(options.bos ? [this.bosId] : []), ...ids, ...(options.eos ? [this.eosId] : [])];
  }

  decode(ids: readonly number[]): string {
    const kept = ids.filter((id) => !this.special.has(id));
    // the library refuses an empty list; nothing to decode is the empty string
    return kept.length === 0 ? '' : this.guard('decode ids', () => this.inner.decode(kept, { skip_special_tokens: true }));
  }
}

/**
 * Token ids must be non-negative integers, and not far beyond the number of tokens: the library (and our vocabSize)
 * size tables by the largest id, so one damaged id (507510784) would allocate and fill half a billion entries.
 */
function checkTokenIds(json: Record<string, unknown>, path: string): void {
  const ids: [number, string][] = [];
  const model = json.model as { vocab?: unknown } | undefined;
  const vocab = typeof model === 'object' && model !== null ? model.vocab : undefined;
  if (typeof vocab === 'object' && vocab !== null && !Array.isArray(vocab)) {
    for (const [token, id] of Object.entries(vocab)) ids.push([id as number, `model.vocab[${JSON.stringify(token)}]`]);
  }
  if (Array.isArray(json.added_tokens)) {
    json.added_tokens.forEach((t: unknown, i) => {
      if (typeof t === 'object' && t !== null && 'id' in t) ids.push([(t as { id: number }).id, `added_tokens[${i}].id`]);
    });
  }
  const limit = 2 * ids.length + 1024;
  for (const [id, where] of ids) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= limit) {
      throw new TopiaryError('E_FORMAT', `token id ${JSON.stringify(id)} is not an integer in [0, ${limit})`, { file: path, where, hint: 'the tokenizer.json is damaged' });
    }
  }
}

export async function loadHfTokenizer(path: string): Promise<HfJsonTokenizer> {
  const json = await readJson(path, 'tokenizer.json');
  const configPath = join(dirname(path), 'tokenizer_config.json');
  const config = existsSync(configPath) ? await readJson(configPath, 'tokenizer_config.json') : {};
  checkTokenIds(json, path);
  let inner: HfTokenizer;
  try {
    inner = new HfTokenizer(json, config);
  } catch (e) {
    throw new TopiaryError('E_FORMAT', `@huggingface/tokenizers could not load it: ${(e as Error).message}`, { file: path, cause: e });
  }
  const vocab = inner.get_vocab(true);
  let maxId = -1;
  for (const id of vocab.values()) maxId = Math.max(maxId, id);
  const idOf = (name: string | undefined): number | undefined => (name === undefined ? undefined : inner.token_to_id(name));
  const bos = idOf(tokenName(config.bos_token)) ?? idOf('<s>') ?? idOf('<|begin_of_text|>');
  const eos = idOf(tokenName(config.eos_token)) ?? idOf('</s>') ?? idOf('<|end_of_text|>');
  if (bos === undefined || eos === undefined) {
    throw new TopiaryError('E_FORMAT', 'cannot tell the BOS/EOS tokens of this tokenizer.json', {
      file: path,
      hint: 'put a tokenizer_config.json with bos_token and eos_token beside it',
    });
  }
  const special = new Set<number>([...inner.get_added_tokens_decoder().entries()].filter(([, t]) => t.special).map(([id]) => id));
  return new HfJsonTokenizer(inner, { bos, eos, vocabSize: maxId + 1, special, file: path });
}
