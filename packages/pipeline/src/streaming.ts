/**
 * A streamed prune: the model is opened block by block (`residency: 'block'`), each block is written into the
 * output folder as soon as the pruner is done with it, and a killed run resumes after its last finished block.
 * Memory: one block in float32 on the heap, the calibration hidden states in host memory, one layer's statistics —
 * whatever the model's size (see the README's memory table).
 */
import { createHash } from 'node:crypto';
import { readdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TopiaryError, type PruneContext } from '@topiary/kernel';
import { releaseHostMemory } from '@topiary/files';
import { ShardedWriter, blockParamNames, isWeightFile, loadedDtype, openShard, type LlamaModel, type StorageDtype } from '@topiary/model-llama';

export interface StreamedPruneOptions {
  /** Output dtype (default: the input's). */
  dtype?: StorageDtype;
  /** Continue an interrupted run into the same folder. */
  resume?: boolean;
  /** What identifies the job besides the input (method, options, calibration, seed): resume only into the same job. */
  job: unknown;
}

export interface StreamedPrune {
  model: LlamaModel;
  /** The pruner's context fields: write each finished block, skip the blocks a resumed run already wrote. */
  hooks: Required<Pick<PruneContext, 'blockDone' | 'resumedBlocks'>>;
  /** Blocks already written by the interrupted run (resume). */
  resumed: number;
  /** Write the embedding/head, the index and config.json: the folder becomes a model. */
  finish(): void;
}

/** The input's identity for resume: its real path, and the size and time of its config and weight files. */
function inputIdentity(path: string): string {
  const real = realpathSync(path);
  const files = statSync(real).isDirectory() ? readdirSync(real).filter((f) => f === 'config.json' || isWeightFile(f)).sort().map((f) => join(real, f)) : [real];
  return files.map((f) => `${f}:${statSync(f).size}:${statSync(f).mtimeMs}`).join('|');
}

/** Bytes of row chunks a block's writer reads between two collections. */
const RELEASE_EVERY_BYTES = 32 * 2 ** 20;

/**
 * Prepare the output folder `out` of a streamed prune of `model` (opened from `modelPath` with `residency: 'block'`),
 * or reopen it to resume: the blocks the interrupted run wrote are then read from its shards.
 */
export function openStreamedPrune(model: LlamaModel, modelPath: string, out: string, options: StreamedPruneOptions): StreamedPrune {
  if (!model.streamed) throw new TopiaryError('E_INTERNAL', 'openStreamedPrune needs a model opened with residency "block"');
  const config = model.config;
  const fingerprint = createHash('sha256')
    .update(JSON.stringify({ input: inputIdentity(modelPath), job: options.job }))
    .digest('hex');
  const writer = ShardedWriter.open(out, config, { dtype: options.dtype ?? loadedDtype(config) ?? 'float32', fingerprint, resume: options.resume, input: modelPath });
  const bias = config.attentionBias === true;
  const done = writer.doneBlocks;
  for (const i of done) model.redirect(blockParamNames(i, bias), openShard(join(out, writer.shardOf(i)), config));
  return {
    model,
    resumed: done.size,
    hooks: {
      resumedBlocks: done,
      blockDone(i: number) {
        // matrices by row chunks off the heap, so the block is never copied whole into host memory; each chunk is a
        // fresh copy, garbage once written: the memory is given back every 32 MiB read, not whenever V8 gets to it
        let read = 0;
        const rows = (name: string, start: number, count: number): Float32Array => {
          const chunk = model.readRows(name, start, count);
          read += chunk.byteLength;
          if (read >= RELEASE_EVERY_BYTES) {
            releaseHostMemory();
            read = 0;
          }
          return chunk;
        };
        const { file, exact } = writer.writeBlock(i, rows, (name) => model.readWeight(name));
        // values the shard holds exactly are read back from it; the others stay as computed (overlay)
        if (exact.length > 0) model.redirect(exact, openShard(file, config));
        model.evict();
      },
    },
    finish() {
      model.evict();
      writer.finish(
        (name, start, count) => model.readRows(name, start, count),
        (name) => model.readWeight(name),
      );
    },
  };
}
