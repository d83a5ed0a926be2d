/**
 * A byte-level tokenizer: id = byte + 3, with the llama conventions <unk> = 0, BOS = 1, EOS = 2 (vocab 259).
 * Useful for training tiny models from scratch and for tests; any UTF-8 text round-trips.
 */
import { TopiaryError, type EncodeOptions, type Tokenizer } from '@topiary/kernel';

export class ByteTokenizer implements Tokenizer {
  readonly name = 'bytes';
  readonly vocabSize = 259;
  readonly bosId = 1;
  readonly eosId = 2;

  encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (options.bos) out.push(this.bosId);
    for (const b of Buffer.from(text, 'utf8')) out.push(b + 3);
    if (options.eos) out.push(this.eosId);
    return out;
  }

  decode(ids: readonly number[]): string {
    const bytes: number[] = [];
    for (const id of ids) {
      if (id < 3) continue;
      if (id >= this.vocabSize || !Number.isInteger(id)) {
        throw new TopiaryError('E_DATA', `token id ${id} is outside the byte vocabulary (0..${this.vocabSize - 1})`);
      }
      bytes.push(id - 3);
    }
    return Buffer.from(bytes).toString('utf8');
  }
}
