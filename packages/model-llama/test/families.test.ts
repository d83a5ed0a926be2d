/**
 * The Llama-family architectures beyond LlamaForCausalLM without scaling: Llama 3 RoPE scaling, Qwen2 (q/k/v biases,
 * tied embeddings), Mistral, SmolLM. Logits and greedy tokens against bench/reference/hf_families_reference.py (a torch
 * forward transcribed from transformers' modelling code), the inverse frequencies of real configs, the refusals, the
 * bias path through groups / slim / save, and the biases' hand-written gradient against tfjs autodiff.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { TopiaryError } from '@topiary/kernel';
import { SeededRandom } from '@topiary/linalg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  AdamW,
  LlamaModel,
  biasName,
  configFromHf,
  createLlama,
  generate,
  loadModel,
  readSafetensorsIndex,
  ropeInvFreq,
  saveModel,
  type CreateConfig,
  type LlamaConfig,
} from '../src/index.js';
import { fixtures, maxAbsDiff, readJson } from './paths.js';
import { logitsOf, weightsOf } from './model-helpers.js';

const dir = join(fixtures, 'hf-families');
const tmp = mkdtempSync(join(tmpdir(), 'model-llama-families-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(async () => {
  await tf.setBackend('cpu');
});

interface Ref {
  ids: number[];
  shape: [number, number];
  greedy: number[];
  greedy_min_top2_gap: number;
  /** max |float32 forward − float64 forward| of the reference itself */
  float32_noise: number;
  unscaled_max_abs_diff?: number;
}

function reference(name: string): { ref: Ref; logits: Float32Array } {
  const ref = readJson<Ref>(join(dir, name, 'reference.json'));
  const bytes = readFileSync(join(dir, name, 'logits.f32'));
  const logits = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  expect(logits.length).toBe(ref.shape[0] * ref.shape[1]);
  return { ref, logits };
}



/** A copy of a fixture folder with its config.json changed by `edit`. */
function withConfig(name: string, edit: (j: Record<string, unknown>) => void): string {
  const to = mkdtempSync(join(tmp, `${name}-`));
  cpSync(join(dir, name), to, { recursive: true });
  const j = readJson<Record<string, unknown>>(join(to, 'config.json'));
  edit(j);
  writeFileSync(join(to, 'config.json'), JSON.stringify(j));
  return to;
}

async function refused(p: Promise<unknown>, where: string, pattern: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TopiaryError);
    const err = e as TopiaryError;
    expect(err.code).toBe('E_CONFIG');
    expect(err.where).toBe(where);
    expect(err.message).toMatch(pattern);
    return;
  }
  throw new Error(`expected E_CONFIG at ${where}`);
}

const TOLERANCE = 1e-4;

describe('each family against the transformers transcription', () => {
  const cases: [string, (c: LlamaConfig) => void][] = [
    [
      'llama3-scaled',
      (c) => {
        expect(c.family).toBeUndefined();
        expect(c.ropeScaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 });
        expect(c).toMatchObject({ ropeTheta: 500000, tiedEmbeddings: true, nKvHeads: 2, eosId: 2 });
      },
    ],
    [
      'qwen2-bias-tied',
      (c) => {
        expect(c).toMatchObject({ family: 'qwen2', attentionBias: true, tiedEmbeddings: true, ropeTheta: 1e6, normEps: 1e-6 });
        expect(c.slidingWindow).toBeUndefined(); // use_sliding_window: false
      },
    ],
    ['mistral', (c) => expect(c).toMatchObject({ family: 'mistral', tiedEmbeddings: false, headDim: 16, slidingWindow: 256, maxSeqLen: 256 })],
    ['smollm', (c) => expect(c).toMatchObject({ nHeads: 6, nKvHeads: 2, headDim: 8, tiedEmbeddings: true, ropeTheta: 1e5 })],
  ];
  for (const [name, checkConfig] of cases) {
    test(`${name}: config, logits of every position within ${TOLERANCE}, greedy tokens (kv cache)`, async () => {
      const { ref, logits } = reference(name);
      const m = await loadModel(join(dir, name));
      try {
        checkConfig(m.config);
        const diff = maxAbsDiff(logitsOf(m, ref.ids), logits);
        console.log(
          `${name}: ${ref.ids.length} positions, max |logit − transformers| = ${diff.toExponential(2)} ` +
            `(the reference's own float32 noise ${ref.float32_noise.toExponential(2)}; smallest greedy top-2 gap ${ref.greedy_min_top2_gap.toFixed(3)})`,
        );
        expect(ref.float32_noise).toBeLessThan(TOLERANCE / 2); // the fixture is conditioned well enough for the tolerance
        expect(diff).toBeLessThan(TOLERANCE);
        expect(generate(m, ref.ids, { maxTokens: ref.greedy.length, stopAtEos: false })).toEqual(ref.greedy);
      } finally {
        m.dispose();
      }
    });
  }

  test('llama3-scaled: the sequence reaches past the original context, and without the scaling the logits differ', async () => {
    const { ref, logits } = reference('llama3-scaled');
    const m = await loadModel(join(dir, 'llama3-scaled'));
    expect(ref.ids.length).toBeGreaterThan(2 * (m.config.ropeScaling as { originalMaxPositionEmbeddings: number }).originalMaxPositionEmbeddings);
    const { ropeScaling, ...plain } = m.config;
    expect(ropeScaling).toBeDefined();
    const unscaled = new LlamaModel(plain, weightsOf(m));
    const diff = maxAbsDiff(logitsOf(unscaled, ref.ids), logits);
    console.log(`llama3-scaled without rope_scaling: max |logit − transformers| = ${diff.toFixed(2)} (reference's own: ${ref.unscaled_max_abs_diff!.toFixed(2)})`);
    expect(diff).toBeGreaterThan(1000 * TOLERANCE);
    unscaled.dispose();
    m.dispose();
  });
});

describe('RoPE inverse frequencies of real configs (ROPE_INIT_FUNCTIONS, float32)', () => {
  interface Case {
    name: string;
    config: Record<string, unknown>;
    seq_len: number;
    attention_scaling: number;
    inv_freq: number[];
  }
  const { cases } = readJson<{ cases: Case[] }>(join(dir, 'rope-inv-freq.json'));
  for (const c of cases) {
    test(c.name, () => {
      const config = configFromHf({ vocab_size: 8, num_hidden_layers: 1, intermediate_size: 8, ...c.config }, 'rope-inv-freq.json');
      expect(c.attention_scaling).toBe(1);
      const f = ropeInvFreq(config.headDim, config.ropeTheta, config.ropeScaling, c.seq_len);
      expect(f.length).toBe(c.inv_freq.length);
      // float32 step by step, as torch: bit for bit
      expect([...f], c.name).toEqual(c.inv_freq);
    });
  }

  test('dynamic NTK is plain RoPE up to max_position_embeddings and scaled past it (model level)', () => {
    const base: CreateConfig = { vocabSize: 20, dim: 16, nLayers: 1, nHeads: 2, hiddenDim: 16, maxSeqLen: 8 };
    const plain = createLlama(base, { seed: 3, initStd: 0.3 });
    const dynamic = new LlamaModel({ ...plain.config, ropeScaling: { type: 'dynamic', factor: 2, maxPositionEmbeddings: 8 } }, weightsOf(plain));
    const short = [1, 5, 9, 3, 7, 2, 11, 4];
    expect(maxAbsDiff(logitsOf(plain, short), logitsOf(dynamic, short))).toBe(0);
    const long = [...short, 6, 13, 8, 1];
    expect(maxAbsDiff(logitsOf(plain, long), logitsOf(dynamic, long))).toBeGreaterThan(1e-4);
    plain.dispose();
    dynamic.dispose();
  });
});

describe('published config.json files of each family (as on the Hub)', () => {
  const llama32 = {
    architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000, eos_token_id: 128001, head_dim: 64,
    hidden_act: 'silu', hidden_size: 2048, initializer_range: 0.02, intermediate_size: 8192, max_position_embeddings: 131072, mlp_bias: false,
    model_type: 'llama', num_attention_heads: 32, num_hidden_layers: 16, num_key_value_heads: 8, pretraining_tp: 1, rms_norm_eps: 1e-5,
    rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
    rope_theta: 500000.0, tie_word_embeddings: true, torch_dtype: 'bfloat16', transformers_version: '4.45.0.dev0', use_cache: true, vocab_size: 128256,
  };
  const qwen25 = {
    architectures: ['Qwen2ForCausalLM'], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151643, hidden_act: 'silu', hidden_size: 896,
    initializer_range: 0.02, intermediate_size: 4864, max_position_embeddings: 32768, max_window_layers: 24, model_type: 'qwen2',
    num_attention_heads: 14, num_hidden_layers: 24, num_key_value_heads: 2, rms_norm_eps: 1e-6, rope_theta: 1000000.0, sliding_window: 32768,
    tie_word_embeddings: true, torch_dtype: 'bfloat16', transformers_version: '4.40.1', use_cache: true, use_mrope: false, use_sliding_window: false,
    vocab_size: 151936,
  };
  const smollm2 = {
    architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 0, eos_token_id: 0, hidden_act: 'silu',
    hidden_size: 576, initializer_range: 0.041666666666666664, intermediate_size: 1536, is_llama_config: true, max_position_embeddings: 8192,
    mlp_bias: false, model_type: 'llama', num_attention_heads: 9, num_hidden_layers: 30, num_key_value_heads: 3, pretraining_tp: 1,
    rms_norm_eps: 1e-5, rope_interleaved: false, rope_scaling: null, rope_theta: 100000, tie_word_embeddings: true, torch_dtype: 'bfloat16',
    transformers_version: '4.42.3', use_cache: true, vocab_size: 49152,
  };
  const mistral = {
    architectures: ['MistralForCausalLM'], attention_dropout: 0.0, bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu', hidden_size: 4096,
    initializer_range: 0.02, intermediate_size: 14336, max_position_embeddings: 32768, model_type: 'mistral', num_attention_heads: 32,
    num_hidden_layers: 32, num_key_value_heads: 8, rms_norm_eps: 1e-5, rope_theta: 1000000.0, sliding_window: null, tie_word_embeddings: false,
    torch_dtype: 'bfloat16', transformers_version: '4.42.0.dev0', use_cache: true, vocab_size: 32768,
  };

  test('Llama 3.2 1B, Qwen2.5 0.5B, SmolLM2 135M, Mistral 7B v0.3', () => {
    expect(configFromHf(llama32, 'llama32.json')).toMatchObject({
      dim: 2048, nHeads: 32, nKvHeads: 8, headDim: 64, maxSeqLen: 131072, ropeTheta: 500000, tiedEmbeddings: true, bosId: 128000, eosId: 128001,
      ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    });
    const q = configFromHf(qwen25, 'qwen25.json');
    expect(q).toMatchObject({ family: 'qwen2', attentionBias: true, dim: 896, nHeads: 14, nKvHeads: 2, headDim: 64, ropeTheta: 1e6, tiedEmbeddings: true });
    expect(q.slidingWindow).toBeUndefined();
    expect(configFromHf(smollm2, 'smollm2.json')).toMatchObject({ nHeads: 9, nKvHeads: 3, headDim: 64, ropeTheta: 100000, normEps: 1e-5, tiedEmbeddings: true });
    const m = configFromHf(mistral, 'mistral.json');
    expect(m).toMatchObject({ family: 'mistral', nKvHeads: 8, tiedEmbeddings: false, maxSeqLen: 32768 });
    expect(m.slidingWindow).toBeUndefined();
  });

  test('Mistral 7B v0.1 (sliding_window 4096, context 32768) is refused naming sliding_window', () => {
    let err: unknown;
    try {
      configFromHf({ ...mistral, sliding_window: 4096, rope_theta: 10000.0 }, 'mistral-v0.1.json');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TopiaryError);
    expect((err as TopiaryError).where).toBe('sliding_window');
    expect((err as TopiaryError).describe()).toMatch(/mistral-v0\.1\.json: sliding_window: sliding_window 4096 is shorter than max_position_embeddings 32768/);
  });
});

describe('what is refused, naming the config field', () => {
  test('an unsupported rope_type, listing the supported ones', async () => {
    await refused(
      loadModel(withConfig('llama3-scaled', (j) => void ((j.rope_scaling as Record<string, unknown>).rope_type = 'yarn'))),
      'rope_scaling.rope_type',
      /"yarn" is not supported \(supported: default, linear, dynamic, llama3\)/,
    );
    await refused(loadModel(withConfig('smollm', (j) => void (j.rope_scaling = { type: 'longrope', factor: 2 }))), 'rope_scaling.type', /"longrope" is not supported/);
    await refused(
      loadModel(withConfig('llama3-scaled', (j) => void delete (j.rope_scaling as Record<string, unknown>).low_freq_factor)),
      'rope_scaling.low_freq_factor',
      /missing field "low_freq_factor"/,
    );
    await refused(
      loadModel(withConfig('llama3-scaled', (j) => void ((j.rope_scaling as Record<string, unknown>).high_freq_factor = 1))),
      'rope_scaling.high_freq_factor',
      /must be greater than low_freq_factor/,
    );
  });

  test('an unsupported architecture or model_type, listing the supported ones', async () => {
    await refused(
      loadModel(withConfig('smollm', (j) => Object.assign(j, { architectures: ['GemmaForCausalLM'], model_type: undefined }))),
      'architectures[0]',
      /"GemmaForCausalLM" is not supported \(supported: LlamaForCausalLM \(model_type "llama"\), MistralForCausalLM \(model_type "mistral"\), Qwen2ForCausalLM \(model_type "qwen2"\)\)/,
    );
    await refused(loadModel(withConfig('smollm', (j) => void (j.model_type = 'phi3'))), 'model_type', /"phi3" is not supported/);
    await refused(loadModel(withConfig('smollm', (j) => void (j.model_type = 'qwen2'))), 'architectures[0]', /LlamaForCausalLM but model_type is "qwen2"/);
    await refused(loadModel(withConfig('smollm', (j) => void (j.attention_bias = true))), 'attention_bias', /o_proj/);
  });

  test('Mistral: a sliding window shorter than the context (also the default 4096 when the field is absent)', async () => {
    await refused(loadModel(withConfig('mistral', (j) => void (j.sliding_window = 128))), 'sliding_window', /sliding_window 128 is shorter than max_position_embeddings 256/);
    await refused(
      loadModel(withConfig('mistral', (j) => Object.assign(j, { sliding_window: undefined, max_position_embeddings: 32768 }))),
      'sliding_window',
      /4096 is shorter than max_position_embeddings 32768/,
    );
    const none = await loadModel(withConfig('mistral', (j) => void (j.sliding_window = null)));
    expect(none.config.slidingWindow).toBeUndefined();
    none.dispose();
  });

  test('Qwen2: use_sliding_window true only when no layer uses a window narrower than the context', async () => {
    await refused(
      loadModel(withConfig('qwen2-bias-tied', (j) => Object.assign(j, { use_sliding_window: true, sliding_window: 128, max_window_layers: 1 }))),
      'sliding_window',
      /shorter than max_position_embeddings 256/,
    );
    const wide = await loadModel(withConfig('qwen2-bias-tied', (j) => Object.assign(j, { use_sliding_window: true, sliding_window: 256, max_window_layers: 0 })));
    expect(wide.config).toMatchObject({ slidingWindow: 256, maxWindowLayers: 0 });
    wide.dispose();
    // max_window_layers ≥ num_hidden_layers: no layer has the window
    const unused = await loadModel(withConfig('qwen2-bias-tied', (j) => Object.assign(j, { use_sliding_window: true, sliding_window: 16, max_window_layers: 2 })));
    expect(unused.config.slidingWindow).toBeUndefined();
    unused.dispose();
  });

  test('a pass longer than an accepted window is refused, not computed without it', async () => {
    const m = await loadModel(join(dir, 'mistral'));
    const ids = Array.from({ length: 257 }, (_, i) => i % 128);
    expect(() => logitsOf(m, ids)).toThrow(/longer than the sliding attention window \(256\)/);
    m.dispose();
  });
});

describe('biases through groups, slim and save', () => {
  test('head and kv groups carry their bias entries; slim keeps them with their rows; saved under HF names', async () => {
    const { ref } = reference('qwen2-bias-tied');
    const m = await loadModel(join(dir, 'qwen2-bias-tied'));
    const hd = m.config.headDim;
    const kv = m.groups(['kv-group']).find((g) => g.id === 'layers.1.kv.1')!;
    expect(kv.members.filter((x) => x.param.endsWith('.bias'))).toEqual([
      { param: biasName(1, 'k'), axis: 0, indices: [16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31] },
      { param: biasName(1, 'v'), axis: 0, indices: [16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31] },
      { param: biasName(1, 'q'), axis: 0, indices: Array.from({ length: hd }, (_, i) => 2 * hd + i) },
      { param: biasName(1, 'q'), axis: 0, indices: Array.from({ length: hd }, (_, i) => 3 * hd + i) },
    ]);
    // k and v rows with their bias entries, then two query heads: q rows with their bias entries, o columns
    expect(kv.size).toBe(2 * (hd * 64 + hd) + 2 * (hd * 64 + hd + 64 * hd));
    const block = m.groups(['block']).find((g) => g.id === 'layers.0')!;
    expect(block.members.map((x) => x.param)).toContain(biasName(0, 'v'));

    const dense = logitsOf(m, ref.ids);
    const qBias1 = m.readWeight(biasName(1, 'q'));
    m.maskGroups(['layers.0.head.1', 'layers.1.kv.0', 'hidden.5']);
    const masked = logitsOf(m, ref.ids);
    expect(maxAbsDiff(dense, masked)).toBeGreaterThan(1e-3);
    // masking zeroes the masked rows' bias entries
    expect([...m.readWeight(biasName(0, 'q')).slice(hd, 2 * hd)].every((v) => v === 0)).toBe(true);
    const slim = m.slim();
    expect(slim.config.layers!.map((l) => [l.nHeads, l.nKvHeads])).toEqual([
      [3, 2],
      [2, 1],
    ]);
    expect(slim.parameters().get(biasName(1, 'q'))!.shape).toEqual([2 * hd]);
    expect(slim.parameters().get(biasName(1, 'k'))!.shape).toEqual([hd]);
    // layer 1 keeps query heads 2 and 3 (kv head 1): their q bias entries, in order
    expect(maxAbsDiff(slim.readWeight(biasName(1, 'q')), qBias1.slice(2 * hd, 4 * hd))).toBe(0);
    const slimDiff = maxAbsDiff(logitsOf(slim, ref.ids), masked);
    console.log(`qwen2 with biases: max |slim − masked| = ${slimDiff.toExponential(2)}`);
    expect(slimDiff).toBeLessThan(1e-5);

    const out = join(tmp, 'qwen2-slim');
    await saveModel(slim, out);
    const cfg = readJson<Record<string, unknown>>(join(out, 'config.json'));
    expect(cfg).toMatchObject({ architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', use_sliding_window: false, tie_word_embeddings: true });
    expect(cfg.topiary_layers).toBeDefined();
    const names = [...readSafetensorsIndex(join(out, 'model.safetensors')).entries.keys()];
    expect(names).toContain('model.layers.1.self_attn.q_proj.bias');
    expect(names.filter((n) => n.endsWith('.bias')).length).toBe(6);
    const back = await loadModel(out);
    expect(maxAbsDiff(logitsOf(back, ref.ids), logitsOf(slim, ref.ids))).toBe(0);
    for (const x of [m, slim, back]) x.dispose();
  });

  test('save → load keeps each family: llama3 rope_scaling, Mistral sliding_window', async () => {
    for (const [name, expected] of [
      ['llama3-scaled', { architectures: ['LlamaForCausalLM'], rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } }],
      ['mistral', { architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: 256, rope_scaling: null, head_dim: 16 }],
    ] as const) {
      const { ref } = reference(name);
      const ids = ref.ids.slice(0, 40);
      const m = await loadModel(join(dir, name));
      const out = join(tmp, `${name}-saved`);
      await saveModel(m, out);
      expect(readJson<Record<string, unknown>>(join(out, 'config.json'))).toMatchObject(expected);
      const back = await loadModel(out);
      expect(back.config).toEqual(m.config);
      expect(maxAbsDiff(logitsOf(back, ids), logitsOf(m, ids))).toBe(0);
      m.dispose();
      back.dispose();
    }
  });

  test('AdamW does not decay the biases (like norm weights)', () => {
    const opt = new AdamW();
    expect(opt.decays(biasName(0, 'q'))).toBe(false);
    expect(opt.decays('model.layers.0.self_attn.q_proj.weight')).toBe(true);
  });
});

describe('the bias path’s gradient: trainableBlock’s hand-written backward vs tfjs autodiff of blockForward', () => {
  test('loss and every gradient (biases included), on uniform and sliced layouts', () => {
    const base: CreateConfig = { vocabSize: 40, dim: 16, nLayers: 3, nHeads: 4, nKvHeads: 2, hiddenDim: 24, maxSeqLen: 64, family: 'qwen2', attentionBias: true };
    const full = createLlama(base, { seed: 21, initStd: 0.15 });
    const rng = new SeededRandom(5);
    for (const [name, v] of full.parameters()) {
      if (name.endsWith('.bias')) full.writeWeight(name, Float32Array.from({ length: v.size }, () => (rng.next() - 0.5) * 0.8));
    }
    // layer 0: heads [0,1,1] over two kv heads (uneven map, kv repeated); 1: standard GQA; 2: one kv head for two heads
    full.maskGroups(['layers.0.head.0', 'layers.2.kv.0']);
    const models = [full, full.slim()];
    expect(models[1]!.config.layers!.map((l) => [l.nHeads, l.nKvHeads])).toEqual([
      [3, 2],
      [4, 2],
      [2, 1],
    ]);
    const ids = tf.tensor2d(
      Array.from({ length: 2 }, () => Array.from({ length: 9 }, () => Math.floor(rng.next() * 40))),
      undefined,
      'int32',
    );
    for (const m of models) {
      const vars = [...m.parameters().values()];
      const run = (): [number, Float32Array[]] => {
        let out: [number, Float32Array[]] | undefined;
        tf.tidy(() => {
          const { value, grads } = tf.variableGrads(() => m.loss(ids), vars);
          out = [value.dataSync()[0]!, vars.map((v) => grads[v.name]!.dataSync() as Float32Array)];
        });
        return out!;
      };
      const [blockLoss, blockGrads] = run(); // trainableBlock: one tape node per block, hand-written backward
      const remove = m.capture(() => {}); // a capture hook: tfjs autodiff through blockForward instead
      const [autoLoss, autoGrads] = run();
      remove();
      expect(Math.abs(blockLoss - autoLoss)).toBeLessThan(1e-5);
      let worst = 0;
      const names = [...m.parameters().keys()];
      for (const [i, g] of blockGrads.entries()) {
        const d = maxAbsDiff(g, autoGrads[i]!);
        worst = Math.max(worst, d);
        expect(d, names[i]).toBeLessThan(1e-5);
      }
      const biasGrads = names.flatMap((n, i) => (n.endsWith('.bias') ? [blockGrads[i]!] : []));
      expect(biasGrads.length).toBe(9);
      // every bias has a gradient (masked rows' entries stay at zero gradient in the masked model)
      for (const g of biasGrads) expect(Math.max(...g.map(Math.abs))).toBeGreaterThan(1e-6);
      console.log(`${m === full ? 'masked' : 'slimmed'} qwen2-like model: max |autodiff − hand-written grad| = ${worst.toExponential(2)}`);
    }
    ids.dispose();
    for (const m of models) m.dispose();
  });
});
