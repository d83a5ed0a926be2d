/**
 * The one block forward (block-grad's blockForward) in its three other uses: kv-cache decoding must give the logits
 * of one full forward pass, and gradients through capture hooks (tfjs autodiff of blockForward, tape on) must equal
 * trainableBlock's hand-written backward. Both on a slimmed model whose layers cover every layout the block has.
 */
import * as tf from '@tensorflow/tfjs';
import { SeededRandom } from '@topiary/linalg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLlama, generate, loadModel, type CreateConfig, type LlamaModel } from '../src/index.js';
import { maxAbsDiff, stories260KBin } from './paths.js';

const base: CreateConfig = { vocabSize: 40, dim: 16, nLayers: 5, nHeads: 4, nKvHeads: 2, hiddenDim: 24, maxSeqLen: 64 };
let slim: LlamaModel;

beforeAll(async () => {
  await tf.setBackend('cpu');
  const m = createLlama(base, { seed: 8, initStd: 0.1 }); // larger weights than the default: sharper attention
  // layer 0: heads [0,1,1] over 2 kv heads (an uneven map: kv repeated per head); 1: standard GQA (heads stacked per
  // kv head); 2: one kv head read by two query heads; 3: no feed-forward; 4: no attention; one hidden channel masked
  m.maskGroups([
    'layers.0.head.0',
    'layers.2.kv.0',
    ...Array.from({ length: base.hiddenDim }, (_, j) => `layers.3.ffn.${j}`),
    'layers.4.kv.0',
    'layers.4.kv.1',
    'hidden.3',
  ]);
  slim = m.slim();
  m.dispose();
  expect(slim.config.layers!.map((l) => [l.nHeads, l.nKvHeads, l.hiddenDim])).toEqual([
    [3, 2, 24],
    [4, 2, 24],
    [2, 1, 24],
    [4, 2, 0],
    [0, 0, 24],
  ]);
});
afterAll(() => slim.dispose());

function randomIds(b: number, t: number, seed: number): number[][] {
  const rng = new SeededRandom(seed);
  return Array.from({ length: b }, () => Array.from({ length: t }, () => Math.floor(rng.next() * base.vocabSize)));
}

/** Logits [b, t, vocab] of one full forward pass. */
function fullLogits(m: LlamaModel, ids: number[][]): Float32Array {
  return tf.tidy(() => m.forward(tf.tensor2d(ids, undefined, 'int32')).dataSync() as Float32Array);
}

/** Rows [b, vocab] at position p of logits [b, t, vocab]. */
function rowsAt(logits: Float32Array, b: number, t: number, vocab: number, p: number): Float32Array {
  const out = new Float32Array(b * vocab);
  for (let i = 0; i < b; i++) out.set(logits.subarray((i * t + p) * vocab, (i * t + p + 1) * vocab), i * vocab);
  return out;
}

/** Feed ids [b, t] to the cache in chunks of the given sizes; the last position's logits [b, vocab] of each chunk. */
function decodeChunks(m: LlamaModel, ids: number[][], sizes: number[]): Float32Array[] {
  const cache = m.newCache();
  const out: Float32Array[] = [];
  let at = 0;
  try {
    for (const n of sizes) {
      const chunk = tf.tensor2d(ids.map((row) => row.slice(at, at + n)), undefined, 'int32');
      const logits = m.decode(chunk, cache);
      out.push(logits.dataSync() as Float32Array);
      tf.dispose([chunk, logits]);
      at += n;
      expect(cache.length).toBe(at);
    }
  } finally {
    m.disposeCache(cache);
  }
  return out;
}

describe('kv-cache decoding equals one full forward pass', () => {
  test('token by token, and in chunks after a cached prefix (causal mask for start > 0), on every block layout', () => {
    const [b, t, vocab] = [2, 12, base.vocabSize];
    const ids = randomIds(b, t, 2);
    const full = fullLogits(slim, ids);
    const before = tf.memory().numTensors;
    const steps = decodeChunks(slim, ids, Array(t).fill(1));
    let worst = 0;
    for (const [p, row] of steps.entries()) worst = Math.max(worst, maxAbsDiff(row, rowsAt(full, b, t, vocab, p)));
    // chunks of 4, 3, 1, 4: several new queries over cached keys at once
    const sizes = [4, 3, 1, 4];
    const chunked = decodeChunks(slim, ids, sizes);
    let end = 0;
    for (const [c, row] of chunked.entries()) {
      end += sizes[c]!;
      worst = Math.max(worst, maxAbsDiff(row, rowsAt(full, b, t, vocab, end - 1)));
    }
    console.log(`slimmed model: max |decode - forward| = ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-4);
    expect(tf.memory().numTensors).toBe(before); // the cache path frees everything it made
  });

  test('greedy decoding with the cache picks what greedy decoding by full forward passes picks', () => {
    const prompt = [1, 7, 3];
    const n = 20;
    const cached = generate(slim, prompt, { maxTokens: n, stopAtEos: false });
    const seq = [...prompt];
    for (let i = 0; i < n; i++) {
      const logits = fullLogits(slim, [seq]);
      const last = logits.subarray((seq.length - 1) * base.vocabSize);
      seq.push(last.indexOf(Math.max(...last)));
    }
    expect(cached).toEqual(seq.slice(prompt.length));
  });

  test('stories260K: 40 greedy tokens by the cache, then one forward over them: same choices, logits within 1e-4', async () => {
    const m = await loadModel(stories260KBin);
    const vocab = m.config.vocabSize;
    const seq = [1, 403, 407];
    const cache = m.newCache();
    const rows: Float32Array[] = [];
    const before = tf.memory().numTensors;
    try {
      let input = [...seq];
      for (let i = 0; i < 40; i++) {
        const x = tf.tensor2d([input], undefined, 'int32');
        const logits = m.decode(x, cache);
        const row = logits.dataSync() as Float32Array;
        tf.dispose([x, logits]);
        rows.push(row);
        const next = row.indexOf(Math.max(...row));
        seq.push(next);
        input = [next];
      }
    } finally {
      m.disposeCache(cache);
    }
    expect(tf.memory().numTensors).toBe(before);
    const full = fullLogits(m, [seq.slice(0, -1)]);
    const t = seq.length - 1;
    let worst = 0;
    for (const [i, row] of rows.entries()) {
      const p = 2 + i; // the row that chose seq[p + 1]
      const ref = rowsAt(full, 1, t, vocab, p);
      worst = Math.max(worst, maxAbsDiff(row, ref));
      expect(ref.indexOf(Math.max(...ref)), `position ${p}`).toBe(seq[p + 1]);
    }
    console.log(`stories260K: max |decode - forward| over 40 greedy steps = ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-4);
    m.dispose();
  });
});

describe('gradients through capture hooks (tfjs autodiff, tape on) equal trainableBlock’s hand-written backward', () => {
  test('loss and every gradient, on every block layout', () => {
    const ids = tf.tensor2d(randomIds(2, 9, 3), undefined, 'int32');
    const vars = [...slim.parameters().values()].filter((v) => v.size > 0); // the empty halves' weights have none
    // the loss and every gradient, read back inside a tidy (which frees the tensors; it may only return tensors)
    const run = (): [number, (Float32Array | null)[]] => {
      let out: [number, (Float32Array | null)[]] | undefined;
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => slim.loss(ids), vars);
        // (layer 3's post-attention norm feeds no FFN, layer 4's input norm no attention: no gradient either way)
        out = [value.dataSync()[0]!, vars.map((v) => (grads[v.name]?.dataSync() as Float32Array | undefined) ?? null)];
      });
      return out!;
    };
    const before = tf.memory().numTensors;
    const [blockLoss, blockGrads] = run();
    let taps = 0;
    const remove = slim.capture((_, input) => {
      taps++;
      expect(input.shape[0]).toBe(2 * 8);
    });
    const [hookLoss, hookGrads] = run();
    remove();
    expect(tf.memory().numTensors).toBe(before);
    // q/k/v/o in layers 0-3, gate/up/down in 0-2 and 4
    expect(taps).toBe(4 * 4 + 4 * 3);
    expect(Math.abs(blockLoss - hookLoss)).toBeLessThan(1e-5);
    expect(blockGrads.map((g) => g === null)).toEqual(hookGrads.map((g) => g === null));
    expect(blockGrads.filter((g) => g !== null).length).toBe(vars.length - 2);
    let worst = 0;
    for (const [i, g] of blockGrads.entries()) {
      if (!g) continue;
      const d = maxAbsDiff(g, hookGrads[i]!);
      worst = Math.max(worst, d);
      expect(d, vars[i]!.name).toBeLessThan(1e-5);
    }
    console.log(`max |autodiff grad - hand-written grad| = ${worst.toExponential(2)}`);
    ids.dispose();
  });
});

describe('captureBlock: the capture hooks only', () => {
  test('every linear layer of every block layout sees the input block() gives it, nothing leaks', () => {
    const hidden = tf.tidy(() => slim.embed(tf.tensor2d(randomIds(2, 7, 5), undefined, 'int32')));
    const record = (run: () => void): Map<string, Float32Array> => {
      const seen = new Map<string, Float32Array>();
      const remove = slim.capture((linear, input) => seen.set(`${linear.layer}.${linear.kind}`, input.dataSync().slice() as Float32Array));
      try {
        run();
      } finally {
        remove();
      }
      return seen;
    };
    for (let i = 0; i < slim.numBlocks; i++) {
      const viaBlock = record(() => tf.dispose(slim.block(i, hidden)));
      const before = tf.memory().numTensors;
      const viaCapture = record(() => slim.captureBlock(i, hidden));
      expect(tf.memory().numTensors).toBe(before);
      expect([...viaCapture.keys()]).toEqual([...viaBlock.keys()]);
      expect(viaBlock.size).toBeGreaterThan(0);
      for (const [key, x] of viaBlock) expect(viaCapture.get(key), key).toEqual(x);
    }
    hidden.dispose();
  });
});

describe('readWeight', () => {
  test('with copy: the caller owns the array (writing it changes nothing in the model)', () => {
    const name = 'model.layers.0.mlp.up_proj.weight';
    const before = slim.readWeight(name).slice();
    const copy = slim.readWeight(name, { copy: true });
    copy.fill(7);
    expect(slim.readWeight(name)).toEqual(before);
  });
});
