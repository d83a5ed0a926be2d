#!/usr/bin/python3
"""PyTorch side of bench/generate: greedy generation with a KV cache, following Meta's LLaMA reference code —
facebookresearch/llama @ 54c22c0d63a3f3c9e77f43a6a3041c00018f4964, `llama/model.py` (Attention with cache_k /
cache_v and start_pos, Transformer.forward with its mask) and `llama/generation.py` (Llama.generate: the prompt fed
once, then one token per step, argmax of the last position). Line numbers below are that commit's. Prints one JSON
line.

  /usr/bin/python3 bench/generate/torch_generate.py --dim 64 --layers 5 --heads 8 --kv 4 --hidden 172 --vocab 512
      --batch 1 --prompt 8 --new 200 --threads 2 [--bin assets/models/stories260K/stories260K.bin] [--ids 1,403,...]

Differences from the original, each forced by running it here: no fairscale model parallelism (ColumnParallelLinear /
RowParallelLinear / ParallelEmbedding on one process are nn.Linear / nn.Embedding), CPU instead of CUDA, float32,
and the loop does not stop at EOS (generation.py:211 breaks when every row has reached EOS) so that every run times
exactly --new tokens per row; Topiary's side runs with stopAtEos false likewise. `--bin` loads a llama2.c legacy
(v0) checkpoint, whose q/k rows are in this code's interleaved-RoPE layout (llama2.c exports Meta's layout), and
its max_seq_len; random models draw Normal(0, 0.02) weights.
Run through bench/generate/run.mjs, which runs it under every OpenBLAS kernel the CPU supports (bench/lib/openblas.mjs)
and keeps the fastest.
"""
import json
import math
import resource
import struct
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


def arg(name, default):
    return type(default)(sys.argv[sys.argv.index('--' + name) + 1]) if '--' + name in sys.argv else default


threads = arg('threads', 2)
torch.set_num_threads(threads)
torch.manual_seed(1)
batch, prompt_len, new_tokens, warmup_tokens = arg('batch', 1), arg('prompt', 8), arg('new', 200), arg('warmup', 8)
bin_path = arg('bin', '')

if bin_path:
    with open(bin_path, 'rb') as f:
        header = struct.unpack('7i', f.read(28))
        dim, hidden, layers, heads, kv, vocab, max_seq = header
        shared = vocab > 0
        vocab = abs(vocab)
        blob = torch.frombuffer(bytearray(f.read()), dtype=torch.float32)
else:
    dim, layers, heads = arg('dim', 64), arg('layers', 5), arg('heads', 8)
    kv, hidden, vocab = arg('kv', heads), arg('hidden', 172), arg('vocab', 512)
    max_seq = prompt_len + max(new_tokens, warmup_tokens)
    shared = True
head_dim = dim // heads
norm_eps = 1e-5  # ModelArgs.norm_eps (model.py:30) and llama2.c's


class RMSNorm(nn.Module):  # model.py:34-75
    def __init__(self, d, eps=norm_eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def _norm(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x):
        output = self._norm(x.float()).type_as(x)
        return output * self.weight


def precompute_freqs_cis(d, end, theta=10000.0):  # model.py:78-100
    freqs = 1.0 / (theta ** (torch.arange(0, d, 2)[: (d // 2)].float() / d))
    t = torch.arange(end, device=freqs.device)
    freqs = torch.outer(t, freqs).float()
    return torch.polar(torch.ones_like(freqs), freqs)


def reshape_for_broadcast(freqs_cis, x):  # model.py:103-125
    ndim = x.ndim
    assert freqs_cis.shape == (x.shape[1], x.shape[-1])
    shape = [d if i == 1 or i == ndim - 1 else 1 for i, d in enumerate(x.shape)]
    return freqs_cis.view(*shape)


def apply_rotary_emb(xq, xk, freqs_cis):  # model.py:128-161
    xq_ = torch.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))
    xk_ = torch.view_as_complex(xk.float().reshape(*xk.shape[:-1], -1, 2))
    freqs_cis = reshape_for_broadcast(freqs_cis, xq_)
    xq_out = torch.view_as_real(xq_ * freqs_cis).flatten(3)
    xk_out = torch.view_as_real(xk_ * freqs_cis).flatten(3)
    return xq_out.type_as(xq), xk_out.type_as(xk)


def repeat_kv(x, n_rep):  # model.py:164-173
    bs, slen, n_kv_heads, hd = x.shape
    if n_rep == 1:
        return x
    return x[:, :, :, None, :].expand(bs, slen, n_kv_heads, n_rep, hd).reshape(bs, slen, n_kv_heads * n_rep, hd)


class Attention(nn.Module):  # model.py:176-304
    def __init__(self, max_batch_size):
        super().__init__()
        self.n_local_heads, self.n_local_kv_heads = heads, kv
        self.n_rep = heads // kv
        self.head_dim = head_dim
        self.wq = nn.Linear(dim, heads * head_dim, bias=False)
        self.wk = nn.Linear(dim, kv * head_dim, bias=False)
        self.wv = nn.Linear(dim, kv * head_dim, bias=False)
        self.wo = nn.Linear(heads * head_dim, dim, bias=False)
        # model.py:236-251: the preallocated cache, (max_batch_size, max_seq_len, n_kv_heads, head_dim)
        self.cache_k = torch.zeros((max_batch_size, max_seq, kv, head_dim))
        self.cache_v = torch.zeros((max_batch_size, max_seq, kv, head_dim))

    def forward(self, x, start_pos, freqs_cis, mask):  # model.py:253-304
        bsz, seqlen, _ = x.shape
        xq, xk, xv = self.wq(x), self.wk(x), self.wv(x)
        xq = xq.view(bsz, seqlen, self.n_local_heads, self.head_dim)
        xk = xk.view(bsz, seqlen, self.n_local_kv_heads, self.head_dim)
        xv = xv.view(bsz, seqlen, self.n_local_kv_heads, self.head_dim)
        xq, xk = apply_rotary_emb(xq, xk, freqs_cis=freqs_cis)
        self.cache_k = self.cache_k.to(xq)
        self.cache_v = self.cache_v.to(xq)
        # model.py:285-289: the new positions written in place, then the cache read up to start_pos + seqlen
        self.cache_k[:bsz, start_pos: start_pos + seqlen] = xk
        self.cache_v[:bsz, start_pos: start_pos + seqlen] = xv
        keys = self.cache_k[:bsz, : start_pos + seqlen]
        values = self.cache_v[:bsz, : start_pos + seqlen]
        keys = repeat_kv(keys, self.n_rep)
        values = repeat_kv(values, self.n_rep)
        xq = xq.transpose(1, 2)
        keys = keys.transpose(1, 2)
        values = values.transpose(1, 2)
        scores = torch.matmul(xq, keys.transpose(2, 3)) / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores + mask
        scores = F.softmax(scores.float(), dim=-1).type_as(xq)
        output = torch.matmul(scores, values)
        output = output.transpose(1, 2).contiguous().view(bsz, seqlen, -1)
        return self.wo(output)


class FeedForward(nn.Module):  # model.py:307-348 (hidden_dim given directly: llama2.c's / the bench shapes')
    def __init__(self):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):  # model.py:351-410
    def __init__(self, max_batch_size):
        super().__init__()
        self.attention = Attention(max_batch_size)
        self.feed_forward = FeedForward()
        self.attention_norm = RMSNorm(dim)
        self.ffn_norm = RMSNorm(dim)

    def forward(self, x, start_pos, freqs_cis, mask):
        h = x + self.attention(self.attention_norm(x), start_pos, freqs_cis, mask)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):  # model.py:413-495
    def __init__(self, max_batch_size):
        super().__init__()
        self.tok_embeddings = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList([TransformerBlock(max_batch_size) for _ in range(layers)])
        self.norm = RMSNorm(dim)
        self.output = nn.Linear(dim, vocab, bias=False)
        self.freqs_cis = precompute_freqs_cis(head_dim, max_seq * 2)  # model.py:450-453

    @torch.inference_mode()
    def forward(self, tokens, start_pos):  # model.py:456-495
        _bsz, seqlen = tokens.shape
        h = self.tok_embeddings(tokens)
        freqs_cis = self.freqs_cis[start_pos: start_pos + seqlen]
        mask = None
        if seqlen > 1:  # model.py:475-490
            mask = torch.full((seqlen, seqlen), float('-inf'))
            mask = torch.triu(mask, diagonal=1)
            mask = torch.hstack([torch.zeros((seqlen, start_pos)), mask]).type_as(h)
        for layer in self.layers:
            h = layer(h, start_pos, freqs_cis, mask)
        h = self.norm(h)
        return self.output(h).float()  # model.py:493-494: logits of every position fed


model = Transformer(batch)
with torch.no_grad():
    if bin_path:
        # llama2.c legacy export order: embedding, attention norms, wq, wk, wv, wo, ffn norms, w1, w2, w3, final
        # norm, freq_cis_real, freq_cis_imag (unused: recomputed above), then the classifier when not shared.
        off = 0

        def take(shape):
            global off
            n = math.prod(shape)
            t = blob[off: off + n].view(*shape).clone()
            off += n
            return t

        model.tok_embeddings.weight.copy_(take((vocab, dim)))
        for name, shape in [('attention_norm.weight', (dim,)), ('attention.wq.weight', (dim, dim)), ('attention.wk.weight', (kv * head_dim, dim)),
                            ('attention.wv.weight', (kv * head_dim, dim)), ('attention.wo.weight', (dim, dim)), ('ffn_norm.weight', (dim,)),
                            ('feed_forward.w1.weight', (hidden, dim)), ('feed_forward.w2.weight', (dim, hidden)), ('feed_forward.w3.weight', (hidden, dim))]:
            for layer in model.layers:
                layer.get_parameter(name).copy_(take(shape))
        model.norm.weight.copy_(take((dim,)))
        take((max_seq, head_dim // 2))
        take((max_seq, head_dim // 2))
        if shared:
            model.output.weight = model.tok_embeddings.weight  # tied (llama2.c: a positive vocab_size)
        else:
            model.output.weight.copy_(take((vocab, dim)))
    else:
        for p in model.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)
        model.output.weight = model.tok_embeddings.weight  # tied, as the bench shapes


def prompts(rows):
    if '--ids' in sys.argv:
        ids = [int(x) for x in sys.argv[sys.argv.index('--ids') + 1].split(',')]
        return [list(ids) for _ in range(rows)]
    g = torch.Generator().manual_seed(12345)
    return torch.randint(3, vocab, (rows, prompt_len), generator=g).tolist()


@torch.inference_mode()
def generate(prompt_tokens, max_gen_len):  # generation.py:129-231, temperature 0 (greedy), no logprobs, no echo
    bsz = len(prompt_tokens)
    min_prompt_len = min(len(t) for t in prompt_tokens)
    max_prompt_len = max(len(t) for t in prompt_tokens)
    total_len = min(max_seq, max_gen_len + max_prompt_len)  # generation.py:165
    pad_id = -1
    tokens = torch.full((bsz, total_len), pad_id, dtype=torch.long)  # generation.py:167-170
    for k, t in enumerate(prompt_tokens):
        tokens[k, : len(t)] = torch.tensor(t, dtype=torch.long)
    prev_pos = 0
    input_text_mask = tokens != pad_id
    for cur_pos in range(min_prompt_len, total_len):  # generation.py:186-212
        logits = model.forward(tokens[:, prev_pos:cur_pos], prev_pos)
        next_token = torch.argmax(logits[:, -1], dim=-1)  # generation.py:192
        next_token = next_token.reshape(-1)
        next_token = torch.where(input_text_mask[:, cur_pos], tokens[:, cur_pos], next_token)
        tokens[:, cur_pos] = next_token
        prev_pos = cur_pos
        # generation.py:207-212 stops once every row has reached EOS; left out so that every run is --new tokens
    return [toks[len(prompt_tokens[i]): len(prompt_tokens[i]) + max_gen_len] for i, toks in enumerate(tokens.tolist())]


rows = prompts(batch)
generate(rows, warmup_tokens)  # warm-up: first-call allocations, OpenBLAS thread start
t0 = time.perf_counter()
out = generate(rows, new_tokens)
secs = time.perf_counter() - t0
params = sum(p.numel() for p in model.parameters())
print(json.dumps({'ok': True, 'engine': 'pytorch', 'backend': 'torch-cpu', 'params': params, 'batch': batch, 'promptTokens': len(rows[0]),
                  'newTokens': new_tokens, 'seconds': secs, 'tokensPerSecond': batch * new_tokens / secs,
                  'peakRssBytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 'ids': out[0],
                  'threads': torch.get_num_threads(), 'torch': torch.__version__}))
