#!/usr/bin/python3
"""Reference numbers for @topiary/eval, computed independently in PyTorch (run with Debian's /usr/bin/python3).

Everything here is written from the equations, not from the TypeScript code:
- the safetensors reader, the LLaMA forward in the Hugging Face convention (RMSNorm, rotate-half RoPE, GQA, SwiGLU,
  tied embeddings), in float64, for assets/models/stories260K-hf;
- the llama2.c encoder (dummy-prefix space, per-character pieces or byte fallback byte+3, then repeatedly merge the
  adjacent pair whose concatenation is the highest-score piece, leftmost on ties), reimplemented here over
  assets/models/stories260K/tok512.bin (the TS side tokenizes on its own; the test compares the ids' sha256);
- the perplexity windows and the lm-eval-harness multiple-choice scoring.

Outputs bench/reference/outputs/eval_reference.json (committed) with:
- perplexity on a prefix of assets/data/tinystories_val_head.txt (the first `prefix_bytes` bytes: up to the first
  blank line after byte 40000), BOS + encode(text), for non-overlapping windows L=512 and strided L=256, S=128,
  with each window's [begin, end, tokens scored, NLL sum] so a test can check a prefix of the windows quickly;
- per-item log-likelihoods and predictions (acc, acc_norm) for hellaswag-mini (100 items) and arc-easy-dev-mini
  (200 items), the task subsets shipped in packages/eval/data.

Run: /usr/bin/python3 bench/reference/eval_reference.py   (about a minute)
"""
import hashlib
import heapq
import json
import math
import os
import re
import struct
import sys

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
HF_DIR = os.path.join(ROOT, 'assets', 'models', 'stories260K-hf')
TOK = os.path.join(ROOT, 'assets', 'models', 'stories260K', 'tok512.bin')
TEXT = os.path.join(ROOT, 'assets', 'data', 'tinystories_val_head.txt')
TASK_DIR = os.path.join(ROOT, 'packages', 'eval', 'data')
OUT = os.path.join(ROOT, 'bench', 'reference', 'outputs', 'eval_reference.json')
torch.set_default_dtype(torch.float64)


# ---- tokenizer ---------------------------------------------------------------------------------------------
class Llama2cTokenizer:
    def __init__(self, path):
        data = open(path, 'rb').read()
        (self.max_len,) = struct.unpack_from('<i', data, 0)
        off, self.pieces, self.scores = 4, [], []
        while off < len(data):
            score, n = struct.unpack_from('<fi', data, off)
            self.pieces.append(data[off + 8:off + 8 + n])
            self.scores.append(score)
            off += 8 + n
        self.lookup = {}
        for i, p in enumerate(self.pieces):
            self.lookup.setdefault(p, i)

    def encode(self, text, bos):
        ids = []
        if text:
            ids.append(self.lookup[b' '])
            for ch in text:
                b = ch.encode('utf-8')
                if b in self.lookup:
                    ids.append(self.lookup[b])
                else:
                    ids.extend(x + 3 for x in b)
        ids = self._merge(ids)
        return ([1] if bos else []) + ids

    def _merge(self, ids):
        # Doubly linked symbols; a heap of (−score, left index, left version, right version).
        n = len(ids)
        nxt = list(range(1, n)) + [-1]
        prv = list(range(-1, n - 1))
        ver = [0] * n
        alive = [True] * n
        heap = []

        def push(i):
            j = nxt[i]
            if i < 0 or j < 0:
                return
            m = self.lookup.get(self.pieces[ids[i]] + self.pieces[ids[j]])
            if m is not None:
                heapq.heappush(heap, (-self.scores[m], i, ver[i], ver[j], m))

        for i in range(n - 1):
            push(i)
        while heap:
            _, i, vi, vj, m = heapq.heappop(heap)
            j = nxt[i]
            if not alive[i] or j < 0 or ver[i] != vi or ver[j] != vj:
                continue
            ids[i] = m
            ver[i] += 1
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] >= 0:
                prv[nxt[j]] = i
            if prv[i] >= 0:
                push(prv[i])
            push(i)
        out, i = [], 0 if n else -1
        while i >= 0:
            out.append(ids[i])
            i = nxt[i]
        return out


def naive_merge_check(tok, text):
    """llama2.c's O(n²) loop, to check the heap version on a short text."""
    ids = [tok.lookup[b' ']]
    for ch in text:
        b = ch.encode('utf-8')
        ids.extend([tok.lookup[b]] if b in tok.lookup else [x + 3 for x in b])
    while True:
        best, bi, bid = -1e30, -1, -1
        for i in range(len(ids) - 1):
            m = tok.lookup.get(tok.pieces[ids[i]] + tok.pieces[ids[i + 1]])
            if m is not None and tok.scores[m] > best:
                best, bi, bid = tok.scores[m], i, m
        if bi < 0:
            return ids
        ids[bi:bi + 2] = [bid]


# ---- model -------------------------------------------------------------------------------------------------
def read_safetensors(path):
    data = open(path, 'rb').read()
    (n,) = struct.unpack_from('<Q', data, 0)
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == '__metadata__':
            continue
        assert meta['dtype'] == 'F32', meta
        a, b = meta['data_offsets']
        arr = np.frombuffer(data[base + a:base + b], dtype='<f4').reshape(meta['shape'])
        out[name] = torch.from_numpy(arr.astype(np.float64))
    return out


class Llama:
    def __init__(self, folder):
        self.cfg = json.load(open(os.path.join(folder, 'config.json')))
        self.w = read_safetensors(os.path.join(folder, 'model.safetensors'))
        c = self.cfg
        self.n_heads, self.n_kv = c['num_attention_heads'], c['num_key_value_heads']
        self.head_dim = c['hidden_size'] // self.n_heads
        self.eps, self.theta = c['rms_norm_eps'], c.get('rope_theta', 10000.0)
        self.n_layers, self.max_len = c['num_hidden_layers'], c['max_position_embeddings']

    def rms(self, x, w):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, t):
        # x: [b, heads, t, hd]; rotate-half convention
        hd = self.head_dim
        inv = self.theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        ang = torch.outer(torch.arange(t, dtype=torch.float64), inv)
        cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)
        x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def forward(self, ids):
        """ids: LongTensor [b, t] → logits [b, t, vocab]."""
        w, (b, t) = self.w, ids.shape
        emb = w['model.embed_tokens.weight']
        x = emb[ids]
        mask = torch.full((t, t), float('-inf')).triu(1)
        for i in range(self.n_layers):
            p = f'model.layers.{i}.'
            h = self.rms(x, w[p + 'input_layernorm.weight'])
            q = (h @ w[p + 'self_attn.q_proj.weight'].T).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
            k = (h @ w[p + 'self_attn.k_proj.weight'].T).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
            v = (h @ w[p + 'self_attn.v_proj.weight'].T).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
            q, k = self.rope(q, t), self.rope(k, t)
            rep = self.n_heads // self.n_kv
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + mask, -1)
            o = (att @ v).transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)
            x = x + o @ w[p + 'self_attn.o_proj.weight'].T
            h = self.rms(x, w[p + 'post_attention_layernorm.weight'])
            g = h @ w[p + 'mlp.gate_proj.weight'].T
            u = h @ w[p + 'mlp.up_proj.weight'].T
            x = x + (torch.nn.functional.silu(g) * u) @ w[p + 'mlp.down_proj.weight'].T
        x = self.rms(x, w['model.norm.weight'])
        return x @ emb.T

    def next_logprobs(self, seq):
        """log p(seq[p+1] | seq[:p+1]) for p = 0..len−2."""
        with torch.no_grad():
            logits = self.forward(torch.tensor([seq[:-1]]))[0]
            lp = torch.log_softmax(logits, -1)
            return lp[torch.arange(len(seq) - 1), torch.tensor(seq[1:])]


# ---- perplexity --------------------------------------------------------------------------------------------
def windows(n, L, S):
    if S == L:
        return [(k * L, (k + 1) * L, 1) for k in range(n // L)]
    out, prev_end, begin = [], 0, 0
    while begin < n:
        end = min(begin + L, n)
        trg = end - prev_end
        out.append((begin, end, max(1, (end - begin) - trg)))
        prev_end = end
        if end == n:
            break
        begin += S
    return out


def perplexity(model, ids, L, S):
    nll, count, per_window = 0.0, 0, []
    ws = windows(len(ids), L, S)
    for begin, end, frm in ws:
        lp = model.next_logprobs(ids[begin:end])
        w_nll = -float(lp[frm - 1:].sum())
        nll += w_nll
        count += (end - begin) - frm
        per_window.append([begin, end, (end - begin) - frm, w_nll])
    return {'seqlen': L, 'stride': S, 'windows': len(ws), 'tokens': count, 'nll': nll / count, 'ppl': math.exp(nll / count),
            'per_window': per_window}


# ---- multiple choice (lm-eval-harness) -------------------------------------------------------------------
def hellaswag_pre(text):
    text = text.strip().replace(' [title]', '. ')
    text = re.sub('\\[.*?\\]', '', text)
    return text.replace('  ', ' ')


def items_hellaswag(path):
    for line in open(path, encoding='utf-8'):
        d = json.loads(line)
        ends = [hellaswag_pre(e) for e in d['endings']]
        yield hellaswag_pre(d['ctx']), ends, d['label']


def items_arc_original(path):
    for line in open(path, encoding='utf-8'):
        d = json.loads(line)
        q = d['question']
        labels = [c['label'] for c in q['choices']]
        yield 'Question: ' + q['stem'] + '\nAnswer:', [c['text'] for c in q['choices']], labels.index(d['answerKey'])


def encode_pair(tok, context, continuation):
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok.encode(context + continuation, bos=True)
    ctx = tok.encode(context, bos=True)
    return ctx, whole[len(ctx):]


def run_task(model, tok, items):
    out = []
    for context, choices, label in items:
        lls = []
        for c in choices:
            ctx, cont = encode_pair(tok, context, ' ' + c)
            seq = (ctx + cont)[-(model.max_len + 1):]
            lp = model.next_logprobs(seq)
            lls.append(float(lp[len(lp) - len(cont):].sum()) if cont else 0.0)
        norm = [l / len(c) for l, c in zip(lls, choices)]
        out.append({'label': label, 'pred': int(np.argmax(lls)), 'pred_norm': int(np.argmax(norm)), 'logliks': lls})
    n = len(out)

    def stats(key):
        xs = [1.0 if o[key] == o['label'] else 0.0 for o in out]
        m = sum(xs) / n
        return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1) / n)

    acc, acc_se = stats('pred')
    accn, accn_se = stats('pred_norm')

    margins = []
    for o in out:
        s = sorted(o['logliks'], reverse=True)
        margins.append(s[0] - s[1])
    return {'n': n, 'acc': acc, 'acc_stderr': acc_se, 'acc_norm': accn, 'acc_norm_stderr': accn_se,
            'min_top2_margin': min(margins), 'items': out}


def main():
    tok = Llama2cTokenizer(TOK)
    for t in ['Hello, wörld! ✓ 你好 🙂', 'Once upon a time, there was a little girl named Lily.']:
        assert tok.encode(t, bos=False) == naive_merge_check(tok, t), t
    golden = json.load(open(os.path.join(ROOT, 'assets', 'models', 'stories260K', 'stories260K.golden.json')))
    ex = golden['prompt_encoding_example']
    assert tok.encode(ex['text'], bos=False) == ex['ids_without_bos']

    model = Llama(HF_DIR)
    raw = open(TEXT, 'rb').read()
    cut = raw.index(b'\n\n', 40000)
    text = raw[:cut].decode('utf-8')
    ids = tok.encode(text, bos=True)
    ids_sha = hashlib.sha256(','.join(map(str, ids)).encode()).hexdigest()
    print(f'prefix: {cut} bytes, {len(ids)} tokens', file=sys.stderr)
    ppl = [perplexity(model, ids, 512, 512), perplexity(model, ids, 256, 128)]
    for p in ppl:
        print(f"ppl L={p['seqlen']} S={p['stride']}: {p['ppl']:.6f} over {p['tokens']} tokens", file=sys.stderr)

    tasks = {
        'hellaswag-mini': run_task(model, tok, items_hellaswag(os.path.join(TASK_DIR, 'hellaswag_val.head100.jsonl'))),
        'arc-easy-dev-mini': run_task(model, tok, items_arc_original(os.path.join(TASK_DIR, 'arc_easy_dev.head200.jsonl'))),
    }
    for name, r in tasks.items():
        print(f"{name}: n={r['n']} acc={r['acc']:.4f} acc_norm={r['acc_norm']:.4f} min margin={r['min_top2_margin']:.2e}", file=sys.stderr)

    result = {
        'produced_by': 'bench/reference/eval_reference.py (PyTorch float64, independent LLaMA forward and llama2.c encoder)',
        'torch': torch.__version__,
        'model': 'assets/models/stories260K-hf',
        'tokenizer': 'assets/models/stories260K/tok512.bin (llama2.c encoder reimplemented in Python)',
        'text': {'file': 'assets/data/tinystories_val_head.txt', 'prefix_bytes': cut, 'bos': True,
                 'token_count': len(ids), 'ids_sha256': ids_sha, 'first_ids': ids[:32]},
        'perplexity': ppl,
        'tasks': tasks,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as f:
        json.dump(result, f, indent=1)
        f.write('\n')
    print('wrote', OUT, file=sys.stderr)


if __name__ == '__main__':
    main()
