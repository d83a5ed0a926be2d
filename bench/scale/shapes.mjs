// The real model shapes of the scale benchmark, as Hugging Face LlamaForCausalLM config.json objects.
//
// Values are those of the published config.json files (checked against them as remembered; the differences from
// the published files are listed per shape). Weights are random (bench/scale/generate.mjs): only the shapes matter.
// `torch_dtype` is what generate.mjs writes by default (bf16); generate.mjs sets it to the dtype it really writes.

const common = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_act: 'silu',
  attention_bias: false,
  attention_dropout: 0.0,
  mlp_bias: false,
  initializer_range: 0.02,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  rope_scaling: null,
  use_cache: true,
  torch_dtype: 'bfloat16',
};

const llama = (fields) => ({ ...common, ...fields, head_dim: fields.hidden_size / fields.num_attention_heads });

export const SHAPES = {
  // A toy for quick checks (llama2.c stories260K-like widths, untied so the lm_head path is exercised too).
  tiny4: llama({
    hidden_size: 64, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 172,
    vocab_size: 512, tie_word_embeddings: false, max_position_embeddings: 512, bos_token_id: 1, eos_token_id: 2,
  }),
  // HuggingFaceTB/SmolLM-135M
  'smollm-135m': llama({
    hidden_size: 576, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, intermediate_size: 1536,
    vocab_size: 49152, tie_word_embeddings: true, max_position_embeddings: 2048, bos_token_id: 0, eos_token_id: 0,
  }),
  // HuggingFaceTB/SmolLM-360M
  'smollm-360m': llama({
    hidden_size: 960, num_hidden_layers: 32, num_attention_heads: 15, num_key_value_heads: 5, intermediate_size: 2560,
    vocab_size: 49152, tie_word_embeddings: true, max_position_embeddings: 2048, bos_token_id: 0, eos_token_id: 0,
  }),
  // TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T (its published torch_dtype is float32; the chat model's bfloat16)
  'tinyllama-1.1b': llama({
    hidden_size: 2048, num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, intermediate_size: 5632,
    vocab_size: 32000, tie_word_embeddings: false, max_position_embeddings: 2048, bos_token_id: 1, eos_token_id: 2,
  }),
  // meta-llama/Llama-2-7b-hf (its published torch_dtype is float16)
  'llama-2-7b': llama({
    hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, intermediate_size: 11008,
    vocab_size: 32000, tie_word_embeddings: false, max_position_embeddings: 4096, bos_token_id: 1, eos_token_id: 2,
  }),
  // meta-llama/Meta-Llama-3-8B: no rope_scaling, 8192 positions.
  'llama-3-8b': llama({
    hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, intermediate_size: 14336,
    vocab_size: 128256, tie_word_embeddings: false, max_position_embeddings: 8192, rope_theta: 500000.0,
    bos_token_id: 128000, eos_token_id: 128001,
  }),
  // meta-llama/Llama-3.1-8B: the same weights' shapes as Llama-3-8B, with the "llama3" RoPE frequency scaling and
  // 131072 positions (the rope_scaling block exists only from Llama 3.1 on; Meta-Llama-3-8B's config has none).
  'llama-3.1-8b': llama({
    hidden_size: 4096, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, intermediate_size: 14336,
    vocab_size: 128256, tie_word_embeddings: false, max_position_embeddings: 131072, rope_theta: 500000.0,
    rope_scaling: { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 },
    bos_token_id: 128000, eos_token_id: 128001,
  }),
};

/** Names accepted on command lines: the keys above, plus a few spellings (llama3-8b, tinyllama, …). */
const ALIASES = { 'llama3-8b': 'llama-3-8b', 'llama-3.1': 'llama-3.1-8b', 'llama3.1-8b': 'llama-3.1-8b', 'llama2-7b': 'llama-2-7b', tinyllama: 'tinyllama-1.1b', 'smollm-135': 'smollm-135m', 'smollm-360': 'smollm-360m' };

export function shapeConfig(name) {
  const key = SHAPES[name] ? name : ALIASES[name.toLowerCase()];
  if (!key) throw new Error(`unknown shape "${name}" (known: ${Object.keys(SHAPES).join(', ')})`);
  return { name: key, config: structuredClone(SHAPES[key]) };
}

/**
 * The tensors of a config in Hugging Face state-dict order (embedding; per layer q, k, v, o, gate, up, down, the two
 * norms — module registration order of LlamaDecoderLayer; final norm; lm_head when untied), each
 * { name, shape: [out, in] or [n], kind: 'embed' | 'linear' | 'norm' | 'head', layer }.
 */
export function tensorList(cfg) {
  const d = cfg.hidden_size;
  const hd = cfg.head_dim ?? d / cfg.num_attention_heads;
  const q = cfg.num_attention_heads * hd;
  const kv = cfg.num_key_value_heads * hd;
  const f = cfg.intermediate_size;
  const t = [{ name: 'model.embed_tokens.weight', shape: [cfg.vocab_size, d], kind: 'embed', layer: null }];
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    t.push(
      { name: `${p}.self_attn.q_proj.weight`, shape: [q, d], kind: 'linear', layer: i },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kv, d], kind: 'linear', layer: i },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kv, d], kind: 'linear', layer: i },
      { name: `${p}.self_attn.o_proj.weight`, shape: [d, q], kind: 'linear', layer: i, residual: true },
      { name: `${p}.mlp.gate_proj.weight`, shape: [f, d], kind: 'linear', layer: i },
      { name: `${p}.mlp.up_proj.weight`, shape: [f, d], kind: 'linear', layer: i },
      { name: `${p}.mlp.down_proj.weight`, shape: [d, f], kind: 'linear', layer: i, residual: true },
      { name: `${p}.input_layernorm.weight`, shape: [d], kind: 'norm', layer: i },
      { name: `${p}.post_attention_layernorm.weight`, shape: [d], kind: 'norm', layer: i },
    );
  }
  t.push({ name: 'model.norm.weight', shape: [d], kind: 'norm', layer: null });
  if (!cfg.tie_word_embeddings) t.push({ name: 'lm_head.weight', shape: [cfg.vocab_size, d], kind: 'head', layer: null });
  return t;
}

const numel = (shape) => shape.reduce((a, b) => a * b, 1);

/** Parameter counts: total (tied embedding counted once), one block, embedding, head. */
export function parameterCounts(cfg) {
  const list = tensorList(cfg);
  const total = list.reduce((s, t) => s + numel(t.shape), 0);
  const block = list.filter((t) => t.layer === 0).reduce((s, t) => s + numel(t.shape), 0);
  return { total, block, embedding: cfg.vocab_size * cfg.hidden_size, head: cfg.tie_word_embeddings ? 0 : cfg.vocab_size * cfg.hidden_size };
}

/**
 * The issue-19 memory budget of block-by-block pruning, in bytes: one block in float32 + the calibration hidden
 * states (samples × seqlen × dim float32) + the method's per-layer statistics for that block — Wanda: one float64
 * per input feature of each of the block's 7 linear layers; SparseGPT: the largest layer's float64 Hessian (in²).
 */
export function memoryBudget(cfg, { samples = 128, seqlen = 128, method = 'wanda' } = {}) {
  const list = tensorList(cfg).filter((t) => t.layer === 0);
  const blockBytes = list.reduce((s, t) => s + numel(t.shape), 0) * 4;
  const hiddenBytes = samples * seqlen * cfg.hidden_size * 4;
  const ins = list.filter((t) => t.kind === 'linear').map((t) => t.shape[1]);
  const statsBytes = method === 'sparsegpt' ? Math.max(...ins) ** 2 * 8 : ins.reduce((a, b) => a + b, 0) * 8;
  return { blockBytes, hiddenBytes, statsBytes, total: blockBytes + hiddenBytes + statsBytes };
}
