/**
 * Issue 19: checkpoints read on demand, models streamed one block at a time, outputs written block by block.
 * The streamed path must compute bit-identical numbers to the in-memory one (same operations on the same values).
 */
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, truncateSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TopiaryError } from '@topiary/kernel';
import {
  blockParamNames,
  createLlama,
  loadModel,
  openWeights,
  readLlama2c,
  ShardedWriter,
  PROGRESS_FILE,
  writeHf,
  type LlamaModel,
} from '../src/index.js';
import { Llama2cSource } from '../src/formats/llama2c.js';
import { logitsOf } from './model-helpers.js';
import { stories260KBin } from './paths.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'topiary-stream-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const CONFIG = { vocabSize: 256, dim: 64, nLayers: 4, nHeads: 4, nKvHeads: 2, hiddenDim: 128, maxSeqLen: 64 };
const IDS = [
  [1, 17, 33, 200, 45, 45, 9, 101, 3, 77, 255, 0],
  [2, 5, 8, 13, 21, 34, 55, 89, 144, 233, 1, 1],
];

/** A seeded random 4-block model saved as bf16 safetensors in shards of ≤ 60 kB (index + several files). */
function shardedBf16(): string {
  const dir = tempDir();
  const m = createLlama(CONFIG, { seed: 7 });
  const weights = new Map([...m.parameters().keys()].map((n) => [n, m.readWeight(n).slice()]));
  writeHf(dir, m.config, weights, { dtype: 'bfloat16', maxShardBytes: 60_000 });
  m.dispose();
  return dir;
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof TopiaryError ? e.code : 'not a TopiaryError';
  }
  return undefined;
}

describe('lazy checkpoints', () => {
  let dir: string;
  beforeAll(() => {
    dir = shardedBf16();
  });

  test('a sharded bf16 folder: headers only, tensors and rows read on demand, same values as an eager load', async () => {
    expect(existsSync(join(dir, 'model.safetensors.index.json'))).toBe(true);
    expect(readdirSync(dir).filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(2);
    const source = openWeights(dir);
    expect(source.dtype).toBe('bfloat16');
    expect(source.config.nLayers).toBe(4);
    const eager = await loadModel(dir);
    try {
      for (const name of ['model.embed_tokens.weight', 'model.layers.2.mlp.down_proj.weight', 'model.norm.weight']) {
        expect(source.read(name)).toEqual(eager.readWeight(name));
      }
      const emb = source.read('model.embed_tokens.weight');
      expect(source.readRows('model.embed_tokens.weight', 10, 5)).toEqual(emb.slice(10 * 64, 15 * 64));
    } finally {
      eager.dispose();
      source.close();
    }
  });

  test('a llama2.c .bin read on demand equals the eager read (q/k permuted, rows of the embedding)', () => {
    const file = stories260KBin;
    const eager = readLlama2c(file);
    const lazy = Llama2cSource.open(file);
    try {
      for (const name of ['model.layers.1.self_attn.q_proj.weight', 'model.layers.4.self_attn.k_proj.weight', 'model.layers.0.mlp.up_proj.weight']) {
        expect(lazy.read(name)).toEqual(eager.weights.get(name));
      }
      const dim = eager.config.dim;
      expect(lazy.readRows('model.embed_tokens.weight', 100, 3)).toEqual(eager.weights.get('model.embed_tokens.weight')!.slice(100 * dim, 103 * dim));
    } finally {
      lazy.close();
    }
  });

  test('a shard the index names that is missing, or short, is an error naming the shard', () => {
    const broken = tempDir();
    for (const f of readdirSync(dir)) copyFileSync(join(dir, f), join(broken, f));
    const shard = readdirSync(broken).filter((f) => f.endsWith('.safetensors')).sort()[1]!;
    truncateSync(join(broken, shard), statSync(join(broken, shard)).size - 100);
    let error: unknown;
    try {
      openWeights(broken);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TopiaryError);
    expect((error as TopiaryError).code).toBe('E_FORMAT');
    expect((error as TopiaryError).file).toContain(shard);
    rmSync(join(broken, shard));
    try {
      openWeights(broken);
      error = undefined;
    } catch (e) {
      error = e;
    }
    expect((error as TopiaryError).message).toContain(`shard ${shard}`);
    expect((error as TopiaryError).file).toContain(shard);
  });
});

describe('streamed model (one block on the heap)', () => {
  let dir: string;
  let eager: LlamaModel;
  let streamed: LlamaModel;
  beforeAll(async () => {
    dir = shardedBf16();
    eager = await loadModel(dir);
    streamed = await loadModel(dir, { residency: 'block' });
  });
  afterAll(() => {
    eager.dispose();
    streamed.dispose();
  });

  test('logits and target scores are bit-identical to the in-memory model', () => {
    expect(streamed.streamed).toBe(true);
    expect(logitsOf(streamed, IDS)).toEqual(logitsOf(eager, IDS));
    const targets = Int32Array.from(IDS.flat(), (v, i) => (v * 7 + i) % 256);
    const score = (m: LlamaModel) => {
      const h = tf.tidy(() => m.embed(tf.tensor2d(IDS, [2, 12], 'int32')));
      try {
        return m.scoreTargets(h, targets);
      } finally {
        h.dispose();
      }
    };
    // no blocks run here: embedding + head only, which the streamed model reads by rows
    expect(score(streamed)).toEqual(score(eager));
    expect(streamed.parameterCount()).toBe(eager.parameterCount());
  });

  test('only one block is on the heap at a time; whole-model operations are refused with a clear error', () => {
    const before = tf.memory().numBytes;
    for (let i = 0; i < 4; i++) tf.tidy(() => void streamed.block(i, streamed.embed(tf.tensor2d([IDS[0]!], [1, 12], 'int32'))));
    const blockBytes = blockParamNames(0).reduce((a, n) => a + streamed.readWeight(n).length * 4, 0);
    expect(tf.memory().numBytes - before).toBeLessThanOrEqual(blockBytes + 1024);
    for (const fn of [() => streamed.parameters(), () => streamed.slim(), () => streamed.clone(), () => streamed.maskGroups(['layers.0.head.0'])]) expect(code(fn)).toBe('E_USAGE');
  });

  test('modified blocks survive eviction (memory, then spilled to disk under a tiny budget) exactly', async () => {
    const spillDir = tempDir();
    const m = await loadModel(dir, { residency: 'block', spill: { maxMemory: 10_000, spillDir } });
    try {
      const name = 'model.layers.1.mlp.gate_proj.weight';
      const w = m.readWeight(name).slice();
      for (let i = 0; i < w.length; i += 3) w[i] = 0.1234567;
      m.writeWeight(name, w);
      m.writeWeight('model.layers.2.mlp.up_proj.weight', m.readWeight('model.layers.2.mlp.up_proj.weight').map((v) => v * 3));
      m.evict();
      expect(readdirSync(spillDir).some((f) => f.startsWith('block-1-'))).toBe(true);
      expect(m.readWeight(name)).toEqual(w);
      tf.tidy(() => void m.block(1, m.embed(tf.tensor2d([IDS[0]!], [1, 12], 'int32'))));
      expect(m.readWeight(name)).toEqual(w);
    } finally {
      m.dispose();
    }
  });

  test('a spill folder that cannot be written is an E_IO error before any work', async () => {
    const file = join(tempDir(), 'not-a-folder');
    copyFileSync(join(dir, 'config.json'), file);
    await expect(loadModel(dir, { residency: 'block', spill: { spillDir: join(file, 'spill') } })).rejects.toMatchObject({ code: 'E_IO' });
  });
});

describe('ShardedWriter', () => {
  test('block by block, sharded or consolidated, in the input dtype; a killed run never looks complete; resume checks the job', async () => {
    const input = shardedBf16();
    const m = await loadModel(input, { residency: 'block' });
    try {
      for (const singleFileBytes of [0, undefined]) {
        const out = join(tempDir(), 'out');
        const w = ShardedWriter.open(out, m.config, { dtype: 'bfloat16', fingerprint: 'job-a', input, ...(singleFileBytes === undefined ? {} : { singleFileBytes }) });
        w.writeBlock(0, (n, s, c) => m.readRows(n, s, c), (n) => m.readWeight(n));
        w.writeBlock(1, (n, s, c) => m.readRows(n, s, c), (n) => m.readWeight(n));
        // "killed" here: shards and progress, no config.json, no index
        expect(existsSync(join(out, PROGRESS_FILE))).toBe(true);
        expect(existsSync(join(out, 'config.json'))).toBe(false);
        expect(code(() => ShardedWriter.open(out, m.config, { dtype: 'bfloat16', fingerprint: 'job-a' }))).toBe('E_USAGE'); // no --resume
        expect(code(() => ShardedWriter.open(out, m.config, { dtype: 'bfloat16', fingerprint: 'job-b', resume: true }))).toBe('E_USAGE'); // another job
        const resumed = ShardedWriter.open(out, m.config, { dtype: 'bfloat16', fingerprint: 'job-a', resume: true, ...(singleFileBytes === undefined ? {} : { singleFileBytes }) });
        expect([...resumed.doneBlocks].sort()).toEqual([0, 1]);
        resumed.writeBlock(2, (n, s, c) => m.readRows(n, s, c), (n) => m.readWeight(n));
        resumed.writeBlock(3, (n, s, c) => m.readRows(n, s, c), (n) => m.readWeight(n));
        resumed.finish((n, s, c) => m.readRows(n, s, c), (n) => m.readWeight(n));
        expect(existsSync(join(out, PROGRESS_FILE))).toBe(false);
        expect(existsSync(join(out, 'model.safetensors.index.json'))).toBe(singleFileBytes === 0);
        expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
        const back = await loadModel(out);
        try {
          for (const name of back.parameters().keys()) expect(back.readWeight(name)).toEqual(m.readWeight(name));
        } finally {
          back.dispose();
        }
      }
      expect(code(() => ShardedWriter.open(input, m.config, { dtype: 'bfloat16', fingerprint: 'x', input }))).toBe('E_USAGE');
    } finally {
      m.dispose();
    }
  });
});

describe('readRows of a resident block on tfjs-wasm', () => {
  test('rows come off the heap as copies of exactly those rows (the shard writer reads a block this way)', async () => {
    const previous = tf.getBackend();
    await import('@tensorflow/tfjs-backend-wasm');
    expect(await tf.setBackend('wasm')).toBe(true);
    const m = await loadModel(shardedBf16(), { residency: 'block' });
    try {
      const name = 'model.layers.1.mlp.gate_proj.weight';
      const whole = m.readWeight(name, { copy: true }); // makes block 1 resident
      const cols = m.linears(1).find((l) => l.param === name)!.inFeatures;
      const rows = whole.length / cols;
      const heap = (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer;
      for (const [start, count] of [[0, 1], [3, 5], [rows - 2, 2], [0, rows]] as const) {
        const got = m.readRows(name, start, count);
        expect(got.buffer).not.toBe(heap);
        expect(new Uint32Array(got.buffer, got.byteOffset, got.length)).toEqual(new Uint32Array(whole.slice(start * cols, (start + count) * cols).buffer));
      }
      const chunk = m.readRows(name, 0, 2);
      chunk.fill(7); // a copy: the weight is unchanged
      expect(m.readRows(name, 0, 2)).toEqual(whole.slice(0, 2 * cols));
    } finally {
      m.dispose();
      await tf.setBackend(previous);
    }
  });
});

describe('editWeight: a streamed block edited where it is on the heap', () => {
  test('on tfjs-wasm the edit gets the heap itself and gives exactly writeWeight’s weights (−0 included) and logits', async () => {
    const previous = tf.getBackend();
    await import('@tensorflow/tfjs-backend-wasm');
    expect(await tf.setBackend('wasm')).toBe(true);
    const dir = shardedBf16();
    const a = await loadModel(dir, { residency: 'block' });
    const b = await loadModel(dir, { residency: 'block' });
    try {
      const name = 'model.layers.2.mlp.down_proj.weight';
      // drop every third weight (negative ones become −0 under x·0), keep the rest doubled; one pruned weight is left
      // non-zero on purpose, so the model itself must apply the mask
      const edit = (w: Float32Array): Uint8Array => {
        const keep = Uint8Array.from(w, (_, i) => (i % 3 === 0 ? 0 : 1));
        for (let i = 0; i < w.length; i++) w[i] = keep[i] ? w[i]! * 2 : i === 0 ? w[i]! : 0;
        return keep;
      };
      let heap = false;
      a.editWeight(name, (w) => {
        heap = w.buffer === (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer;
        return edit(w);
      });
      expect(heap).toBe(true);
      const copy = b.readWeight(name, { copy: true });
      b.writeWeight(name, copy, edit(copy));
      const bits = (m: LlamaModel) => new Uint32Array(m.readWeight(name, { copy: true }).buffer);
      expect(bits(a)).toEqual(bits(b));
      expect(Object.is(a.readWeight(name)[0], 0) || Object.is(a.readWeight(name)[0], -0)).toBe(true);
      expect(logitsOf(a, IDS)).toEqual(logitsOf(b, IDS));
      // an edit that grows the heap (a tensor operation) would have written into a detached view: refused loudly
      let grew: unknown;
      try {
        a.editWeight('model.layers.3.mlp.up_proj.weight', () => {
          tf.zeros([48 * 2 ** 20]).dispose();
          return undefined;
        });
      } catch (e) {
        grew = e;
      }
      expect(grew).toMatchObject({ code: 'E_INTERNAL' });
    } finally {
      a.dispose();
      b.dispose();
      await tf.setBackend(previous);
    }
  });
});
