#!/usr/bin/python3
"""
PyTorch block-by-block Wanda / SparseGPT on a Hugging Face Llama folder: the reference side of bench/scale.

  /usr/bin/python3 bench/scale/torch_blockwise.py --model DIR [--ids FILE] [--method wanda|sparsegpt]
      [--sparsity 0.5] [--nm N:M] [--samples S --seqlen L] [--blocks K] [--threads N] [--batch 8] [--json OUT]

Only what one block needs is ever in memory: the checkpoint's headers are parsed (8-byte LE length + JSON; no
safetensors package), the calibration ids are embedded by reading only the embedding rows they use, then for each
block: that block's weights are read by byte range (torch.frombuffer on the bytes, bf16/f16 -> float32 per tensor),
the block runs over the calibration hidden states with forward hooks collecting the method's statistics, each linear
layer is pruned, the pruned block runs again to give the next block's inputs, and the block is freed. Nothing is
written back: this measures time and memory, the pruned weights are dropped with the block.

The statistics and pruning rules follow the original code, github.com/locuslab/wanda at commit 8e8fc87 (the line
numbers below are of that commit):
  - the sequential driver: lib/prune.py `prune_wanda` L127-210 and `prune_sparsegpt` L213-300 — calibration
    inputs of block 0 captured once (`prepare_calibration_input` L58-95: the embedding output, [nsamples, seqlen,
    hidden]); per block: wrap every linear layer, hooked forward one sample at a time (L155-162 / L275-282), prune
    (L164-202 / L284-289), forward again with the pruned block (L204-206 / L291-292), swap inps/outs (L207 / L297);
  - Wanda's statistic: lib/layerwrapper.py `WrappedGPT.add_batch` L22-35 (running mean over samples of the squared
    L2 norm of each input feature, float32);
  - Wanda's rule: lib/prune.py L166 (|W| * sqrt(scaler_row)), L168 (mask all False), L197-200 (unstructured: per
    output row, stable sort, the int(cols * sparsity) lowest), L169-174 (N:M: topk smallest in each group of M),
    L202 (W[mask] = 0);
  - SparseGPT: lib/sparsegpt.py `SparseGPT.add_batch` L27-38 (H = running mean of 2 x x^T, float32) and
    `fasterprune` L40-116 (dead inputs, 1 % dampening, Cholesky / cholesky_inverse / upper Cholesky, blocks of 128
    columns, per-block threshold mask or N:M, column loop, lazy update), called with percdamp 0.01, blocksize 128
    (lib/prune.py L288).
Differences from the original, all forced by the setting (CPU, no transformers): weights and hidden states are
float32 (the original runs the model in float16 on a GPU); the Llama decoder layer is written here in plain torch,
as transformers' LlamaDecoderLayer computes it (RMSNorm in float32, rotate-half RoPE with the "llama3" frequency
scaling when the config asks for it, GQA by repeating k/v heads, additive causal mask, softmax in float32, SwiGLU);
`--batch B` runs B samples per forward call (default 8; the original runs one sample per call, `--batch 1`; add_batch's
running means weigh by the batch size, so the statistics are the same up to float rounding; on 2 CPU cores one
sample per call (128 x dim products) was ~3x slower per block at SmolLM-135M's shape).

Prints progress to stderr and, at the end, one JSON line on stdout: {method, shape, blocks: [{index, seconds,
loadSeconds, forwardSeconds, pruneSeconds, reforwardSeconds}], totalSeconds, peakRssBytes, threads, ...}.
"""
import argparse
import gc
import json
import math
import os
import resource
import struct
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'reference'))
from protocol_reference import sparsegpt_prune  # noqa: E402  (the one transcription of SparseGPT's fasterprune)
import torch.nn as nn
import torch.nn.functional as F

torch.set_grad_enabled(False)

DTYPES = {'F32': (torch.float32, 4), 'BF16': (torch.bfloat16, 2), 'F16': (torch.float16, 2)}
LINEARS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj']


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def vm_hwm_bytes():
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def vm_rss_bytes():
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# ----------------------------------------------------------------------------------------- lazy safetensors reader

class Checkpoint:
    """Headers of a single model.safetensors or a sharded folder (model.safetensors.index.json); tensors by byte range."""

    def __init__(self, model_dir):
        index = os.path.join(model_dir, 'model.safetensors.index.json')
        if os.path.exists(index):
            with open(index) as f:
                weight_map = json.load(f)['weight_map']
            files = sorted(set(weight_map.values()))
        else:
            files = ['model.safetensors']
        self.entries = {}
        for name in files:
            path = os.path.join(model_dir, name)
            if not os.path.exists(path):
                raise SystemExit(f'{path}: shard named in the index is missing')
            size = os.path.getsize(path)
            with open(path, 'rb') as f:
                (n,) = struct.unpack('<Q', f.read(8))
                header = json.loads(f.read(n))
            base = 8 + n
            for tname, meta in header.items():
                if tname == '__metadata__':
                    continue
                a, b = meta['data_offsets']
                if base + b > size:
                    raise SystemExit(f'{path}: {tname} ends at byte {base + b}, the file has {size} (short shard)')
                self.entries[tname] = (path, meta['dtype'], meta['shape'], base + a, base + b)

    def _read(self, path, start, length):
        buf = bytearray(length)
        view = memoryview(buf)
        with open(path, 'rb', buffering=0) as f:
            f.seek(start)
            got = 0
            while got < length:
                k = f.readinto(view[got:])
                if not k:
                    raise SystemExit(f'{path}: short read at byte {start + got}')
                got += k
        return buf

    def tensor(self, name):
        """The whole tensor as float32 (bytes read, converted, the file-dtype copy dropped)."""
        path, dt, shape, a, b = self.entries[name]
        dtype, _ = DTYPES[dt]
        t = torch.frombuffer(self._read(path, a, b - a), dtype=dtype).reshape(shape)
        return t if dtype == torch.float32 else t.float()

    def rows(self, name, rows):
        """Rows `rows` (sorted, unique) of a 2-D tensor as float32 [len(rows), cols]; consecutive rows read together."""
        path, dt, shape, a, _ = self.entries[name]
        dtype, size = DTYPES[dt]
        row_bytes = shape[1] * size
        out = torch.empty(len(rows), shape[1], dtype=torch.float32)
        i = 0
        with open(path, 'rb', buffering=0) as f:
            while i < len(rows):
                j = i
                while j + 1 < len(rows) and rows[j + 1] == rows[j] + 1:
                    j += 1
                f.seek(a + rows[i] * row_bytes)
                n = (j - i + 1) * row_bytes
                buf = bytearray(n)
                view, got = memoryview(buf), 0
                while got < n:
                    k = f.readinto(view[got:])
                    if not k:
                        raise SystemExit(f'{path}: short read in {name}')
                    got += k
                out[i:j + 1] = torch.frombuffer(buf, dtype=dtype).reshape(j - i + 1, shape[1]).float()
                i = j + 1
        return out


# ------------------------------------------------------------------------------------------ the Llama decoder layer

def rope_inv_freq(cfg, head_dim):
    """transformers' default RoPE inverse frequencies, with the "llama3" scaling (modeling_rope_utils
    _compute_llama3_parameters) when rope_scaling asks for it."""
    base = float(cfg.get('rope_theta', 10000.0))
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    rs = cfg.get('rope_scaling')
    if not rs:
        return inv
    kind = rs.get('rope_type', rs.get('type'))
    if kind == 'default':
        return inv
    if kind != 'llama3':
        raise SystemExit(f'rope_scaling type {kind!r} is not implemented here')
    factor, low, high = rs['factor'], rs['low_freq_factor'], rs['high_freq_factor']
    old_ctx = rs['original_max_position_embeddings']
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    wavelen = 2 * math.pi / inv
    inv_l = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old_ctx / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, inv_l)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Linear(nn.Module):
    """y = x W^T with W [out, in] (float32), no bias; a module so that forward hooks see its input, as in the original."""

    def __init__(self, weight):
        super().__init__()
        self.weight = weight

    def forward(self, x):
        return F.linear(x, self.weight)


class LlamaBlock(nn.Module):
    def __init__(self, cfg, weights, cos, sin, mask):
        super().__init__()
        self.dim = cfg['hidden_size']
        self.n_heads = cfg['num_attention_heads']
        self.n_kv = cfg['num_key_value_heads']
        self.hd = cfg.get('head_dim') or self.dim // self.n_heads
        self.eps = cfg.get('rms_norm_eps', 1e-6)
        self.linears = {}
        for name in LINEARS:
            mod = Linear(weights[name])
            self.add_module(name.replace('.', '_'), mod)
            self.linears[name] = mod
        self.ln1 = weights['input_layernorm']
        self.ln2 = weights['post_attention_layernorm']
        self.cos, self.sin, self.mask = cos, sin, mask

    def rms(self, x, w):
        var = x.float().pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + self.eps))

    def forward(self, h):
        b, t, _ = h.shape
        L = self.linears
        x = self.rms(h, self.ln1)
        q = L['self_attn.q_proj'](x).view(b, t, self.n_heads, self.hd).transpose(1, 2)
        k = L['self_attn.k_proj'](x).view(b, t, self.n_kv, self.hd).transpose(1, 2)
        v = L['self_attn.v_proj'](x).view(b, t, self.n_kv, self.hd).transpose(1, 2)
        cos, sin = self.cos[:t], self.sin[:t]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.n_heads // self.n_kv
        if rep > 1:  # transformers' repeat_kv
            k = k[:, :, None].expand(b, self.n_kv, rep, t, self.hd).reshape(b, self.n_heads, t, self.hd)
            v = v[:, :, None].expand(b, self.n_kv, rep, t, self.hd).reshape(b, self.n_heads, t, self.hd)
        att = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.hd) + self.mask[:t, :t]
        att = F.softmax(att, dim=-1, dtype=torch.float32)
        y = torch.matmul(att, v).transpose(1, 2).reshape(b, t, self.n_heads * self.hd)
        h = h + L['self_attn.o_proj'](y)
        x = self.rms(h, self.ln2)
        return h + L['mlp.down_proj'](F.silu(L['mlp.gate_proj'](x)) * L['mlp.up_proj'](x))


# --------------------------------------------------------------------------------------- statistics and pruning

class WandaStats:
    """lib/layerwrapper.py WrappedGPT.__init__ L10-17 and add_batch L22-35 (nn.Linear branch)."""

    def __init__(self, layer):
        self.layer = layer
        self.columns = layer.weight.shape[1]
        self.scaler_row = torch.zeros((self.columns,))
        self.nsamples = 0

    def add_batch(self, inp):
        if len(inp.shape) == 2:
            inp = inp.unsqueeze(0)
        tmp = inp.shape[0]
        if len(inp.shape) == 3:
            inp = inp.reshape((-1, inp.shape[-1]))
        inp = inp.t()
        self.scaler_row *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = inp.type(torch.float32)
        self.scaler_row += torch.norm(inp, p=2, dim=1) ** 2 / self.nsamples

    def prune(self, sparsity, prune_n=0, prune_m=0):
        """lib/prune.py L166-202 (the unstructured branch without --use_variant, or N:M)."""
        W = self.layer.weight
        W_metric = torch.abs(W) * torch.sqrt(self.scaler_row.reshape((1, -1)))
        W_mask = torch.zeros_like(W_metric) == 1
        if prune_n != 0:
            for ii in range(W_metric.shape[1]):
                if ii % prune_m == 0:
                    tmp = W_metric[:, ii:(ii + prune_m)].float()
                    W_mask.scatter_(1, ii + torch.topk(tmp, prune_n, dim=1, largest=False)[1], True)
        else:
            sort_res = torch.sort(W_metric, dim=-1, stable=True)
            indices = sort_res[1][:, :int(W_metric.shape[1] * sparsity)]
            W_mask.scatter_(1, indices, True)
        W[W_mask] = 0

    def free(self):
        self.scaler_row = None


class SparseGPTStats:
    """lib/sparsegpt.py SparseGPT.__init__ L14-25, add_batch L27-38 (nn.Linear branch), fasterprune L40-116."""

    def __init__(self, layer):
        self.layer = layer
        self.rows, self.columns = layer.weight.shape
        self.H = torch.zeros((self.columns, self.columns))
        self.nsamples = 0

    def add_batch(self, inp):
        if len(inp.shape) == 2:
            inp = inp.unsqueeze(0)
        tmp = inp.shape[0]
        if len(inp.shape) == 3:
            inp = inp.reshape((-1, inp.shape[-1]))
        inp = inp.t()
        self.H *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = math.sqrt(2 / self.nsamples) * inp.float()
        self.H += inp.matmul(inp.t())

    def prune(self, sparsity, prune_n=0, prune_m=0, blocksize=128, percdamp=.01):
        # fasterprune (lib/sparsegpt.py L40-116) as transcribed once, in bench/reference/protocol_reference.py
        W = sparsegpt_prune(self.layer.weight, self, sparsity, (prune_n, prune_m) if prune_n else None, blocksize, percdamp)
        del self.H
        self.layer.weight.copy_(W)  # the original: layer.weight.data = W.reshape(...).to(dtype) (L116)

    def free(self):
        self.H = None


# --------------------------------------------------------------------------------------------------- the driver

def load_ids(path, samples, seqlen, vocab):
    meta_path = path[:-4] + '.json' if path.endswith('.bin') else path + '.json'
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    samples = samples or meta.get('samples') or 128
    seqlen = seqlen or meta.get('seqlen') or 128
    raw = open(path, 'rb').read()
    need = samples * seqlen * 4
    if len(raw) < need:
        raise SystemExit(f'{path}: {len(raw)} bytes, {samples} x {seqlen} int32 ids need {need}')
    ids = torch.frombuffer(bytearray(raw[:need]), dtype=torch.int32).long().reshape(samples, seqlen)
    if int(ids.min()) < 0 or int(ids.max()) >= vocab:
        raise SystemExit(f'{path}: ids outside [0, {vocab})')
    return ids, samples, seqlen


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[1] if __doc__ else None)
    ap.add_argument('--model', required=True)
    ap.add_argument('--ids', help='int32 LE token ids, samples x seqlen (default MODEL/calibration-ids.bin)')
    ap.add_argument('--method', choices=['wanda', 'sparsegpt'], default='wanda')
    ap.add_argument('--sparsity', type=float, default=0.5)
    ap.add_argument('--nm', help='N:M pattern instead of unstructured, e.g. 2:4')
    ap.add_argument('--samples', type=int, help='default: from the ids file\'s .json, else 128')
    ap.add_argument('--seqlen', type=int, help='default: from the ids file\'s .json, else 128')
    ap.add_argument('--blocks', type=int, help='only the first K blocks')
    ap.add_argument('--threads', type=int, help='torch.set_num_threads(N)')
    ap.add_argument('--batch', type=int, default=8, help='samples per forward call (the original: 1)')
    ap.add_argument('--shape', help='label for the JSON (default: from the generator marker)')
    ap.add_argument('--json', help='also write the result JSON here')
    args = ap.parse_args()

    t_start = time.time()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = json.load(open(os.path.join(args.model, 'config.json')))
    shape = args.shape
    marker = os.path.join(args.model, '.topiary-generated.json')
    if not shape and os.path.exists(marker):
        shape = json.load(open(marker)).get('shape')
    shape = shape or os.path.basename(os.path.normpath(args.model))
    prune_n, prune_m = (int(x) for x in args.nm.split(':')) if args.nm else (0, 0)
    ck = Checkpoint(args.model)
    n_layers = cfg['num_hidden_layers']
    n_blocks = min(n_layers, args.blocks) if args.blocks else n_layers
    dim = cfg['hidden_size']
    hd = cfg.get('head_dim') or dim // cfg['num_attention_heads']
    ids, samples, seqlen = load_ids(args.ids or os.path.join(args.model, 'calibration-ids.bin'), args.samples, args.seqlen, cfg['vocab_size'])
    log(f'[torch] {shape}: {args.method} {args.nm or args.sparsity}, {samples} x {seqlen} tokens, {n_blocks}/{n_layers} blocks, '
        f'{torch.get_num_threads()} thread(s), batch {args.batch}')

    # Calibration inputs of block 0 (prepare_calibration_input, lib/prune.py L58-95: the embedding output).
    t0 = time.time()
    uniq, inverse = torch.unique(ids, sorted=True, return_inverse=True)
    rows = ck.rows('model.embed_tokens.weight', uniq.tolist())
    inps = rows[inverse]  # [samples, seqlen, dim] float32
    del rows
    outs = torch.zeros_like(inps)
    embed_seconds = time.time() - t0
    log(f'[torch] embedding: {len(uniq)} distinct rows read, {embed_seconds:.2f} s')

    # position_ids = arange(seqlen); the causal mask transformers builds for an all-ones attention_mask.
    inv = rope_inv_freq(cfg, hd)
    freqs = torch.outer(torch.arange(seqlen, dtype=torch.int64).float(), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.triu(torch.full((seqlen, seqlen), torch.finfo(torch.float32).min), diagonal=1)

    Stats = WandaStats if args.method == 'wanda' else SparseGPTStats
    blocks = []
    zeros = total = 0
    for i in range(n_blocks):
        tb = time.time()
        p = f'model.layers.{i}.'
        weights = {name: ck.tensor(p + name + '.weight') for name in LINEARS}
        weights['input_layernorm'] = ck.tensor(p + 'input_layernorm.weight')
        weights['post_attention_layernorm'] = ck.tensor(p + 'post_attention_layernorm.weight')
        layer = LlamaBlock(cfg, weights, cos, sin, mask)
        del weights
        t_load = time.time() - tb

        t1 = time.time()
        wrapped = {name: Stats(layer.linears[name]) for name in LINEARS}

        def add_batch(name):
            def tmp(_, inp, out):
                wrapped[name].add_batch(inp[0].data)
            return tmp

        handles = [layer.linears[name].register_forward_hook(add_batch(name)) for name in wrapped]
        for j in range(0, samples, args.batch):
            outs[j:j + args.batch] = layer(inps[j:j + args.batch])
        for h in handles:
            h.remove()
        t_fwd = time.time() - t1

        t2 = time.time()
        for name in LINEARS:
            wrapped[name].prune(args.sparsity, prune_n, prune_m)
            wrapped[name].free()
            w = layer.linears[name].weight
            zeros += int((w == 0).sum())
            total += w.numel()
        del wrapped
        t_prune = time.time() - t2

        t3 = time.time()
        for j in range(0, samples, args.batch):
            outs[j:j + args.batch] = layer(inps[j:j + args.batch])
        inps, outs = outs, inps
        t_refwd = time.time() - t3

        del layer
        gc.collect()
        secs = time.time() - tb
        blocks.append({'index': i, 'seconds': secs, 'loadSeconds': t_load, 'forwardSeconds': t_fwd, 'pruneSeconds': t_prune, 'reforwardSeconds': t_refwd})
        log(f'[torch] block {i + 1}/{n_blocks}: {secs:.2f} s (load {t_load:.2f}, forward+stats {t_fwd:.2f}, prune {t_prune:.2f}, '
            f're-forward {t_refwd:.2f}); rss {vm_rss_bytes() / 2**20:.0f} MB, peak {vm_hwm_bytes() / 2**20:.0f} MB')

    total_seconds = time.time() - t_start
    hwm = vm_hwm_bytes()
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = {
        'method': args.method, 'shape': shape, 'model': os.path.abspath(args.model), 'sparsity': args.sparsity, 'nm': args.nm,
        'samples': samples, 'seqlen': seqlen, 'batch': args.batch, 'nLayers': n_layers, 'blocksRun': n_blocks,
        'blocks': blocks, 'embedSeconds': embed_seconds, 'totalSeconds': total_seconds,
        'peakRssBytes': max(x for x in (hwm, ru) if x is not None), 'vmHwmBytes': hwm, 'ruMaxrssBytes': ru,
        'threads': torch.get_num_threads(), 'torch': torch.__version__,
        'measuredSparsity': zeros / total if total else None,
        'finalHiddenRms': float(inps.pow(2).mean().sqrt()),
    }
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    print(json.dumps(result), flush=True)


if __name__ == '__main__':
    main()
