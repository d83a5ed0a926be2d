#!/usr/bin/python3
"""
Protocol reference: magnitude / Wanda / SparseGPT on stories260K the way the papers' own repositories do it.

Why this exists (issue 17): bench/reference/prune_reference.py checks Topiary's *implementation* (it is fed Topiary's
own calibration windows and shares its conventions, e.g. per-row magnitude and floor(k) selections), so agreeing with it
says nothing about the *protocol*. This script is independent of Topiary: it samples, tokenizes, prunes and scores as
the original code does, and every rule below names the file and lines it follows in

  [W]  locuslab/wanda      @ 8e8fc87b4a2f9955baa7e76e64d5fce7fa8724a6  (lib/data.py, lib/prune.py, lib/eval.py,
                                                                       lib/layerwrapper.py, lib/sparsegpt.py, main.py)
  [S]  IST-DASLab/sparsegpt @ 147d2159dc4f3e9f73e47b32c04d7b3708f44436 (datautils.py, llama.py, sparsegpt.py)

The code here is written from those rules, not copied.

Run (Debian's python3-torch; no GPU, no network; 31 independent runs: 9.5 minutes with 2 workers on a shared
2-core machine, proportionally less with more cores):

  /usr/bin/python3 bench/reference/protocol_reference.py [--eval-bos 0|1] [--seeds 0,1,2,3,4] [--nsamples 128]
                   [--seqlen 256] [--true-sequential] [--methods magnitude,wanda,sparsegpt] [--jobs N] [--out FILE]

  The 31 runs (dense, magnitude once, wanda/sparsegpt x 3 patterns x 5 seeds) go to N worker processes
  (default: one per available core, one torch thread each).

  -> bench/reference/outputs/protocol_reference.json (committed) and a summary table on stdout.
  Perplexity is always computed both without and with a BOS in front of the eval text; --eval-bos picks the
  headline protocol (default 0: no BOS, Topiary's default): the table shows it first, and the JSON names it in
  `headline` and copies its values/min/max/mean to the top level of every run (and `dense.ppl`).

  JSON: settings (files + sha256, samples, seqlen, eval seqlen, torch, the originals' commits and the rule -> lines
  map), dense {noBos, bos, ppl}, windowStarts {seed: [128 start offsets into [BOS] + encode(calibration.txt)]},
  runs {"magnitude-50" | "wanda-2:4" | ...: {perSeed {seed: {noBos, bos}}, noBos {values, min, max, mean}, bos {...},
  values/min/max/mean (headline), measuredSparsity {seed: fraction}, prefix {windows, values/min/max/mean: the
  headline protocol over only the first 40 eval windows, which the fast test scores}}}; dense also has
  noBosPrefix / bosPrefix.

Rules (what the originals do; where this reference must depart, it says so):

 Data / tokenizer
  - The calibration text is ONE plain text file (bench/reference/fixtures/tinystories-split/calibration.txt, read as
    UTF-8, CRLF -> LF). The originals join a dataset's lines and tokenize the joined text once with the HF LLaMA
    tokenizer ([W] lib/data.py:25, [S] datautils.py:32), which puts a single BOS in front of the whole text; the
    file's text is our joined text, so ids = [BOS=1] + encode(text).
    NB: Wanda's prune_wanda / prune_sparsegpt actually calibrate on C4 ([W] lib/prune.py:132, :217 ->
    lib/data.py:41-66, [S] llama.py README command `c4`): pick a random *document* longer than seqlen, tokenize it
    alone (BOS first), then a random window inside it. With one continuous text the wikitext2 loader is the
    applicable rule, which is what we follow.
  - encode = llama2.c's encoder over assets/models/stories260K/tok512.bin (dummy-prefix space, per-character pieces
    or byte fallback, merge highest-score pair, leftmost on ties), the independent Python implementation in
    bench/reference/eval_reference.py (Llama2cTokenizer, heap-based; checked here against llama2.c's O(n^2) loop on a
    few thousand characters at start-up).
  - Sampling ([W] lib/data.py:29-37, [S] datautils.py:35-43): random.seed(seed) (Python's `random`), then for each
    of nsamples: i = random.randint(0, N - seqlen - 1); window = ids[i:i + seqlen]. No other RNG touches sampling
    ([W] main.py:46-47 seeds numpy/torch, unused by it).
  - Calibration size: 128 samples ([W] main.py:32, [S] llama.py:261) x 256 tokens. NB: the originals use
    seqlen = the model's context for calibration too ([W] main.py:25 + lib/prune.py:132; [S] llama.py:26, :318); here
    the brief fixes 256 (half of stories260K's 512) so that the sample count x length matches Topiary's defaults.
  - Evaluation ([W] lib/eval.py:83-129, [S] llama.py:151-241): the eval text (heldout.txt) tokenized once,
    nsamples = N // seqlen with seqlen = the model's context 512 (tail dropped), window i = ids[i*L:(i+1)*L], every
    token but the window's first scored, loss = CrossEntropyLoss mean per window (float32), nll = loss * L,
    ppl = exp(sum nll / (nsamples * L)). The originals' eval text gets the tokenizer's BOS ([W] lib/data.py:26,
    [S] datautils.py:33): that is --eval-bos 1; Topiary's default is no BOS (--eval-bos 0). Both are recorded.

 Model
  - assets/models/stories260K-hf (F32) through the HF-equation Llama of bench/reference/prune_reference.py (class
    Llama: RMSNorm, rotate-half RoPE, GQA, SwiGLU, tied head), float32. The originals load fp16 weights
    ([W] main.py:19, [S] llama.py:25 torch_dtype='auto'); this model is stored in float32 and runs in float32.

 Sequential layer-wise procedure ([W] lib/prune.py:127-210 prune_wanda, :214-300 prune_sparsegpt;
 [S] llama.py:31-147 llama_sequential)
  - embed all calibration windows, capture block 0's inputs ([W] lib/prune.py:58-95, [S] llama.py:42-65);
  - per block: forward hooks on every nn.Linear of the block (q,k,v,o,gate,up,down; find_layers [W] prune.py:11-30),
    run the block on each sample with its weights still unpruned, accumulating statistics one sample at a time
    ([W] prune.py:150-161, :270-281; [S] llama.py:108-120). ALL sublayers are calibrated in that one pass and
    then all pruned ([W] prune.py:163-202, :283-289; [S] llama.py:90 `sequential = [list(full.keys())]` unless
    --true-sequential, default off [S] llama.py:298-302). With --true-sequential this script follows [S]
    llama.py:82-88 instead: groups [k,v,q], [o], [up,gate], [down], each calibrated on the block with the earlier
    groups already pruned;
  - recompute the pruned block's outputs as the next block's inputs ([W] prune.py:204-207, :291-297;
    [S] llama.py:135-143).
  Here the block runs on 32 samples per call and the per-sample accumulation loops over them in sample order
  (a block has no cross-sample interaction, so this equals batch-1 calls up to float round-off of the products).

 Magnitude ([W] lib/prune.py:105-125 prune_magnitude; not sequential, no calibration, so one result for all seeds)
  - unstructured: ONE threshold per weight matrix: thresh = sort(|W|.flatten())[int(numel * s)],
    pruned = |W| <= thresh  (so int(numel*s) + 1 weights, more on ties) -- lines 122-123;
  - N:M: for every column ii with ii % M == 0: the N smallest |W| of columns ii:ii+M of each row (torch.topk,
    largest=False) -- lines 116-120. With 172 input columns and 4:8 the last group has 4 columns and topk(4) prunes
    all four (Topiary's rule would prune floor(4*4/8) = 2).

 Wanda ([W] lib/prune.py:166-202, lib/layerwrapper.py:22-35)
  - scaler_row: per hooked call (one sample, tmp = 1 = the batch dimension, not tokens):
    scaler_row *= n/(n+1); n += 1; scaler_row += ||X_j||_2^2 / n  in float32 (torch.norm over the sample's tokens)
    -- a running mean over samples of the per-sample sum of squares (layerwrapper.py:31-35);
  - metric = |W| * sqrt(scaler_row) (prune.py:166);
  - unstructured: per output row, stable sort, prune the first int(cols * s) (prune.py:176, :199-200);
  - N:M: per row, every M columns the N smallest metric by torch.topk(largest=False) (prune.py:171-174).

 SparseGPT ([S] sparsegpt.py:32-142 == [W] lib/sparsegpt.py:27-116; called with blocksize 128, percdamp 0.01:
 [W] prune.py:288, [S] llama.py:126-132 defaults :264-277)
  - H accumulated per sample in float32: H *= n/(n+1); n += 1; x = sqrt(2/n) * X^T; H += x x^T (sparsegpt.py:43-46);
  - everything below in float32, as the original (W.float(), H float32; it runs on the GPU with TF32 disabled,
    sparsegpt.py:13-14 -- here float32 on the CPU);
  - dead inputs: diag(H) == 0 -> H_jj = 1, W[:, j] = 0 (:66-68); damp = 0.01 * mean(diag H) added to the diagonal
    (:72-74); Hinv = upper Cholesky factor of (chol -> cholesky_inverse) (:75-78);
  - blocks of 128 columns; unstructured: per block, tmp = W1^2 / diag(Hinv1)^2, thresh = sort(tmp.flatten())
    [int(numel * s)], pruned = tmp <= thresh (:96-98; again int(numel*s) + 1 per block);
    N:M: at every column i of the block with i % M == 0, the N smallest of W1[:, i:i+M]^2 / diag^2 per row by topk,
    on the weights as updated so far (:106-108);
  - per column: q = w with pruned entries zeroed, err = (w - q)/d, W1[:, i:] -= err x Hinv1[i, i:] (:110-123);
    after the block W[:, i1:i2] = Q1, W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:] (:125-128).

 Sparsity check ([W] lib/prune.py:32-56 check_sparsity): fraction of exact zeros over the blocks' linear weights.
"""
import hashlib
import importlib.util
import json
import math
import os
import platform
import random
import re
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
SPLIT = os.path.join(HERE, 'fixtures', 'tinystories-split')
CALIB_TEXT = os.path.join(SPLIT, 'calibration.txt')
EVAL_TEXT = os.path.join(SPLIT, 'heldout.txt')
TOKENIZER = os.path.join(REPO, 'assets', 'models', 'stories260K', 'tok512.bin')
MODEL_DIR = os.path.join(REPO, 'assets', 'models', 'stories260K-hf')
OUT = os.path.join(HERE, 'outputs', 'protocol_reference.json')
BOS = 1
KINDS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down']
# [S] llama.py:83-88 (--true-sequential): k, v, q / o / up, gate / down
TRUE_SEQUENTIAL_GROUPS = [['k', 'v', 'q'], ['o'], ['up', 'gate'], ['down']]
WANDA_COMMIT = '8e8fc87b4a2f9955baa7e76e64d5fce7fa8724a6'
SPARSEGPT_COMMIT = '147d2159dc4f3e9f73e47b32c04d7b3708f44436'


def load_module(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, name + '.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# eval_reference.py sets torch's default dtype to float64 at import; restore float32 (the originals' compute type).
_er = load_module('eval_reference')
torch.set_default_dtype(torch.float32)
_pr = load_module('prune_reference')
torch.set_default_dtype(torch.float32)
torch.set_grad_enabled(False)


class Llama(_pr.Llama):
    """prune_reference.py's HF-equation Llama (float32), with the attention evaluated per (sequence, kv head) on
    cache-sized tiles: the same equations (scores = q k^T / sqrt(hd) + causal mask, softmax, @ v; the query heads of
    one kv group share its k, v), just ~10x faster on a CPU than one [b, heads, t, t] tensor."""

    def attention(self, q, k, v, tile=128):  # q [b, heads, t, hd], k/v [b, kv, t, hd]
        b, _, t, hd = q.shape
        rep = self.n_heads // self.n_kv
        if getattr(self, '_mask', None) is None or self._mask.shape[0] != t:
            self._mask = torch.zeros(t, t).masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float('-inf'))
        out = torch.empty_like(q)
        scale = 1.0 / math.sqrt(hd)
        for c0 in range(0, t, tile):  # query rows c0:c1 attend to keys 0:c1 only (the rest is masked anyway)
            c1 = min(c0 + tile, t)
            mask = self._mask[c0:c1, :c1].repeat(rep, 1)
            for s in range(b):
                for g in range(self.n_kv):
                    qg = q[s, g * rep:(g + 1) * rep, c0:c1].reshape(rep * (c1 - c0), hd)
                    att = torch.addmm(mask, qg, k[s, g, :c1].t(), alpha=scale).softmax(-1)
                    out[s, g * rep:(g + 1) * rep, c0:c1] = (att @ v[s, g, :c1]).reshape(rep, c1 - c0, hd)
        return out


# ------------------------------------------------------------------------------------------------------- data

def read_text(path):
    with open(path, 'rb') as f:
        return f.read().decode('utf-8').replace('\r\n', '\n')


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def ids_sha(ids):
    return hashlib.sha256(b''.join(int(x).to_bytes(4, 'little') for x in ids)).hexdigest()


def tokenizer():
    tok = _er.Llama2cTokenizer(TOKENIZER)
    # the heap-based encoder must give llama2.c's ids: compare with the O(n^2) loop on a few thousand characters
    text = read_text(CALIB_TEXT)
    for at in (0, len(text) // 2):
        piece = text[at:at + 3000]
        assert tok.encode(piece, bos=False) == _er.naive_merge_check(tok, piece), f'heap encoder differs at {at}'
    return tok


def sample_windows(ids, nsamples, seqlen, seed):
    """[W] lib/data.py:29-37 / [S] datautils.py:35-43: Python's random, randint(0, N - seqlen - 1), ids[i:i+seqlen]."""
    random.seed(seed)
    starts = []
    for _ in range(nsamples):
        i = random.randint(0, len(ids) - seqlen - 1)
        starts.append(i)
    return starts, [ids[i:i + seqlen] for i in starts]


# -------------------------------------------------------------------------------------------------- statistics

class WandaStats:
    """[W] lib/layerwrapper.py:10-35 (WrappedGPT.add_batch), one call per sample."""

    def __init__(self, cols):
        self.scaler_row = torch.zeros(cols, dtype=torch.float32)
        self.nsamples = 0

    def add_batch(self, x):  # x [tokens, cols]: one sample's inputs (batch dimension 1 -> tmp = 1)
        tmp = 1
        inp = x.t()
        self.scaler_row *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = inp.type(torch.float32)
        self.scaler_row += torch.norm(inp, p=2, dim=1) ** 2 / self.nsamples


class SparseGPTStats:
    """[S] sparsegpt.py:19-46 (SparseGPT.__init__/add_batch), one call per sample, H float32."""

    def __init__(self, cols):
        self.H = torch.zeros((cols, cols), dtype=torch.float32)
        self.nsamples = 0

    def add_batch(self, x):
        tmp = 1
        inp = x.t()
        self.H *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = math.sqrt(2 / self.nsamples) * inp.float()
        self.H += inp.matmul(inp.t())


def block_forward(model, i, hidden, kinds, make_stats, seqlen):
    """Run block i on every sample (chunks of 32, sample order kept); with kinds, hook those linears and feed each
    sample's input to its own accumulator, as the originals' forward hooks do (per sample, in order)."""
    stats = {k: None for k in kinds}

    def hook(layer, kind, x2d):
        if layer != i or kind not in stats:
            return
        x = x2d.reshape(-1, seqlen, x2d.shape[-1])
        if stats[kind] is None:
            stats[kind] = make_stats(x.shape[-1])
        for s in range(x.shape[0]):
            stats[kind].add_batch(x[s])

    model.hook = hook if kinds else None
    outs = [model.block(i, h) for h in hidden]
    model.hook = None
    return outs, stats


# ------------------------------------------------------------------------------------------------------ pruning

def nm_mask(metric, n, m):
    """[W] lib/prune.py:116-120 / :171-174: for ii % m == 0, topk(n, largest=False) of columns ii:ii+m per row."""
    mask = torch.zeros_like(metric) == 1
    for ii in range(metric.shape[1]):
        if ii % m == 0:
            tmp = metric[:, ii:(ii + m)].float()
            mask.scatter_(1, ii + torch.topk(tmp, n, dim=1, largest=False)[1], True)
    return mask


def magnitude_prune(W, sparsity, pattern):
    """[W] lib/prune.py:105-125. Returns the pruned weight (a new tensor)."""
    W = W.clone()
    metric = torch.abs(W)
    if pattern is not None:
        mask = nm_mask(metric, *pattern)
    else:
        thresh = torch.sort(metric.flatten())[0][int(W.numel() * sparsity)]
        mask = metric <= thresh
    W[mask] = 0
    return W


def wanda_prune(W, stats, sparsity, pattern):
    """[W] lib/prune.py:166-202 (use_variant off)."""
    W = W.clone()
    metric = torch.abs(W) * torch.sqrt(stats.scaler_row.reshape((1, -1)))
    if pattern is not None:
        mask = nm_mask(metric, *pattern)
    else:
        mask = torch.zeros_like(metric) == 1
        sort_res = torch.sort(metric, dim=-1, stable=True)
        indices = sort_res[1][:, :int(metric.shape[1] * sparsity)]
        mask.scatter_(1, indices, True)
    W[mask] = 0
    return W


def sparsegpt_prune(W, stats, sparsity, pattern, blocksize=128, percdamp=0.01):
    """[S] sparsegpt.py:48-142 fasterprune, float32 like the original (no quantizer, no Losses bookkeeping)."""
    prunen, prunem = pattern if pattern is not None else (0, 0)
    W = W.clone().float()
    rows, columns = W.shape
    H = stats.H
    dead = torch.diag(H) == 0                                            # :66-68
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = percdamp * torch.mean(torch.diag(H))                           # :72-74
    diag = torch.arange(columns)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)                                          # :75-78
    H = torch.cholesky_inverse(H)
    H = torch.linalg.cholesky(H, upper=True)
    Hinv = H
    for i1 in range(0, columns, blocksize):                               # :82-128
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        if prunen == 0:
            tmp = W1 ** 2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
            thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
            mask1 = tmp <= thresh
        else:
            mask1 = torch.zeros_like(W1) == 1
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if prunen != 0 and i % prunem == 0:
                tmp = W1[:, i:(i + prunem)] ** 2 / (torch.diag(Hinv1)[i:(i + prunem)].reshape((1, -1))) ** 2
                mask1.scatter_(1, i + torch.topk(tmp, prunen, dim=1, largest=False)[1], True)
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W


def prune_sequential(model, windows, method, sparsity, pattern, true_sequential=False):
    """[W] lib/prune.py:127-210 / :214-300, [S] llama.py:31-147 (see the header)."""
    seqlen = len(windows[0])
    ids = torch.tensor(windows, dtype=torch.long)
    hidden = [model.embed(ids[s:s + 32]) for s in range(0, len(windows), 32)]  # block 0's inputs
    make = WandaStats if method == 'wanda' else SparseGPTStats
    groups = TRUE_SEQUENTIAL_GROUPS if (true_sequential and method == 'sparsegpt') else [KINDS]
    for i in range(model.n_layers):
        for kinds in groups:
            _, stats = block_forward(model, i, hidden, kinds, make, seqlen)  # unpruned (group) weights
            for k in kinds:
                name = model.pname(i, k)
                if method == 'wanda':
                    model.w[name] = wanda_prune(model.w[name], stats[k], sparsity, pattern)
                else:
                    model.w[name] = sparsegpt_prune(model.w[name], stats[k], sparsity, pattern).contiguous()
        hidden, _ = block_forward(model, i, hidden, [], None, seqlen)       # pruned block -> next inputs


def prune_magnitude_all(model, sparsity, pattern):
    for i in range(model.n_layers):
        for k in KINDS:
            name = model.pname(i, k)
            model.w[name] = magnitude_prune(model.w[name], sparsity, pattern)


def measured_sparsity(model):
    """[W] lib/prune.py:32-56: zeros over all linear weights of the blocks."""
    zeros = total = 0
    for i in range(model.n_layers):
        for k in KINDS:
            W = model.w[model.pname(i, k)]
            zeros += int((W == 0).sum())
            total += W.numel()
    return zeros / total


# --------------------------------------------------------------------------------------------------- perplexity

# The fast test (test/protocol) scores only the first PREFIX_WINDOWS windows of the held-out text; the same prefix
# is summarised here. The full-file numbers stay the headline (bench/prune/protocol.mjs compares those).
PREFIX_WINDOWS = 40


def perplexity(model, ids, seqlen, prefix=PREFIX_WINDOWS):
    """[S] llama.py:151-241 / [W] lib/eval.py:83-129: non-overlapping windows, tail dropped, per-window mean CE.
    Returns (ppl, nsamples, ppl over the first `prefix` windows)."""
    test = torch.tensor(ids, dtype=torch.long)
    nsamples = test.numel() // seqlen
    loss_fct = torch.nn.CrossEntropyLoss()
    nlls = []
    for s in range(0, nsamples, 8):
        batch = torch.stack([test[j * seqlen:(j + 1) * seqlen] for j in range(s, min(s + 8, nsamples))])
        logits = model.logits(batch)
        for b in range(batch.shape[0]):
            shift_logits = logits[b, :-1, :].contiguous()
            shift_labels = batch[b, 1:]
            loss = loss_fct(shift_logits.view(-1, shift_logits.size(-1)), shift_labels.view(-1))
            nlls.append(loss.float() * seqlen)
    head = min(prefix, nsamples)
    return (float(torch.exp(torch.stack(nlls).sum() / (nsamples * seqlen))), nsamples,
            float(torch.exp(torch.stack(nlls[:head]).sum() / (head * seqlen))))


# ------------------------------------------------------------------------------------------------------- driver

# run names: method + '50' (unstructured 50 %) or the N:M pattern, as test/protocol/protocol-lib.mjs names its cases
METHODS = [('magnitude', '50', 0.5, None), ('magnitude', '2:4', 0.5, (2, 4)), ('magnitude', '4:8', 0.5, (4, 8)),
           ('wanda', '50', 0.5, None), ('wanda', '2:4', 0.5, (2, 4)), ('wanda', '4:8', 0.5, (4, 8)),
           ('sparsegpt', '50', 0.5, None), ('sparsegpt', '2:4', 0.5, (2, 4)), ('sparsegpt', '4:8', 0.5, (4, 8))]


def arg(flag, default):
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv else default


_BASE = None


def fresh():
    """A model with its own copy of the dense weights (loaded once per process)."""
    global _BASE
    if _BASE is None:
        _BASE = Llama(MODEL_DIR)
    copy = Llama.__new__(Llama)
    copy.__dict__.update(_BASE.__dict__)
    copy.w = {k: v.clone() for k, v in _BASE.w.items()}
    copy.hook = None
    return copy


def run_one(job):
    """One pruning run + both perplexities; runs in a worker process (or in this one with --jobs 1)."""
    method, sp, pat, windows, true_seq, evals, eval_len, threads = job
    if threads:
        torch.set_num_threads(threads)
    t = time.time()
    model = fresh()
    if method == 'magnitude':
        prune_magnitude_all(model, sp, pat)
    elif method != 'dense':
        prune_sequential(model, windows, method, sp, pat, true_seq)
    scored = {k: perplexity(model, ids, eval_len) for k, ids in evals.items()}
    ppl = {k: v[0] for k, v in scored.items()}
    ppl.update({f'{k}Prefix': v[2] for k, v in scored.items()})
    return ppl, measured_sparsity(model), time.time() - t


def summary(values):
    return {'values': values, 'min': min(values), 'max': max(values), 'mean': sum(values) / len(values)}


def main():
    headline = 'bos' if arg('--eval-bos', '0') == '1' else 'noBos'
    seeds = [int(s) for s in arg('--seeds', '0,1,2,3,4').split(',')]
    nsamples = int(arg('--nsamples', '128'))
    seqlen = int(arg('--seqlen', '256'))
    true_seq = '--true-sequential' in sys.argv
    out_path = arg('--out', OUT)
    jobs = int(arg('--jobs', str(len(os.sched_getaffinity(0)))))
    t0 = time.time()

    tok = tokenizer()
    calib_ids = [BOS] + tok.encode(read_text(CALIB_TEXT), bos=False)
    eval_body = tok.encode(read_text(EVAL_TEXT), bos=False)
    evals = {'noBos': eval_body, 'bos': [BOS] + eval_body}
    eval_len = json.load(open(os.path.join(MODEL_DIR, 'config.json')))['max_position_embeddings']  # [W] main.py:25
    if '--smoke' in sys.argv:  # a quick check of the script itself: 2 eval windows; never for the committed file
        evals = {k: v[:2 * eval_len] for k, v in evals.items()}
    print(f'tokenized: calibration {len(calib_ids)} ids, eval {len(eval_body)} ids ({time.time() - t0:.1f}s); '
          f'{jobs} worker(s)', file=sys.stderr)
    windows = {s: sample_windows(calib_ids, nsamples, seqlen, s) for s in seeds}

    # one job per (method, pattern, seed); magnitude needs no calibration: one job, recorded for every seed
    tasks = [('dense', 'dense', 0.0, None, None)]
    methods = [m for m in METHODS if m[0] in arg('--methods', 'magnitude,wanda,sparsegpt').split(',')]
    for method, label, sp, pat in methods:
        for s in ([None] if method == 'magnitude' else seeds):
            tasks.append((f'{method}-{label}', method, sp, pat, s))
    threads = 1 if jobs > 1 else 0
    payload = [(m, sp, pat, None if s is None else windows[s][1], true_seq, evals, eval_len, threads) for _, m, sp, pat, s in tasks]
    results = {}
    if jobs > 1:
        import multiprocessing as mp
        with mp.get_context('spawn').Pool(jobs) as pool:
            for (key, _, _, _, s), res in zip(tasks, pool.imap(run_one, payload)):
                results[(key, s)] = res
                print(f'  {key:16s} seed {s}  noBos {res[0]["noBos"]:.4f}  bos {res[0]["bos"]:.4f}  ({res[2]:.1f}s)', file=sys.stderr)
    else:
        for (key, _, _, _, s), job in zip(tasks, payload):
            res = results[(key, s)] = run_one(job)
            print(f'  {key:16s} seed {s}  noBos {res[0]["noBos"]:.4f}  bos {res[0]["bos"]:.4f}  ({res[2]:.1f}s)', file=sys.stderr)

    dense = dict(results[('dense', None)][0])
    runs = {}
    for method, label, sp, pat in methods:
        key = f'{method}-{label}'
        get = (lambda s: results[(key, None)]) if method == 'magnitude' else (lambda s: results[(key, s)])
        per_seed = {str(s): get(s)[0] for s in seeds}
        runs[key] = {
            'method': method, 'sparsity': sp, 'pattern': None if pat is None else f'{pat[0]}:{pat[1]}',
            'calibrated': method != 'magnitude',
            'perSeed': per_seed, 'measuredSparsity': {str(s): get(s)[1] for s in seeds},
            'noBos': summary([per_seed[str(s)]['noBos'] for s in seeds]),
            'bos': summary([per_seed[str(s)]['bos'] for s in seeds]),
            'prefix': {'windows': PREFIX_WINDOWS, **summary([per_seed[str(s)][f'{headline}Prefix'] for s in seeds])},
        }
        runs[key].update(runs[key][headline])  # values/min/max/mean of the headline protocol at the top level

    files = {os.path.relpath(p, REPO): sha256(p) for p in (CALIB_TEXT, EVAL_TEXT, TOKENIZER,
                                                             os.path.join(MODEL_DIR, 'model.safetensors'),
                                                             os.path.join(MODEL_DIR, 'config.json'))}
    result = {
        'produced_by': ('bench/reference/protocol_reference.py ' + ' '.join(sys.argv[1:])).strip(),
        'headline': headline,
        'smoke': '--smoke' in sys.argv,
        'settings': {
            'files': files,
            'originals': {'locuslab/wanda': WANDA_COMMIT, 'IST-DASLab/sparsegpt': SPARSEGPT_COMMIT},
            'nsamples': nsamples, 'seqlen': seqlen, 'evalSeqlen': eval_len, 'seeds': seeds,
            'trueSequential': true_seq, 'blocksize': 128, 'percdamp': 0.01, 'dtype': 'float32',
            'torch': torch.__version__, 'python': platform.python_version(),
            'calibrationIds': {'count': len(calib_ids), 'sha256': ids_sha(calib_ids), 'head': calib_ids[:16]},
            'evalIds': {k: {'count': len(v), 'sha256': ids_sha(v), 'windows': len(v) // eval_len} for k, v in evals.items()},
            'rules': {
                'tokenize': 'ids = [BOS] + llama2c_encode(text): one BOS for the whole joined text '
                            '(wanda lib/data.py:25, sparsegpt datautils.py:32; HF LLaMA tokenizer adds BOS)',
                'sampling': 'random.seed(seed); i = random.randint(0, N - seqlen - 1); ids[i:i+seqlen] '
                            '(wanda lib/data.py:29-37, sparsegpt datautils.py:35-43)',
                'sequential': 'calibrate all 7 linears of a block in one pass on unpruned block weights, prune all, '
                              'recompute outputs (wanda lib/prune.py:127-210, :214-300; sparsegpt llama.py:31-147, '
                              'groups :82-90, true-sequential off by default :298-302)',
                'magnitude': 'unstructured: one threshold per matrix, sort(|W|)[int(numel*s)], prune |W| <= thresh; '
                             'N:M: topk smallest per M-column group (wanda lib/prune.py:105-125)',
                'wanda': 'scaler_row running mean over samples of per-sample sum x^2 (layerwrapper.py:22-35); '
                         '|W|*sqrt(scaler_row); per-row stable sort, first int(cols*s) (prune.py:166-202)',
                'sparsegpt': 'H running 2/n sum XX^T float32 (sparsegpt.py:32-46); dead, damp 0.01*mean diag, '
                             'chol->cholesky_inverse->chol upper; blocks 128; unstructured thresh sort[int(numel*s)], '
                             'prune <= thresh; N:M topk per M cols on updated W; lazy batch updates, float32 '
                             '(sparsegpt.py:48-142)',
                'perplexity': 'non-overlapping windows of the context (512), nsamples = N // 512, tail dropped, '
                              'per-window mean CE * seqlen, exp(sum / (nsamples*seqlen)) (sparsegpt llama.py:151-241, '
                              'wanda lib/eval.py:83-129); eval text with BOS (originals) and without (Topiary default)',
            },
        },
        'dense': {**dense, 'ppl': dense[headline]},
        'windowStarts': {str(s): windows[s][0] for s in seeds},
        'runs': runs,
        'seconds': time.time() - t0,
    }
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    text = json.dumps(result, indent=1)
    # lists of numbers on one line each
    text = re.sub(r'\[\s+([-0-9.e,\s]+?)\s+\]', lambda m: '[' + ', '.join(x.strip() for x in m.group(1).split(',')) + ']', text)
    with open(out_path, 'w') as f:
        f.write(text + '\n')

    other = 'bos' if headline == 'noBos' else 'noBos'
    print(f'\nstories260K, calibration {nsamples} x {seqlen} from calibration.txt, eval heldout.txt windows of {eval_len}')
    print(f'perplexity, eval {"with" if headline == "bos" else "without"} BOS (other protocol in brackets: min..max)\n')
    print(f'{"run":16s} ' + ' '.join(f'seed {s:<3d}' for s in seeds) + '      min      max     mean   sparsity   [other min..max]')
    print(f'{"dense":16s} ' + ' '.join(f'{dense[headline]:8.4f}' for _ in seeds) + f' {dense[headline]:8.4f} {dense[headline]:8.4f} {dense[headline]:8.4f}'
          + f'   {0:8.4f}   [{dense[other]:.4f}]')
    for key, r in runs.items():
        h, o = r[headline], r[other]
        print(f'{key:16s} ' + ' '.join(f'{v:8.4f}' for v in h['values']) + f' {h["min"]:8.4f} {h["max"]:8.4f} {h["mean"]:8.4f}'
              + f'   {r["measuredSparsity"][str(seeds[0])]:8.4f}   [{o["min"]:.4f}..{o["max"]:.4f}]')
    print(f'\nwrote {os.path.relpath(out_path, REPO)} in {time.time() - t0:.0f}s')


if __name__ == '__main__':
    main()
