#!/usr/bin/python3
"""A short probe of one OpenBLAS kernel: the matrix products of one LLaMA step at a bench's own shape, in PyTorch.

  /usr/bin/python3 bench/lib/openblas_probe.py --mode train|eval --dim D --layers L --heads H --kv KV --hidden F
      --vocab V --seq T --batch B --threads N

Times each distinct product of one step once (after one warm-up) with the layouts autograd uses — forward x·Wᵀ,
and for training also dY·W (input gradient) and dYᵀ·x (weight gradient); attention as batched products — and adds
them up weighted by how often a step runs them (layers; the LM head's 32000 columns are timed on a 4096-column
slice and scaled). Prints one JSON line: {"seconds": estimated product time of one step, "products": [...]}.
Run by bench/lib/openblas.mjs under each candidate kernel (OPENBLAS_CORETYPE set or unset for this process only).
"""
import json
import sys
import time

import torch


def arg(name, default):
    return type(default)(sys.argv[sys.argv.index('--' + name) + 1]) if '--' + name in sys.argv else default


mode = arg('mode', 'train')
dim, layers, heads = arg('dim', 64), arg('layers', 5), arg('heads', 8)
kv, hidden, vocab = arg('kv', heads), arg('hidden', 172), arg('vocab', 512)
seq, batch, threads = arg('seq', 256), arg('batch', 8), arg('threads', 2)
torch.set_num_threads(threads)
g = torch.Generator().manual_seed(0)
hd = dim // heads
tokens = batch * seq
HEAD_SLICE = 4096


def timed(fn, reps=2):
    fn()
    best = float('inf')
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


products = []


def linear(name, k, n, count):
    """y = x·Wᵀ with x [tokens, k], W [n, k]; training adds dX = dY·W and dW = dYᵀ·x."""
    scale = 1.0
    if n > HEAD_SLICE:
        scale, n = n / HEAD_SLICE, HEAD_SLICE
    x = torch.randn(tokens, k, generator=g)
    w = torch.randn(n, k, generator=g)
    dy = torch.randn(tokens, n, generator=g)
    t = timed(lambda: x @ w.t())
    if mode == 'train':
        t += timed(lambda: dy @ w) + timed(lambda: dy.t() @ x)
    products.append({'name': name, 'k': k, 'n': n, 'count': count * scale, 'seconds': t})


linear('q/o', dim, heads * hd, 2 * layers)
if kv != heads:
    linear('k/v', dim, kv * hd, 2 * layers)
else:
    products[-1]['count'] += 2 * layers
linear('gate/up', dim, hidden, 2 * layers)
linear('down', hidden, dim, layers)
linear('lm head', dim, vocab, 1)
q = torch.randn(batch * heads, seq, hd, generator=g)
k = torch.randn(batch * heads, seq, hd, generator=g)
p = torch.randn(batch * heads, seq, seq, generator=g)
t = timed(lambda: torch.bmm(q, k.transpose(1, 2))) + timed(lambda: torch.bmm(p, k))
if mode == 'train':
    # dP = dO·Vᵀ (like q·kᵀ), dQ = dS·K (like p·v), dV = Pᵀ·dO and dK = dSᵀ·Q
    t += timed(lambda: torch.bmm(q, k.transpose(1, 2))) + timed(lambda: torch.bmm(p, k)) + 2 * timed(lambda: torch.bmm(p.transpose(1, 2), q))
products.append({'name': 'attention', 'k': hd, 'n': seq, 'count': layers, 'seconds': t})
print(json.dumps({'ok': True, 'mode': mode, 'seconds': sum(x['seconds'] * x['count'] for x in products), 'products': products}))
