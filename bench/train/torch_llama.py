#!/usr/bin/python3
"""PyTorch side of bench/train and bench/eval: the same LLaMA shapes as Topiary's worker (RMSNorm, rotate-half
RoPE, grouped-query causal attention, SwiGLU, tied embeddings), trained with torch.optim.AdamW and global-norm
clipping, or evaluated (forward + cross-entropy, no grad). Prints one JSON line.

  /usr/bin/python3 bench/train/torch_llama.py --mode train|eval --dim 64 --layers 5 --heads 8 --kv 4 --hidden 172
      --vocab 512 --seq 256 --batch 8 --steps 3 --warmup 1 --threads 2
Run it through bench/train/run.mjs, which runs it once per OpenBLAS kernel the CPU supports (bench/lib/openblas.mjs:
OPENBLAS_CORETYPE=<kernel> or unset, OPENBLAS_L2_SIZE unset, for this process only) and keeps the fastest.
"""
import ctypes
import json
import math
import resource
import sys
import time

import torch
import torch.nn.functional as F


def arg(name, default):
    return type(default)(sys.argv[sys.argv.index('--' + name) + 1]) if '--' + name in sys.argv else default


mode = arg('mode', 'train')
dim, layers, heads = arg('dim', 64), arg('layers', 5), arg('heads', 8)
kv, hidden, vocab = arg('kv', heads), arg('hidden', 172), arg('vocab', 512)
seq, batch, steps, warmup, threads = arg('seq', 256), arg('batch', 8), arg('steps', 3), arg('warmup', 1), arg('threads', 2)
torch.set_num_threads(threads)
torch.manual_seed(1)
hd = dim // heads


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.n1 = torch.nn.Parameter(torch.ones(dim))
        self.n2 = torch.nn.Parameter(torch.ones(dim))
        self.q = torch.nn.Linear(dim, heads * hd, bias=False)
        self.k = torch.nn.Linear(dim, kv * hd, bias=False)
        self.v = torch.nn.Linear(dim, kv * hd, bias=False)
        self.o = torch.nn.Linear(heads * hd, dim, bias=False)
        self.gate = torch.nn.Linear(dim, hidden, bias=False)
        self.up = torch.nn.Linear(dim, hidden, bias=False)
        self.down = torch.nn.Linear(hidden, dim, bias=False)


def rms(x, w):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5) * w


def rope(x, cos, sin):
    h = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin


class Llama(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        torch.nn.init.normal_(self.emb.weight, std=0.02)
        self.blocks = torch.nn.ModuleList([Block() for _ in range(layers)])
        self.norm = torch.nn.Parameter(torch.ones(dim))
        inv = 10000.0 ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        ang = torch.outer(torch.arange(seq, dtype=torch.float64), inv)
        ang = torch.cat([ang, ang], -1)
        self.register_buffer('cos', torch.cos(ang).float())
        self.register_buffer('sin', torch.sin(ang).float())
        self.register_buffer('mask', torch.full((seq, seq), float('-inf')).triu(1))

    def forward(self, ids):
        b, t = ids.shape
        x = self.emb(ids)
        cos, sin, mask = self.cos[:t], self.sin[:t], self.mask[:t, :t]
        for blk in self.blocks:
            h = rms(x, blk.n1)
            q = rope(blk.q(h).view(b, t, heads, hd).transpose(1, 2), cos, sin)
            k = rope(blk.k(h).view(b, t, kv, hd).transpose(1, 2), cos, sin)
            v = blk.v(h).view(b, t, kv, hd).transpose(1, 2)
            if kv != heads:
                k = k.repeat_interleave(heads // kv, dim=1)
                v = v.repeat_interleave(heads // kv, dim=1)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, -1)
            x = x + blk.o((att @ v).transpose(1, 2).reshape(b, t, heads * hd))
            h = rms(x, blk.n2)
            x = x + blk.down(F.silu(blk.gate(h)) * blk.up(h))
        return rms(x, self.norm) @ self.emb.weight.T


def blas_info():
    """Which BLAS library torch really loaded (Debian's torch links the generic libblas.so.3, which the
    alternatives system points at OpenBLAS when libopenblas0-pthread is installed) and OpenBLAS's kernel."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    maps = open('/proc/self/maps').read().split('\n')
    libs = sorted({l.split()[-1] for l in maps if ('blas' in l.lower()) and l.split()[-1].startswith('/')})
    core = None
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            core = lib.openblas_get_corename().decode()
            break
        except (OSError, AttributeError):
            pass
    blas = 'openblas' if core else ('reference' if any('libblas' in p for p in libs) else 'unknown')
    return {'blas': blas, 'blasLibraries': libs, 'openblasCore': core}


model = Llama()
params = sum(p.numel() for p in model.parameters())
g = torch.Generator().manual_seed(12345)
batches = [torch.randint(0, vocab, (batch, seq + 1), generator=g) for _ in range(2)]
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
losses = []


def one(i):
    ids = batches[i % 2]
    if mode == 'train':
        opt.zero_grad(set_to_none=True)
        logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    else:
        with torch.no_grad():
            logits = model(ids[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
    losses.append(float(loss))


for i in range(warmup):
    one(i)
t0 = time.perf_counter()
for i in range(steps):
    one(i)
secs = time.perf_counter() - t0
print(json.dumps({'ok': True, 'engine': 'pytorch', 'backend': 'torch-cpu', 'mode': mode, 'params': params, 'steps': steps,
                  'seconds': secs, 'tokensPerSecond': steps * batch * seq / secs,
                  'peakRssBytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 'loss': losses[-1],
                  'threads': torch.get_num_threads(), 'torch': torch.__version__, **blas_info()}))
