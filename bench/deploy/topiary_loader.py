#!/usr/bin/python3
"""Load a Topiary-slimmed model (non-uniform per-layer sizes) into PyTorch — the loader snippet of
packages/model-llama/README.md, runnable, plus a check against Topiary's own logits and the padded export.

The layout: config.json is a LlamaForCausalLM config whose standard fields hold layer 0's sizes, plus
`topiary_layers` (one entry per layer: num_attention_heads, num_key_value_heads, intermediate_size, head_kv_map —
query head h reads kv head head_kv_map[h]); model.safetensors holds each layer's tensors at their own sizes under the
Hugging Face names. The forward follows transformers' modeling_llama.py (LlamaRMSNorm, rotate_half RoPE,
repeat_kv → here head_kv_map, eager attention with a causal mask, SwiGLU MLP); numpy reads the safetensors file (no
`safetensors` package needed).

Run: /usr/bin/python3 bench/deploy/topiary_loader.py SLIM_DIR [PADDED_DIR] [TOPIARY_LOGITS_JSON]
"""
import json
import struct
import sys

import numpy as np
import torch


def read_safetensors(path):
    """name → float32 tensor (F32, F16 and BF16 files)."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        buf = raw[8 + n + a : 8 + n + b]
        if t["dtype"] == "F32":
            arr = np.frombuffer(buf, dtype="<f4")
        elif t["dtype"] == "F16":
            arr = np.frombuffer(buf, dtype="<f2").astype(np.float32)
        elif t["dtype"] == "BF16":
            arr = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{name}: dtype {t['dtype']}")
        out[name] = torch.from_numpy(arr.copy()).reshape(t["shape"])
    return out


def load_topiary(folder):
    """(config, weights, per-layer shapes): every layer's own head counts, FFN width and head → kv-head map."""
    cfg = json.load(open(f"{folder}/config.json"))
    W = read_safetensors(f"{folder}/model.safetensors")
    n, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    uniform = {"num_attention_heads": n, "num_key_value_heads": nkv, "intermediate_size": cfg["intermediate_size"], "head_kv_map": [h // (n // nkv) for h in range(n)]}
    layers = cfg.get("topiary_layers") or [uniform] * cfg["num_hidden_layers"]
    return cfg, W, layers


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w  # LlamaRMSNorm (float32 throughout here)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def forward(cfg, W, layers, ids):
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    eps, t = cfg["rms_norm_eps"], len(ids)
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    freqs = torch.outer(torch.arange(t, dtype=torch.float32), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.full((t, t), float("-inf")).triu(1)
    x = W["model.embed_tokens.weight"][torch.tensor(ids)]
    for i, L in enumerate(layers):
        p = f"model.layers.{i}."
        if L["num_attention_heads"] > 0:
            h = rms(x, W[p + "input_layernorm.weight"], eps)
            q = (h @ W[p + "self_attn.q_proj.weight"].T).view(t, -1, hd).transpose(0, 1)
            k = (h @ W[p + "self_attn.k_proj.weight"].T).view(t, -1, hd).transpose(0, 1)
            v = (h @ W[p + "self_attn.v_proj.weight"].T).view(t, -1, hd).transpose(0, 1)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            kv = torch.tensor(L["head_kv_map"])  # repeat_kv, for any map
            att = torch.softmax(q @ k[kv].transpose(1, 2) / hd**0.5 + mask, dim=-1) @ v[kv]
            x = x + att.transpose(0, 1).reshape(t, -1) @ W[p + "self_attn.o_proj.weight"].T
        if L["intermediate_size"] > 0:
            h = rms(x, W[p + "post_attention_layernorm.weight"], eps)
            g, u = h @ W[p + "mlp.gate_proj.weight"].T, h @ W[p + "mlp.up_proj.weight"].T
            x = x + (torch.nn.functional.silu(g) * u) @ W[p + "mlp.down_proj.weight"].T
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    return rms(x, W["model.norm.weight"], eps) @ head.T


if __name__ == "__main__":
    slim = sys.argv[1]
    ids = [1, 403, 407, 261, 378, 1044 % 512, 300, 42, 17, 99, 256, 7]
    cfg, W, layers = load_topiary(slim)
    print("layers:", [(L["num_attention_heads"], L["num_key_value_heads"], L["intermediate_size"]) for L in layers])
    logits = forward(cfg, W, layers, ids)
    if len(sys.argv) > 2:
        pcfg, PW, players = load_topiary(sys.argv[2])
        assert "topiary_layers" not in pcfg, "the padded export must be a plain uniform config"
        padded = forward(pcfg, PW, players, ids)
        print(f"padded (a plain uniform LlamaForCausalLM) vs slim, max |Δlogit|: {(padded - logits).abs().max().item():.2e}")
    if len(sys.argv) > 3:
        ref = json.load(open(sys.argv[3]))
        assert ref["ids"] == ids
        topiary = torch.tensor(ref["logits"]).view(len(ids), -1)
        print(f"Topiary's logits vs this loader, max |Δlogit|: {(topiary - logits).abs().max().item():.2e}")
