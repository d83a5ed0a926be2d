#!/usr/bin/python3
"""Reference outputs for structured pruning (LLM-Pruner width pruning, depth pruning), produced ONCE and committed.

An independent float64 PyTorch implementation, written from the equations, of:
  - the Hugging Face Llama forward pass (RMSNorm, rotate-half RoPE, GQA attention, SwiGLU, tied head) over the
    shipped stories260K-hf safetensors (own reader);
  - gradients of the mean next-token cross-entropy over the calibration windows the TypeScript side drew
    (plugins/pruner-llm-pruner/test/fixtures/calibration.json, batches of `batchSize`): grad = mean over batches,
    Fisher = mean over batches of grad^2;
  - LLM-Pruner group importance: per member slice, element criteria sum |w*g| or |w*g - 1/2 w^2 F| over the slice,
    the vector criterion takes |sum w*g| over the slice; members combined by sum/mean/max/prod/last;
    member order: kv-group = k, v, then (q, o) for each query head reading it; ffn = gate, up, down;
  - group selection for a parameter ratio (per-layer and global rules, as the TypeScript README states them);
  - depth scores: Block Influence (1 - mean cos of block input/output), loss with a block dropped, block Taylor.

Outputs:
  plugins/pruner-llm-pruner/test/fixtures/reference.json
  plugins/pruner-depth/test/fixtures/reference.json

Run: /usr/bin/python3 bench/reference/structured_reference.py
"""
import json
import math
import os
import struct

import numpy as np
import torch

torch.set_num_threads(2)
torch.set_default_dtype(torch.float64)
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, "assets", "models", "stories260K-hf")
LLM_FIX = os.path.join(ROOT, "plugins", "pruner-llm-pruner", "test", "fixtures")
DEPTH_FIX = os.path.join(ROOT, "plugins", "pruner-depth", "test", "fixtures")
print("torch", torch.__version__)


# ----------------------------------------------------------------------------- safetensors reader (own)

def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        a, b = info["data_offsets"]
        arr = np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(info["shape"])
        out[name] = torch.tensor(arr.astype(np.float64))
    return out


cfg = json.load(open(os.path.join(MODEL, "config.json")))
W = read_safetensors(os.path.join(MODEL, "model.safetensors"))
DIM, NL, NH, NKV = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
HD = DIM // NH
FFN = cfg["intermediate_size"]
EPS, THETA = cfg["rms_norm_eps"], cfg["rope_theta"]
TOTAL = sum(t.numel() for t in W.values())
print("parameters", TOTAL)


def P(i, name):
    return f"model.layers.{i}.{name}.weight"


def rms(x, w):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + EPS) * w


def rope(x):
    # x: [B, T, H, D], rotate-half convention
    T, D = x.shape[1], x.shape[3]
    inv = THETA ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
    ang = torch.cat([ang, ang], -1)
    cos, sin = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def block(Wd, i, x):
    B, T, _ = x.shape
    h = rms(x, Wd[P(i, "input_layernorm")])
    q = (h @ Wd[P(i, "self_attn.q_proj")].T).view(B, T, NH, HD)
    k = (h @ Wd[P(i, "self_attn.k_proj")].T).view(B, T, NKV, HD)
    v = (h @ Wd[P(i, "self_attn.v_proj")].T).view(B, T, NKV, HD)
    q, k = rope(q), rope(k)
    rep = NH // NKV
    k = k.repeat_interleave(rep, dim=2)
    v = v.repeat_interleave(rep, dim=2)
    mask = torch.full((T, T), float("-inf")).triu(1)
    att = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(HD) + mask
    o = torch.einsum("bhts,bshd->bthd", torch.softmax(att, -1), v).reshape(B, T, NH * HD)
    x = x + o @ Wd[P(i, "self_attn.o_proj")].T
    h = rms(x, Wd[P(i, "post_attention_layernorm")])
    g = h @ Wd[P(i, "mlp.gate_proj")].T
    u = h @ Wd[P(i, "mlp.up_proj")].T
    return x + (torch.nn.functional.silu(g) * u) @ Wd[P(i, "mlp.down_proj")].T


def loss_of(Wd, ids, skip=()):
    ids = torch.tensor(ids)
    x = Wd["model.embed_tokens.weight"][ids[:, :-1]]
    for i in range(NL):
        if i not in skip:
            x = block(Wd, i, x)
    logits = rms(x, Wd["model.norm.weight"]) @ Wd["model.embed_tokens.weight"].T
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


calib = json.load(open(os.path.join(LLM_FIX, "calibration.json")))
windows = calib["windows"]
bs = calib["batchSize"]
batches = [windows[i:i + bs] for i in range(0, len(windows), bs)]

# ----------------------------------------------------------------------------- gradients
grad = {k: torch.zeros_like(v) for k, v in W.items()}
fisher = {k: torch.zeros_like(v) for k, v in W.items()}
for b in batches:
    Wg = {k: v.clone().requires_grad_(True) for k, v in W.items()}
    loss = loss_of(Wg, b)
    loss.backward()
    for k in W:
        grad[k] += Wg[k].grad / len(batches)
        fisher[k] += Wg[k].grad ** 2 / len(batches)
    print("batch loss", float(loss))

element = {
    "taylor-element": {k: (W[k] * grad[k]).abs() for k in W},
    "taylor-element-2nd": {k: (grad[k] * W[k] - 0.5 * W[k] ** 2 * fisher[k]).abs() for k in W},
    "taylor-vector": {k: W[k] * grad[k] for k in W},
}
LEVEL = {"taylor-element": "element", "taylor-element-2nd": "element", "taylor-vector": "vector"}


# ----------------------------------------------------------------------------- groups (written from the architecture)

def rows(h):
    return list(range(h * HD, (h + 1) * HD))


def kv_group(i, g):
    members = [(P(i, "self_attn.k_proj"), 0, rows(g)), (P(i, "self_attn.v_proj"), 0, rows(g))]
    for h in range(NH):
        if h // (NH // NKV) == g:
            members += [(P(i, "self_attn.q_proj"), 0, rows(h)), (P(i, "self_attn.o_proj"), 1, rows(h))]
    return {"id": f"layers.{i}.kv.{g}", "kind": "kv-group", "layer": i, "index": g, "members": members}


def ffn(i, c):
    members = [(P(i, "mlp.gate_proj"), 0, [c]), (P(i, "mlp.up_proj"), 0, [c]), (P(i, "mlp.down_proj"), 1, [c])]
    return {"id": f"layers.{i}.ffn.{c}", "kind": "ffn-channel", "layer": i, "index": c, "members": members}


GROUPS = [kv_group(i, g) for i in range(NL) for g in range(NKV)] + [ffn(i, c) for i in range(NL) for c in range(FFN)]
for G in GROUPS:
    G["size"] = sum(len(idx) * (W[p].shape[1 - ax]) for p, ax, idx in G["members"])


def member_slice(t, ax, idx):
    return t[idx, :] if ax == 0 else t[:, idx]


def importance(G, sal, agg):
    vals = []
    for p, ax, idx in G["members"]:
        s = float(member_slice(element[sal][p], ax, idx).sum())
        vals.append(abs(s) if LEVEL[sal] == "vector" else s)
    if agg == "sum":
        return sum(vals)
    if agg == "mean":
        return sum(vals) / len(vals)
    if agg == "max":
        return max(vals)
    if agg == "prod":
        return float(np.prod(vals))
    if agg == "last":
        return vals[-1]
    raise ValueError(agg)


def js_round(x):
    return math.floor(x + 0.5)


def select(scores, ratio, ranking, start, end):
    target = js_round(ratio * TOTAL)
    cand = [(G, scores[G["id"]]) for G in GROUPS if start <= G["layer"] < end]
    prunable = sum(G["size"] for G, _ in cand)
    assert target <= prunable
    remove = []
    if ranking == "per-layer":
        r = target / prunable
        for l in range(start, end):
            att = sorted([(s, G["index"], G) for G, s in cand if G["layer"] == l and G["kind"] == "kv-group"], key=lambda t: (t[0], t[1]))
            ff = sorted([(s, G["index"], G) for G, s in cand if G["layer"] == l and G["kind"] == "ffn-channel"], key=lambda t: (t[0], t[1]))
            size_a = sum(t[2]["size"] for t in att)
            size_f = sum(t[2]["size"] for t in ff)
            n_a = js_round(r * len(att))
            n_f = max(0, js_round((r * (size_a + size_f) - n_a * size_a / len(att)) / (size_f / len(ff))))
            assert n_a < len(att) and n_f < len(ff)
            remove += [G["id"] for _, _, G in att[:n_a] + ff[:n_f]]
    else:
        ranked = sorted(cand, key=lambda t: (t[1] / t[0]["size"], t[0]["layer"], t[0]["index"]))
        counts = {}
        totals = {}
        for G, _ in cand:
            totals[(G["layer"], G["kind"])] = totals.get((G["layer"], G["kind"]), 0) + 1
        removed = 0
        for G, _ in ranked:
            if removed >= target:
                break
            key = (G["layer"], G["kind"])
            if counts.get(key, 0) + 1 >= totals[key]:
                continue
            counts[key] = counts.get(key, 0) + 1
            remove.append(G["id"])
            removed += G["size"]
    return sorted(remove)


llm = {"parameters": TOTAL, "calibration": "calibration.json", "importance": {}, "selections": []}
for sal in element:
    for agg in ("sum", "mean", "max", "prod", "last"):
        scores = {G["id"]: importance(G, sal, agg) for G in GROUPS}
        llm.setdefault("_all", {})[f"{sal}/{agg}"] = scores
        if sal == "taylor-element" or agg == "sum":  # keep the fixture small: every aggregation for one criterion
            llm["importance"][f"{sal}/{agg}"] = {k: float(f"{v:.9g}") for k, v in scores.items()}
for sal, agg, ratio, ranking, start, end in [
    ("taylor-element", "sum", 0.2, "per-layer", 1, 4),
    ("taylor-vector", "sum", 0.2, "per-layer", 1, 4),
    ("taylor-element-2nd", "sum", 0.2, "per-layer", 1, 4),
    ("taylor-element", "max", 0.3, "per-layer", 0, 5),
    ("taylor-element", "sum", 0.2, "global", 1, 4),
]:
    chosen = select(llm["_all"][f"{sal}/{agg}"], ratio, ranking, start, end)
    llm["selections"].append({"saliency": sal, "aggregation": agg, "ratio": ratio, "ranking": ranking, "layers": f"{start}:{end}", "remove": chosen})
    print(sal, agg, ratio, ranking, len(chosen), "groups")
del llm["_all"]
os.makedirs(LLM_FIX, exist_ok=True)
json.dump(llm, open(os.path.join(LLM_FIX, "reference.json"), "w"), separators=(",", ":"))

# ----------------------------------------------------------------------------- depth


def block_influence(skip=()):
    cos_sum = {i: 0.0 for i in range(NL) if i not in skip}
    tokens = 0
    with torch.no_grad():
        for b in batches:
            x = W["model.embed_tokens.weight"][torch.tensor(b)]
            for i in range(NL):
                if i in skip:
                    continue
                y = block(W, i, x)
                cos_sum[i] += float(torch.nn.functional.cosine_similarity(x, y, dim=-1).sum())
                x = y
            tokens += len(b) * len(b[0])
    return {i: 1 - s / tokens for i, s in cos_sum.items()}


def dropped_loss(skip=()):
    out = {}
    with torch.no_grad():
        for i in range(NL):
            if i in skip:
                continue
            tot = 0.0
            cnt = 0
            for b in batches:
                n = len(b) * (len(b[0]) - 1)
                tot += float(loss_of(W, b, skip=tuple(skip) + (i,))) * n
                cnt += n
            out[i] = tot / cnt
    return out


block_taylor = {i: float(sum(element["taylor-element"][k].sum() for k in W if k.startswith(f"model.layers.{i}."))) for i in range(NL)}


def lowest(scores, k):
    return [i for i, _ in sorted(scores.items(), key=lambda t: (t[1], t[0]))[:k]]


def iterative(score_fn, k):
    removed = []
    for _ in range(k):
        removed += lowest(score_fn(tuple(removed)), 1)
    return removed


bi = block_influence()
dl = dropped_loss()
depth = {
    "scores": {"block-influence": bi, "ppl": dl, "taylor": block_taylor},
    "oneShot2": {"block-influence": lowest(bi, 2), "ppl": lowest(dl, 2), "taylor": lowest(block_taylor, 2)},
    "iterative2": {"block-influence": iterative(block_influence, 2), "ppl": iterative(dropped_loss, 2)},
}
print("depth", depth["oneShot2"], depth["iterative2"])
os.makedirs(DEPTH_FIX, exist_ok=True)
json.dump(depth, open(os.path.join(DEPTH_FIX, "reference.json"), "w"), indent=1)
