#!/usr/bin/python3
"""Reference outputs for @topiary/model-llama, produced ONCE and committed as fixture files.

An independent PyTorch implementation of the Llama forward pass written from the equations:
  RMSNorm  x * rsqrt(mean(x^2) + eps) * w
  RoPE     llama2.c convention: adjacent pairs (2i, 2i+1) rotated as complex numbers by pos * theta^(-2i/head_dim)
           (the TypeScript model uses Hugging Face's rotate-half convention internally; matching logits prove the
           q/k row permutation done at load time is right)
  GQA      query head h reads kv head h // (n_heads / n_kv_heads); scores scaled by 1/sqrt(head_dim), causal mask
  SwiGLU   w2(silu(w1 x) * w3 x)
It reads the llama2.c .bin directly (its own parser), so it shares no code or convention with the TS reader.

Outputs (packages/model-llama/test/fixtures/):
  stories260K.reference.json   prompt ids, logits for every prompt position, 200-step greedy continuation, loss
  tiny-untied/                 a seeded random untied GQA model (config.json + model.safetensors, F32) written by this
                               script's own safetensors writer, plus reference logits, loss, gradients and 3 AdamW steps
  tiny-untied-bf16/            the same weights stored as BF16 (logits computed from the bf16-rounded weights)
  tiny-llama2c/                the tiny model as llama2.c v0 (separate classifier), v1 and v2 (Q8_0) files, plus the
                               reference logits of the dequantized v2 weights

Run: /usr/bin/python3 bench/reference/model_reference.py
"""
import json
import math
import os
import struct

import numpy as np
import torch

torch.set_num_threads(2)
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "packages", "model-llama", "test", "fixtures")
print("torch", torch.__version__, "BLAS:", "openblas" if "openblas" in torch.__config__.show().lower() else "default")


# ----------------------------------------------------------------------------- model (llama2.c weight layout)

def rms_norm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope_interleaved(x, pos0, theta):
    # x: [T, H, D]; pairs (2i, 2i+1)
    T, H, D = x.shape
    i = torch.arange(0, D, 2, dtype=torch.float64)
    freq = theta ** (-i / D)
    pos = torch.arange(pos0, pos0 + T, dtype=torch.float64)
    ang = torch.outer(pos, freq)  # [T, D/2]
    cos = torch.cos(ang).float()[:, None, :]
    sin = torch.sin(ang).float()[:, None, :]
    a = x[..., 0::2]
    b = x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = a * sin + b * cos
    return out


def forward(W, cfg, ids):
    """Logits [T, V] for a 1-D list of ids (no cache; the full causal pass)."""
    dim, nh, nkv = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    hd = dim // nh
    eps, theta = cfg["eps"], cfg["theta"]
    T = len(ids)
    x = W["emb"][torch.tensor(ids)]
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(cfg["n_layers"]):
        h = rms_norm(x, W["att_norm"][l], eps)
        q = (h @ W["wq"][l].T).view(T, nh, hd)
        k = (h @ W["wk"][l].T).view(T, nkv, hd)
        v = (h @ W["wv"][l].T).view(T, nkv, hd)
        q = rope_interleaved(q, 0, theta)
        k = rope_interleaved(k, 0, theta)
        rep = nh // nkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        att = torch.einsum("thd,shd->hts", q, k) / math.sqrt(hd) + mask
        att = torch.softmax(att, dim=-1)
        o = torch.einsum("hts,shd->thd", att, v).reshape(T, nh * hd)
        x = x + o @ W["wo"][l].T
        h = rms_norm(x, W["ffn_norm"][l], eps)
        x = x + (torch.nn.functional.silu(h @ W["w1"][l].T) * (h @ W["w3"][l].T)) @ W["w2"][l].T
    x = rms_norm(x, W["norm"], eps)
    return x @ W["cls"].T


def loss_of(W, cfg, ids):
    logits = forward(W, cfg, ids[:-1])
    return torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:]))


# ----------------------------------------------------------------------------- llama2.c reader (own parser)

def read_llama2c(path):
    raw = open(path, "rb").read()
    dim, hidden, nl, nh, nkv, vocab, seq = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    hd = dim // nh
    data = np.frombuffer(raw, dtype="<f4", offset=28)
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        t = torch.tensor(data[off:off + n].copy()).view(*shape)
        off += n
        return t

    W = {}
    W["emb"] = take(vocab, dim)
    W["att_norm"] = take(nl, dim)
    W["wq"] = take(nl, nh * hd, dim)
    W["wk"] = take(nl, nkv * hd, dim)
    W["wv"] = take(nl, nkv * hd, dim)
    W["wo"] = take(nl, dim, nh * hd)
    W["ffn_norm"] = take(nl, dim)
    W["w1"] = take(nl, hidden, dim)
    W["w2"] = take(nl, dim, hidden)
    W["w3"] = take(nl, hidden, dim)
    W["norm"] = take(dim)
    take(seq, hd // 2)
    take(seq, hd // 2)
    W["cls"] = W["emb"] if shared else take(vocab, dim)
    assert off == data.size, (off, data.size)
    cfg = dict(dim=dim, hidden=hidden, n_layers=nl, n_heads=nh, n_kv_heads=nkv, vocab=vocab, seq=seq, eps=1e-5, theta=10000.0)
    return W, cfg


# ----------------------------------------------------------------------------- safetensors writer (own)

from safetensors_writer import write_safetensors  # noqa: E402  (the one writer of the reference scripts)


def rotate_half_perm(hd, n):
    # HF row order inside each head: the even llama2.c rows first, then the odd ones
    idx = []
    for h in range(n):
        base = h * hd
        idx += [base + 2 * j for j in range(hd // 2)] + [base + 2 * j + 1 for j in range(hd // 2)]
    return torch.tensor(idx)


def to_hf(W, cfg):
    hd = cfg["dim"] // cfg["n_heads"]
    out = {"model.embed_tokens.weight": W["emb"], "model.norm.weight": W["norm"]}
    pq = rotate_half_perm(hd, cfg["n_heads"])
    pk = rotate_half_perm(hd, cfg["n_kv_heads"])
    for l in range(cfg["n_layers"]):
        p = f"model.layers.{l}."
        out[p + "input_layernorm.weight"] = W["att_norm"][l]
        out[p + "post_attention_layernorm.weight"] = W["ffn_norm"][l]
        out[p + "self_attn.q_proj.weight"] = W["wq"][l][pq]
        out[p + "self_attn.k_proj.weight"] = W["wk"][l][pk]
        out[p + "self_attn.v_proj.weight"] = W["wv"][l]
        out[p + "self_attn.o_proj.weight"] = W["wo"][l]
        out[p + "mlp.gate_proj.weight"] = W["w1"][l]
        out[p + "mlp.down_proj.weight"] = W["w2"][l]
        out[p + "mlp.up_proj.weight"] = W["w3"][l]
    if W["cls"] is not W["emb"]:
        out["lm_head.weight"] = W["cls"]
    return out


def hf_config(cfg, tied):
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": cfg["dim"], "intermediate_size": cfg["hidden"], "num_hidden_layers": cfg["n_layers"],
        "num_attention_heads": cfg["n_heads"], "num_key_value_heads": cfg["n_kv_heads"], "vocab_size": cfg["vocab"],
        "max_position_embeddings": cfg["seq"], "rms_norm_eps": cfg["eps"], "rope_theta": cfg["theta"],
        "hidden_act": "silu", "tie_word_embeddings": tied, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32",
    }


def greedy(W, cfg, ids, steps):
    ids = list(ids)
    out = []
    with torch.no_grad():
        for _ in range(steps):
            nxt = int(torch.argmax(forward(W, cfg, ids)[-1]))
            out.append(nxt)
            ids.append(nxt)
    return out


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


# ----------------------------------------------------------------------------- 1. stories260K

os.makedirs(FIX, exist_ok=True)
W, cfg = read_llama2c(os.path.join(ROOT, "assets", "models", "stories260K", "stories260K.bin"))
prompt = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426]  # BOS + "Once upon a time, there was a little girl named Lily."
with torch.no_grad():
    logits = forward(W, cfg, prompt)
    loss = float(loss_of(W, cfg, prompt))
cont = greedy(W, cfg, prompt, 200)
bos_cont = greedy(W, cfg, [1], 200)
golden = json.load(open(os.path.join(ROOT, "assets", "models", "stories260K", "stories260K.golden.json")))
assert bos_cont == golden["greedy_ids"][:200], "reference disagrees with llama2.c golden ids"
json.dump({
    "about": "bench/reference/model_reference.py: torch forward of stories260K.bin (llama2.c interleaved RoPE)",
    "prompt_ids": prompt, "vocab": cfg["vocab"], "logits": flat(logits), "loss": loss,
    "greedy_from_prompt": cont, "greedy_from_bos": bos_cont,
}, open(os.path.join(FIX, "stories260K.reference.json"), "w"))
print("stories260K loss", loss, "greedy from prompt", cont[:10])

# ----------------------------------------------------------------------------- 2. tiny untied random model

g = torch.Generator().manual_seed(1234)
tc = dict(dim=32, hidden=48, n_layers=2, n_heads=4, n_kv_heads=2, vocab=64, seq=64, eps=1e-5, theta=10000.0)
hd = tc["dim"] // tc["n_heads"]


def rnd(*shape, scale=0.2):
    return torch.randn(*shape, generator=g) * scale


TW = {
    "emb": rnd(tc["vocab"], tc["dim"], scale=0.5),
    "att_norm": 1 + rnd(tc["n_layers"], tc["dim"], scale=0.1),
    "wq": rnd(tc["n_layers"], tc["dim"], tc["dim"]),
    "wk": rnd(tc["n_layers"], tc["n_kv_heads"] * hd, tc["dim"]),
    "wv": rnd(tc["n_layers"], tc["n_kv_heads"] * hd, tc["dim"]),
    "wo": rnd(tc["n_layers"], tc["dim"], tc["dim"]),
    "ffn_norm": 1 + rnd(tc["n_layers"], tc["dim"], scale=0.1),
    "w1": rnd(tc["n_layers"], tc["hidden"], tc["dim"]),
    "w2": rnd(tc["n_layers"], tc["dim"], tc["hidden"]),
    "w3": rnd(tc["n_layers"], tc["hidden"], tc["dim"]),
    "norm": 1 + rnd(tc["dim"], scale=0.1),
    "cls": rnd(tc["vocab"], tc["dim"], scale=0.3),
}
tiny_ids = [1, 5, 9, 33, 2, 17, 60, 41, 8, 8, 23, 50]

for folder, dtype in (("tiny-untied", "F32"), ("tiny-untied-bf16", "BF16")):
    d = os.path.join(FIX, folder)
    os.makedirs(d, exist_ok=True)
    Wd = {k: v.clone() for k, v in TW.items()}
    if dtype == "BF16":
        Wd = {k: v.to(torch.bfloat16).float() for k, v in Wd.items()}
    write_safetensors(os.path.join(d, "model.safetensors"), to_hf(Wd, tc), dtype)
    json.dump(hf_config(tc, False), open(os.path.join(d, "config.json"), "w"), indent=2)
    with torch.no_grad():
        lg = forward(Wd, tc, tiny_ids)
    ref = {"ids": tiny_ids, "vocab": tc["vocab"], "logits": flat(lg)}
    if dtype == "F32":
        # loss and gradients (in HF names and layout), then 3 AdamW steps with clipping
        P = {k: v.clone().requires_grad_(True) for k, v in Wd.items()}
        L = loss_of(P, tc, tiny_ids)
        L.backward()
        hfg = to_hf({k: v.grad for k, v in P.items()}, tc)
        write_safetensors(os.path.join(d, "grads.safetensors"), hfg, "F32")
        ref["loss"] = float(L)

        lr, b1, b2, eps, wd, clip = 1e-2, 0.9, 0.95, 1e-8, 0.1, 1.0
        P = {k: v.clone().requires_grad_(True) for k, v in Wd.items()}
        decay = {"emb", "wq", "wk", "wv", "wo", "w1", "w2", "w3", "cls"}  # norms are not decayed
        m = {k: torch.zeros_like(v) for k, v in P.items()}
        s = {k: torch.zeros_like(v) for k, v in P.items()}
        steps = []
        for t in range(1, 4):
            for v in P.values():
                v.grad = None
            L = loss_of(P, tc, tiny_ids)
            L.backward()
            with torch.no_grad():
                gn = torch.sqrt(sum((v.grad.double() ** 2).sum() for v in P.values())).item()
                coef = min(1.0, clip / (gn + 1e-6))
                for k, v in P.items():
                    gr = v.grad * coef
                    if k in decay:
                        v.mul_(1 - lr * wd)
                    m[k].mul_(b1).add_(gr, alpha=1 - b1)
                    s[k].mul_(b2).addcmul_(gr, gr, value=1 - b2)
                    mhat = m[k] / (1 - b1 ** t)
                    shat = s[k] / (1 - b2 ** t)
                    v.sub_(lr * mhat / (torch.sqrt(shat) + eps))
            steps.append({"loss": float(L), "gradNorm": gn})
        write_safetensors(os.path.join(d, "after-adamw.safetensors"), to_hf({k: v.detach() for k, v in P.items()}, tc), "F32")
        ref["adamw"] = {"lr": lr, "beta1": b1, "beta2": b2, "eps": eps, "weightDecay": wd, "clipNorm": clip, "steps": steps}
    json.dump(ref, open(os.path.join(d, "reference.json"), "w"))
    print(folder, "written")


# ----------------------------------------------------------------------------- 3. the tiny model as llama2.c v0 / v1 / v2

def f32(t):
    return t.detach().float().contiguous().numpy().astype("<f4").tobytes()


def params7(c, vocab):
    return struct.pack("<7i", c["dim"], c["hidden"], c["n_layers"], c["n_heads"], c["n_kv_heads"], vocab, c["seq"])


def layer_list(W, key, c):
    return [W[key][l] for l in range(c["n_layers"])]


def matrices(W, c):
    out = [W["emb"]]
    for key in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
        out += layer_list(W, key, c)
    return out


def norms(W, c):
    return layer_list(W, "att_norm", c) + layer_list(W, "ffn_norm", c) + [W["norm"]]


d = os.path.join(FIX, "tiny-llama2c")
os.makedirs(d, exist_ok=True)
tc_hd = tc["dim"] // tc["n_heads"]
with open(os.path.join(d, "tiny.v0.bin"), "wb") as f:  # negative vocab = separate classifier
    f.write(params7(tc, -tc["vocab"]))
    f.write(f32(TW["emb"]))
    for key in ("att_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3"):
        for t in layer_list(TW, key, tc):
            f.write(f32(t))
    f.write(f32(TW["norm"]))
    f.write(b"\0" * (4 * tc["seq"] * tc_hd))  # the two unused RoPE tables
    f.write(f32(TW["cls"]))
with open(os.path.join(d, "tiny.v1.bin"), "wb") as f:
    f.write(struct.pack("<I", 0x616B3432) + struct.pack("<i", 1) + params7(tc, tc["vocab"]) + struct.pack("<B", 0))
    f.write(b"\0" * (256 - f.tell()))
    for t in norms(TW, tc) + matrices(TW, tc) + [TW["cls"]]:
        f.write(f32(t))
gs = 64
while tc["dim"] % gs:
    gs //= 2


def quant(t):
    flat_t = t.reshape(-1, gs)
    s = flat_t.abs().max(dim=1).values / 127.0
    q = torch.round(flat_t / s[:, None]).to(torch.int8)
    return q, s, (q.float() * s[:, None]).reshape(t.shape)


with open(os.path.join(d, "tiny.v2.bin"), "wb") as f:
    f.write(struct.pack("<I", 0x616B3432) + struct.pack("<i", 2) + params7(tc, tc["vocab"]) + struct.pack("<B", 0) + struct.pack("<i", gs))
    f.write(b"\0" * (256 - f.tell()))
    for t in norms(TW, tc):
        f.write(f32(t))
    all_scales = []
    Wd = {k: v.clone() for k, v in TW.items()}
    order = [("emb", None)] + [(k, l) for k in ("wq", "wk", "wv", "wo", "w1", "w2", "w3") for l in range(tc["n_layers"])] + [("cls", None)]
    for k, l in order:
        t = TW[k] if l is None else TW[k][l]
        q, s, dq = quant(t)
        f.write(q.numpy().tobytes())
        all_scales.append(s)
        if l is None:
            Wd[k] = dq
        else:
            Wd[k][l] = dq
    for s in all_scales:
        f.write(f32(s))
with torch.no_grad():
    lg2 = forward(Wd, tc, tiny_ids)
json.dump({"ids": tiny_ids, "vocab": tc["vocab"], "groupSize": gs, "logits_v2": flat(lg2)}, open(os.path.join(d, "reference.json"), "w"))
print("tiny-llama2c written, group size", gs)
