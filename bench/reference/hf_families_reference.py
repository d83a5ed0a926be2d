#!/usr/bin/python3
"""Reference logits for the Llama-family architectures @topiary/model-llama reads, produced ONCE and committed.

`transformers` is not installed here, so this is a small torch forward transcribed from the original modelling code
of huggingface/transformers (not from Topiary's TypeScript). The versions read, by file and commit:

  src/transformers/modeling_rope_utils.py                 @ 0044e3b3facff1a1ad60b235c69d5b45beae75a4
      _compute_default_rope_parameters, _compute_linear_scaling_rope_parameters, _compute_dynamic_ntk_parameters,
      _compute_llama3_parameters, ROPE_INIT_FUNCTIONS
  src/transformers/models/llama/modeling_llama.py         @ 5dd4a63548857797727ae73eeb6a6e886ea02a3e
      LlamaRMSNorm.forward, LlamaRotaryEmbedding (__init__, _dynamic_frequency_update, forward), rotate_half,
      apply_rotary_pos_emb, LlamaMLP.forward, repeat_kv, eager_attention_forward, LlamaAttention.forward,
      LlamaDecoderLayer.forward, LlamaModel.forward, LlamaForCausalLM (lm_head, tied to embed_tokens)
  src/transformers/models/mistral/modeling_mistral.py     @ 93e0020c96f1aaf6c380491c943fcf57502c5e19
      MistralAttention (no biases, sliding_window passed on), MistralModel._prepare_4d_causal_attention_mask_with_
      cache_position (the sliding-window term of the causal mask)
  src/transformers/models/mistral/configuration_mistral.py @ 001f85b38fb432858ace93f18622f07cec46d874
      sliding_window defaults to 4096, head_dim to hidden_size // num_attention_heads
  src/transformers/models/qwen2/modeling_qwen2.py         @ 63bb723747035466e5339aea864b133f709b067d
      Qwen2Attention: q_proj/k_proj/v_proj with bias=True, o_proj bias=False; sliding window only on layers whose
      layer_types entry is "sliding_attention"
  src/transformers/models/qwen2/configuration_qwen2.py    @ 008e574391258935f3ecc3035c882e73bbcac419
      sliding_window = sliding_window if use_sliding_window else None; layer_types from max_window_layers

Like transformers, RoPE's inverse frequencies and the cos/sin tables are computed in float32; every other op runs in
float32, batch 1, no cache. Each reference.json also records the fixture's own float32 noise (the same forward in
float64), so a test tolerance can be seen to sit above it.

Outputs (packages/model-llama/test/fixtures/hf-families/):
  llama3-scaled/   LlamaForCausalLM, rope_scaling llama3 (original_max_position_embeddings 64), tied, GQA, BF16;
                   160 tokens, so positions reach 2.5x the original context and every RoPE band is exercised
  qwen2-bias-tied/ Qwen2ForCausalLM with q/k/v biases, tied embeddings, rope_theta 1e6, use_sliding_window false, F32
  mistral/         MistralForCausalLM, untied, explicit head_dim, sliding_window 256 = max_position_embeddings, BF16
  smollm/          a SmolLM-like LlamaForCausalLM: 6 query heads over 2 kv heads, head_dim 8, tied, theta 1e5, BF16
  each: config.json, model.safetensors, logits.f32 (little-endian float32 [T, vocab]), reference.json (ids, greedy
  continuation from a full forward per step, the smallest top-1/top-2 logit gap along it)
  rope-inv-freq.json: inverse frequencies of real configs (Llama 3.1 8B, Llama 3.2 1B, linear, dynamic below and
                   above max_position_embeddings, plain RoPE) as ROPE_INIT_FUNCTIONS computes them

Run: /usr/bin/python3 bench/reference/hf_families_reference.py
"""
import json
import math
import os
import struct
from types import SimpleNamespace

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "packages", "model-llama", "test", "fixtures", "hf-families")
print("torch", torch.__version__)


# ----------------------------------------------------------------------------- modeling_rope_utils.py

def _compute_default_rope_parameters(config, seq_len=None):
    base = config.rope_theta
    partial_rotary_factor = getattr(config, "partial_rotary_factor", 1.0)
    dim = int((config.hidden_size // config.num_attention_heads) * partial_rotary_factor)
    attention_factor = 1.0  # Unused in this type of RoPE
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    return inv_freq, attention_factor


def _compute_linear_scaling_rope_parameters(config, seq_len=None):
    factor = config.rope_scaling["factor"]
    inv_freq, attention_factor = _compute_default_rope_parameters(config, seq_len)
    # "applying scaling to the inverse frequencies is equivalent" (to dividing the position ids by factor)
    inv_freq /= factor
    return inv_freq, attention_factor


def _compute_dynamic_ntk_parameters(config, seq_len=None):
    base = config.rope_theta
    partial_rotary_factor = getattr(config, "partial_rotary_factor", 1.0)
    dim = int((config.hidden_size // config.num_attention_heads) * partial_rotary_factor)
    max_position_embeddings = config.max_position_embeddings
    factor = config.rope_scaling["factor"]
    attention_factor = 1.0
    # seq_len: default to max_position_embeddings, e.g. at init time
    seq_len = seq_len if seq_len is not None and seq_len > max_position_embeddings else max_position_embeddings
    base = base * ((factor * seq_len / max_position_embeddings) - (factor - 1)) ** (dim / (dim - 2))
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    return inv_freq, attention_factor


def _compute_llama3_parameters(config, seq_len=None):
    inv_freq, attention_factor = _compute_default_rope_parameters(config, seq_len)
    factor = config.rope_scaling["factor"]  # `8` in the original implementation
    low_freq_factor = config.rope_scaling["low_freq_factor"]  # `1` in the original implementation
    high_freq_factor = config.rope_scaling["high_freq_factor"]  # `4` in the original implementation
    old_context_len = config.rope_scaling["original_max_position_embeddings"]  # `8192` in the original implementation
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    # wavelen < high_freq_wavelen: do nothing; wavelen > low_freq_wavelen: divide by factor
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    # otherwise: interpolate between the two, using a smooth factor
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    inv_freq_llama = torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
    return inv_freq_llama, attention_factor


ROPE_INIT_FUNCTIONS = {
    "default": _compute_default_rope_parameters,
    "linear": _compute_linear_scaling_rope_parameters,
    "dynamic": _compute_dynamic_ntk_parameters,
    "llama3": _compute_llama3_parameters,
}


def rope_type_of(config):
    # LlamaRotaryEmbedding.__init__: BC, "rope_type" was originally "type"
    if getattr(config, "rope_scaling", None) is not None:
        return config.rope_scaling.get("rope_type", config.rope_scaling.get("type"))
    return "default"


def inv_freq_for(config, position_ids):
    """inv_freq as a freshly built LlamaRotaryEmbedding holds it for one forward over position_ids."""
    rope_type = rope_type_of(config)
    rope_init_fn = ROPE_INIT_FUNCTIONS[rope_type]
    inv_freq, attention_scaling = rope_init_fn(config)
    if "dynamic" in rope_type:
        # _dynamic_frequency_update: growing beyond max_seq_len_cached (= max_position_embeddings) recomputes
        seq_len = torch.max(position_ids) + 1  # a tensor, as there: the scaled base is computed in float32
        if seq_len > config.max_position_embeddings:
            inv_freq, attention_scaling = rope_init_fn(config, seq_len=seq_len)
    return inv_freq, attention_scaling


def rotary_embedding(config, position_ids):
    """LlamaRotaryEmbedding.forward: cos, sin [batch, T, head_dim] in float32."""
    inv_freq, attention_scaling = inv_freq_for(config, position_ids)
    inv_freq_expanded = inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
    position_ids_expanded = position_ids[:, None, :].float()
    freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = emb.cos() * attention_scaling
    sin = emb.sin() * attention_scaling
    return cos, sin


# ----------------------------------------------------------------------------- modeling_llama.py (and mistral, qwen2)

def rms_norm(hidden_states, weight, eps):
    """LlamaRMSNorm.forward (MistralRMSNorm, Qwen2RMSNorm are the same)."""
    input_dtype = hidden_states.dtype
    hidden_states = hidden_states.to(torch.float32)
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    hidden_states = hidden_states * torch.rsqrt(variance + eps)
    return weight * hidden_states.to(input_dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    q_embed = (q * cos) + (rotate_half(q) * sin)
    k_embed = (k * cos) + (rotate_half(k) * sin)
    return q_embed, k_embed


def repeat_kv(hidden_states, n_rep):
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


def eager_attention_forward(num_key_value_groups, query, key, value, attention_mask, scaling):
    key_states = repeat_kv(key, num_key_value_groups)
    value_states = repeat_kv(value, num_key_value_groups)
    attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
    if attention_mask is not None:
        causal_mask = attention_mask[:, :, :, : key_states.shape[-2]]
        attn_weights = attn_weights + causal_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_output = torch.matmul(attn_weights, value_states)
    attn_output = attn_output.transpose(1, 2).contiguous()
    return attn_output, attn_weights


def causal_mask_for(T, sliding_window, dtype=torch.float32):
    """_prepare_4d_causal_attention_mask_with_cache_position (MistralModel's, with its sliding-window term), no cache."""
    cache_position = torch.arange(T)
    target_length = T
    min_dtype = torch.finfo(dtype).min
    causal_mask = torch.full((T, target_length), fill_value=min_dtype, dtype=dtype)
    diagonal_attend_mask = torch.arange(target_length) > cache_position.reshape(-1, 1)
    if sliding_window is not None:
        sliding_attend_mask = torch.arange(target_length) <= (cache_position.reshape(-1, 1) - sliding_window)
        diagonal_attend_mask.bitwise_or_(sliding_attend_mask)
    causal_mask *= diagonal_attend_mask
    return causal_mask[None, None, :, :]


def layer_window(config, layer_idx):
    """The window a layer's attention uses (None: full causal attention)."""
    if config.model_type == "mistral":
        return config.sliding_window  # MistralAttention: sliding_window=getattr(config, "sliding_window", None)
    if config.model_type == "qwen2":
        # Qwen2Config.__post_init__ and Qwen2Attention.__init__
        window = config.sliding_window if config.use_sliding_window else None
        return window if window is not None and layer_idx >= config.max_window_layers else None
    return None


def linear(x, W, name):
    return F.linear(x, W[name + ".weight"], W.get(name + ".bias"))


def attention(config, W, l, hidden_states, cos, sin, mask):
    """LlamaAttention.forward / MistralAttention.forward / Qwen2Attention.forward (biases come with the weights)."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
    scaling = head_dim ** -0.5
    input_shape = hidden_states.shape[:-1]
    hidden_shape = (*input_shape, -1, head_dim)
    p = f"model.layers.{l}.self_attn."
    query_states = linear(hidden_states, W, p + "q_proj").view(hidden_shape).transpose(1, 2)
    key_states = linear(hidden_states, W, p + "k_proj").view(hidden_shape).transpose(1, 2)
    value_states = linear(hidden_states, W, p + "v_proj").view(hidden_shape).transpose(1, 2)
    query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)
    attn_output, _ = eager_attention_forward(num_key_value_groups, query_states, key_states, value_states, mask, scaling)
    attn_output = attn_output.reshape(*input_shape, -1).contiguous()
    return linear(attn_output, W, p + "o_proj")


def mlp(W, l, x):
    """LlamaMLP.forward with hidden_act silu."""
    p = f"model.layers.{l}.mlp."
    return linear(F.silu(linear(x, W, p + "gate_proj")) * linear(x, W, p + "up_proj"), W, p + "down_proj")


def causal_lm_logits(config, W, ids):
    """LlamaForCausalLM.forward (LlamaModel.forward + lm_head) for one sequence: logits [T, vocab]."""
    input_ids = torch.tensor([ids])
    T = input_ids.shape[1]
    hidden_states = F.embedding(input_ids, W["model.embed_tokens.weight"])
    position_ids = torch.arange(0, T).unsqueeze(0)
    cos, sin = rotary_embedding(config, position_ids)
    eps = config.rms_norm_eps
    for l in range(config.num_hidden_layers):
        mask = causal_mask_for(T, layer_window(config, l))
        residual = hidden_states
        hidden_states = rms_norm(hidden_states, W[f"model.layers.{l}.input_layernorm.weight"], eps)
        hidden_states = residual + attention(config, W, l, hidden_states, cos, sin, mask)
        residual = hidden_states
        hidden_states = rms_norm(hidden_states, W[f"model.layers.{l}.post_attention_layernorm.weight"], eps)
        hidden_states = residual + mlp(W, l, hidden_states)
    hidden_states = rms_norm(hidden_states, W["model.norm.weight"], eps)
    # _tied_weights_keys = ["lm_head.weight"]: with tie_word_embeddings the head is the embedding matrix
    lm_head = W["model.embed_tokens.weight"] if config.tie_word_embeddings else W["lm_head.weight"]
    return F.linear(hidden_states, lm_head)[0]


def greedy(config, W, ids, steps):
    """argmax of the last position, appended, a full forward each step; also the smallest top-1/top-2 gap."""
    ids = list(ids)
    out, gap = [], float("inf")
    for _ in range(steps):
        last = causal_lm_logits(config, W, ids)[-1]
        top = torch.topk(last, 2).values
        gap = min(gap, float(top[0] - top[1]))
        nxt = int(torch.argmax(last))
        out.append(nxt)
        ids.append(nxt)
    return out, gap


# ----------------------------------------------------------------------------- files (own writer)

from safetensors_writer import write_safetensors  # noqa: E402  (shared with model_reference.py)


def random_weights(config, seed, scale, bias_scale=None, embed_scale=0.5):
    """Seeded random weights under the Hugging Face names; norms near 1."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, s=scale):
        return torch.randn(*shape, generator=g) * s

    d = config.hidden_size
    hd = getattr(config, "head_dim", None) or d // config.num_attention_heads
    nq, nkv, ff, V = config.num_attention_heads * hd, config.num_key_value_heads * hd, config.intermediate_size, config.vocab_size
    W = {"model.embed_tokens.weight": rnd(V, d, s=embed_scale), "model.norm.weight": 1 + rnd(d, s=0.1)}
    for l in range(config.num_hidden_layers):
        p = f"model.layers.{l}."
        W[p + "input_layernorm.weight"] = 1 + rnd(d, s=0.1)
        W[p + "post_attention_layernorm.weight"] = 1 + rnd(d, s=0.1)
        W[p + "self_attn.q_proj.weight"] = rnd(nq, d)
        W[p + "self_attn.k_proj.weight"] = rnd(nkv, d)
        W[p + "self_attn.v_proj.weight"] = rnd(nkv, d)
        W[p + "self_attn.o_proj.weight"] = rnd(d, nq)
        if bias_scale is not None:
            W[p + "self_attn.q_proj.bias"] = rnd(nq, s=bias_scale)
            W[p + "self_attn.k_proj.bias"] = rnd(nkv, s=bias_scale)
            W[p + "self_attn.v_proj.bias"] = rnd(nkv, s=bias_scale)
        W[p + "mlp.gate_proj.weight"] = rnd(ff, d)
        W[p + "mlp.up_proj.weight"] = rnd(ff, d)
        W[p + "mlp.down_proj.weight"] = rnd(d, ff)
    if not config.tie_word_embeddings:
        W["lm_head.weight"] = rnd(V, d, s=0.3)
    return W


def as_config(j):
    """The config.json fields as attributes, with the defaults the configuration classes give missing ones."""
    defaults = {"rope_scaling": None, "rope_theta": 10000.0, "tie_word_embeddings": False, "rms_norm_eps": 1e-6}
    if j["model_type"] == "qwen2":
        defaults.update(use_sliding_window=False, sliding_window=4096, max_window_layers=28)
    if j["model_type"] == "mistral":
        defaults.update(sliding_window=4096)
    return SimpleNamespace(**{**defaults, **j})


def make_fixture(name, cfg_json, seed, scale, dtype, T, greedy_steps, bias_scale=None, unscaled_check=False):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    config = as_config(cfg_json)
    W = random_weights(config, seed, scale, bias_scale)
    if dtype == "BF16":
        W = {k: v.to(torch.bfloat16).float() for k, v in W.items()}  # the stored weights, as float32 computes them
    write_safetensors(os.path.join(d, "model.safetensors"), W, dtype)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({**cfg_json, "torch_dtype": "bfloat16" if dtype == "BF16" else "float32"}, f, indent=2)
    g = torch.Generator().manual_seed(seed + 1)
    ids = [int(v) for v in torch.randint(0, config.vocab_size, (T,), generator=g)]
    with torch.no_grad():
        logits = causal_lm_logits(config, W, ids)
        cont, gap = greedy(config, W, ids, greedy_steps)
        ref = {
            "about": f"bench/reference/hf_families_reference.py: {cfg_json['architectures'][0]} forward transcribed from transformers",
            "ids": ids,
            "shape": list(logits.shape),
            "logits_file": "logits.f32",
            "greedy": cont,
            "greedy_min_top2_gap": gap,
            "logit_abs_max": float(logits.abs().max()),
        }
        if unscaled_check:
            plain = as_config({**cfg_json, "rope_scaling": None})
            ref["unscaled_max_abs_diff"] = float((causal_lm_logits(plain, W, ids) - logits).abs().max())
        # the fixture's own float32 noise: the same forward in float64 (RoPE tables stay float32, as inv_freq is
        # .float() there). A test tolerance has to sit above this.
        torch.set_default_dtype(torch.float64)
        ref["float32_noise"] = float((causal_lm_logits(config, {k: v.double() for k, v in W.items()}, ids) - logits.double()).abs().max())
        torch.set_default_dtype(torch.float32)
        if getattr(config, "sliding_window", None) is not None:
            # the window is at least the context: the sliding-window mask term changes nothing
            nowin = as_config({**cfg_json, "sliding_window": None})
            ref["no_window_max_abs_diff"] = float((causal_lm_logits(nowin, W, ids) - logits).abs().max())
    with open(os.path.join(d, "logits.f32"), "wb") as f:
        f.write(logits.float().contiguous().numpy().astype("<f4").tobytes())
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f)
    print(name, {k: v for k, v in ref.items() if k not in ("ids", "about")})


os.makedirs(OUT, exist_ok=True)

common = {
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "use_cache": True,
    "attention_dropout": 0.0,
    "transformers_version": "4.48.0",
    "vocab_size": 128,
    "max_position_embeddings": 256,
    "num_hidden_layers": 2,
}

# Llama 3.2 style: rope_scaling llama3, tied embeddings, eos list, head_dim written out
make_fixture("llama3-scaled", {
    **common,
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 64, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 64, "rope_type": "llama3"},
    "tie_word_embeddings": True, "attention_bias": False, "mlp_bias": False, "pretraining_tp": 1,
    "bos_token_id": 1, "eos_token_id": [2, 3],
}, seed=31, scale=0.2, dtype="BF16", T=160, greedy_steps=6, unscaled_check=True)

# Qwen2 (Qwen2-0.5B style): q/k/v biases, tied, rope_theta 1e6, sliding window present but off
make_fixture("qwen2-bias-tied", {
    **common,
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
    "hidden_size": 64, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True,
    "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 21,
    "bos_token_id": 1, "eos_token_id": 2,
}, seed=41, scale=0.2, dtype="F32", T=48, greedy_steps=8, bias_scale=0.5)

# Mistral: untied, head_dim written out, a sliding window as long as the context
make_fixture("mistral", {
    **common,
    "architectures": ["MistralForCausalLM"], "model_type": "mistral",
    "hidden_size": 64, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "rms_norm_eps": 1e-5, "rope_theta": 1000000.0, "tie_word_embeddings": False, "sliding_window": 256,
    "bos_token_id": 1, "eos_token_id": 2,
}, seed=51, scale=0.2, dtype="BF16", T=48, greedy_steps=8)

# SmolLM style (a Llama config): GQA 3:1, small head_dim, tied, rope_theta 1e5
make_fixture("smollm", {
    **common,
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 48, "intermediate_size": 128, "num_attention_heads": 6, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "rope_scaling": None, "tie_word_embeddings": True,
    "attention_bias": False, "mlp_bias": False, "pretraining_tp": 1, "bos_token_id": 1, "eos_token_id": 2,
}, seed=61, scale=0.2, dtype="BF16", T=48, greedy_steps=8)


# ----------------------------------------------------------------------------- inverse frequencies of real configs

def inv_freq_case(name, cfg, seq_len):
    config = SimpleNamespace(**{"rope_scaling": None, **cfg})
    inv_freq, scaling = inv_freq_for(config, torch.arange(seq_len).unsqueeze(0))
    return {"name": name, "config": cfg, "seq_len": seq_len, "attention_scaling": scaling,
            "inv_freq": [float(v) for v in inv_freq.tolist()]}


llama31 = {"hidden_size": 4096, "num_attention_heads": 32, "rope_theta": 500000.0, "max_position_embeddings": 131072,
           "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                            "original_max_position_embeddings": 8192, "rope_type": "llama3"}}
llama32 = {"hidden_size": 2048, "num_attention_heads": 32, "rope_theta": 500000.0, "max_position_embeddings": 131072,
           "rope_scaling": {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                            "original_max_position_embeddings": 8192, "rope_type": "llama3"}}
linear_cfg = {"hidden_size": 4096, "num_attention_heads": 32, "rope_theta": 10000.0, "max_position_embeddings": 4096,
              "rope_scaling": {"type": "linear", "factor": 4.0}}
dynamic_cfg = {"hidden_size": 64, "num_attention_heads": 4, "rope_theta": 10000.0, "max_position_embeddings": 256,
               "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}
qwen_cfg = {"hidden_size": 896, "num_attention_heads": 14, "rope_theta": 1000000.0, "max_position_embeddings": 32768}
fixture_cfg = {"hidden_size": 64, "num_attention_heads": 4, "rope_theta": 500000.0, "max_position_embeddings": 256,
               "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                "original_max_position_embeddings": 64, "rope_type": "llama3"}}
cases = [
    inv_freq_case("llama3.1-8b", llama31, 16),
    inv_freq_case("llama3.2-1b", llama32, 16),
    inv_freq_case("linear x4", linear_cfg, 16),
    inv_freq_case("dynamic within max_position_embeddings", dynamic_cfg, 256),
    inv_freq_case("dynamic beyond max_position_embeddings", dynamic_cfg, 700),
    inv_freq_case("qwen2-0.5b plain", qwen_cfg, 16),
    inv_freq_case("llama3-scaled fixture", fixture_cfg, 160),
]
with open(os.path.join(OUT, "rope-inv-freq.json"), "w") as f:
    json.dump({"about": "bench/reference/hf_families_reference.py: ROPE_INIT_FUNCTIONS (float32, as transformers)",
               "cases": cases}, f, indent=1)
print("rope-inv-freq.json:", [c["name"] for c in cases])
