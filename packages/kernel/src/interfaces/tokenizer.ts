/** Tokenizers and corpora. */

export interface EncodeOptions {
  /** Prepend the BOS id. Default false. */
  bos?: boolean;
  /** Append the EOS id. Default false. */
  eos?: boolean;
}

export interface Tokenizer {
  readonly name: string;
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[]): string;
}

export interface TokenizerFactory {
  readonly name: string;
  /** Whether this factory recognises the file (e.g. a llama2.c tokenizer .bin, a tokenizer.json). */
  canLoad(path: string): boolean;
  load(path: string): Promise<Tokenizer>;
}

/** A source of documents; corpora stream them so files larger than memory work. */
export interface Corpus {
  readonly name: string;
  documents(): AsyncIterable<string>;
}

export interface CalibrationSpec {
  samples: number;
  seqLen: number;
  seed: number;
}
