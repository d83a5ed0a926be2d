/**
 * Token blocks for training: a text file is split into documents (blank-line separated), each encoded with a
 * leading BOS, concatenated and cut into blocks of `seqLen + 1` tokens (seqLen predictions per block). The last
 * `validFraction` of the blocks (the end of the file, never shuffled) is held out for perplexity.
 *
 * The order of training blocks is a pure function of (seed, epoch): batch k reads positions k·B … k·B+B−1 of the
 * concatenation of per-epoch permutations. So the whole data state of a run is one integer, the batch cursor,
 * which makes resume exact.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { ioError, TopiaryError, type Tokenizer } from '@topiary/kernel';
import { SeededRandom } from '@topiary/linalg';

export interface TokenBlocks {
  /** Tokens per block: seqLen + 1. */
  blockLen: number;
  train: Int32Array[];
  valid: Int32Array[];
  /** Tokens in the file after encoding. */
  tokens: number;
}

export function encodeText(text: string, tokenizer: Tokenizer): Int32Array {
  const docs = text.replace(/\r\n/g, '\n').split(/\n\s*\n/).map((d) => d.trim()).filter((d) => d.length > 0);
  const ids: number[] = [];
  for (const d of docs) for (const id of tokenizer.encode(d, { bos: true })) ids.push(id);
  return Int32Array.from(ids);
}

export function blocksFromTokens(ids: Int32Array, seqLen: number, validFraction: number, file: string): TokenBlocks {
  const blockLen = seqLen + 1;
  const n = Math.floor(ids.length / blockLen);
  const nValid = validFraction > 0 ? Math.max(1, Math.floor(n * validFraction)) : 0;
  if (n - nValid < 1) {
    throw new TopiaryError('E_DATA', `the corpus has ${ids.length} tokens: not one training block of ${blockLen} tokens after holding out ${nValid}`, {
      file,
      hint: 'use a bigger corpus, a shorter seqLen or a smaller validFraction',
    });
  }
  const all: Int32Array[] = [];
  for (let b = 0; b < n; b++) all.push(ids.subarray(b * blockLen, (b + 1) * blockLen));
  return { blockLen, train: all.slice(0, n - nValid), valid: all.slice(n - nValid), tokens: ids.length };
}

export function loadTokenBlocks(path: string, tokenizer: Tokenizer, seqLen: number, validFraction: number): TokenBlocks {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw ioError(e, path, 'read the training corpus');
  }
  return blocksFromTokens(encodeText(text, tokenizer), seqLen, validFraction, path);
}

/**
 * The blocks of a training job: with a held-out file (`valid`), every block of `train` trains and the held-out
 * blocks come from that file (whole documents never trained on); else the last `validFraction` of `train` is held out.
 */
export function loadTrainingBlocks(data: { train: string; valid?: string; seqLen: number; validFraction: number }, tokenizer: Tokenizer): TokenBlocks {
  if (data.valid === undefined) return loadTokenBlocks(data.train, tokenizer, data.seqLen, data.validFraction);
  const train = loadTokenBlocks(data.train, tokenizer, data.seqLen, 0);
  const valid = loadTokenBlocks(data.valid, tokenizer, data.seqLen, 0);
  return { ...train, valid: valid.train, tokens: train.tokens + valid.tokens };
}

/** Deterministic batches over the training blocks. */
export class BatchSampler {
  private permutation: { epoch: number; order: number[] } | null = null;

  constructor(
    readonly blocks: TokenBlocks,
    readonly batchSize: number,
    readonly seed: number,
  ) {
    if (blocks.train.length < batchSize) {
      throw new TopiaryError('E_DATA', `the corpus gives ${blocks.train.length} training blocks, fewer than one batch of ${batchSize}`, {
        where: 'batchSize',
        hint: 'use a bigger corpus, a smaller batchSize or a shorter seqLen',
      });
    }
  }

  private order(epoch: number): number[] {
    if (this.permutation?.epoch !== epoch) {
      const rng = new SeededRandom((this.seed * 1_000_003 + epoch * 7919 + 1) >>> 0);
      this.permutation = { epoch, order: rng.shuffle([...this.blocks.train.keys()]) };
    }
    return this.permutation.order;
  }

  /** Token ids of batch number `cursor` (0-based, counting every micro-batch of the run). */
  ids(cursor: number): Int32Array {
    const n = this.blocks.train.length;
    const len = this.blocks.blockLen;
    const out = new Int32Array(this.batchSize * len);
    for (let b = 0; b < this.batchSize; b++) {
      const j = cursor * this.batchSize + b;
      out.set(this.blocks.train[this.order(Math.floor(j / n))[j % n]!]!, b * len);
    }
    return out;
  }

  batch(cursor: number): tf.Tensor2D {
    return tf.tensor2d(this.ids(cursor), [this.batchSize, this.blocks.blockLen], 'int32');
  }
}
