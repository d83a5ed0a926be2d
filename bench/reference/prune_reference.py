#!/usr/bin/python3
"""
PyTorch reference for Topiary's post-training pruners (magnitude, Wanda, SparseGPT, OWL ratios), written from the
papers' equations (see /work/shared/design/ALGORITHMS.md). Run with Debian's python3-torch:

  /usr/bin/python3 bench/reference/prune_reference.py unit
      -> bench/reference/outputs/prune_unit.json: per-layer cases on real stories260K weights and real activations
         (Wanda masks, SparseGPT reconstructions, OWL ratios) for the unit tests of @topiary/prune-core.
  /usr/bin/python3 bench/reference/prune_reference.py e2e [--fixture F] [--out F]
      -> bench/reference/outputs/prune_e2e.json: the full sequential procedure on the same calibration windows and
         eval ids the TypeScript side dumped (bench/reference/fixtures/prune_calibration.json): masks (packed bits)
         and perplexities for every method/pattern/OWL combination, and for SparseGPT the reconstructed weights
         (`keptWeights`: each layer's kept entries in row-major order, float32 base64; pruned entries are 0).
         This is an implementation check (Topiary's windows and conventions); the protocol of the original
         repositories is bench/reference/protocol_reference.py.
  /usr/bin/python3 bench/reference/prune_reference.py bench --method wanda|sparsegpt [--fixture F] [--model DIR]
      -> one JSON line with wall time and peak RSS (used by bench/prune).

Conventions shared with the TypeScript side (so masks can be compared bit for bit):
- W is [out, in]; scores are float32; "lowest k" ties are broken by ascending index (stable sort).
- Wanda score |W_ij| * float32(sqrt(sum_t x_tj^2)) in float32.
- N:M: per row, in every group of M consecutive input columns the N lowest are pruned; a trailing partial group
  of r < M columns prunes floor(N*r/M) (stories260K's FFN width 172 is not a multiple of 8).
- SparseGPT runs in float64 (H, its factorisation and the weight updates), blocks of 128 columns, unstructured
  mask per block over all rows: the floor(rows*cols_in_block*s) lowest w^2/U_jj^2.
- OWL: per block, the outlier ratio of the Wanda scores of all its linear layers (> M x their mean), min-max
  scaled to [0, 2*lambda], shifted so that the mean keep-ratio is 1 - target.
"""
import base64
import json
import math
import os
import resource
import struct
import sys
import time

import numpy as np
import torch

torch.set_grad_enabled(False)
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
MODEL_DIR = os.path.join(REPO, 'assets', 'models', 'stories260K-hf')
GOLDEN = os.path.join(REPO, 'assets', 'models', 'stories260K', 'stories260K.golden.json')
OUT_DIR = os.path.join(HERE, 'outputs')
FIXTURE = os.path.join(HERE, 'fixtures', 'prune_calibration.json')
KINDS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down']
PARAM = {
    'q': 'self_attn.q_proj', 'k': 'self_attn.k_proj', 'v': 'self_attn.v_proj', 'o': 'self_attn.o_proj',
    'gate': 'mlp.gate_proj', 'up': 'mlp.up_proj', 'down': 'mlp.down_proj',
}


# ----------------------------------------------------------------------------------------------- model (HF Llama)

def load_safetensors(path):
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == '__metadata__':
            continue
        assert meta['dtype'] == 'F32', meta
        a, b = meta['data_offsets']
        out[name] = torch.from_numpy(np.frombuffer(raw[base + a:base + b], dtype='<f4').copy()).reshape(meta['shape'])
    return out


class Llama:
    def __init__(self, model_dir=MODEL_DIR):
        cfg = json.load(open(os.path.join(model_dir, 'config.json')))
        self.cfg = cfg
        self.w = load_safetensors(os.path.join(model_dir, 'model.safetensors'))
        self.dim = cfg['hidden_size']
        self.n_layers = cfg['num_hidden_layers']
        self.n_heads = cfg['num_attention_heads']
        self.n_kv = cfg['num_key_value_heads']
        self.hd = self.dim // self.n_heads
        self.eps = cfg['rms_norm_eps']
        self.theta = cfg.get('rope_theta', 10000.0)
        self.hook = None  # fn(layer, kind, x2d)

    def pname(self, layer, kind):
        return f'model.layers.{layer}.{PARAM[kind]}.weight'

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def linear(self, layer, kind, x):
        if self.hook is not None:
            self.hook(layer, kind, x.reshape(-1, x.shape[-1]))
        return x @ self.w[self.pname(layer, kind)].t()

    def rope(self, x):  # x [b, heads, t, hd], rotate-half convention
        t = x.shape[2]
        inv = 1.0 / (self.theta ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd))
        freqs = torch.outer(torch.arange(t, dtype=torch.float32), inv)
        emb = torch.cat([freqs, freqs], -1)
        cos, sin = emb.cos(), emb.sin()
        x1, x2 = x[..., : self.hd // 2], x[..., self.hd // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    def embed(self, ids):
        return self.w['model.embed_tokens.weight'][ids]

    def attention(self, q, k, v):  # q [b, heads, t, hd], k/v [b, kv, t, hd]: causal GQA attention
        t = q.shape[2]
        rep = self.n_heads // self.n_kv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool), 1)
        return att.masked_fill(causal, float('-inf')).softmax(-1) @ v

    def block(self, i, h):
        b, t, _ = h.shape
        x = self.rms(h, self.w[f'model.layers.{i}.input_layernorm.weight'])
        q = self.linear(i, 'q', x).view(b, t, self.n_heads, self.hd).transpose(1, 2)
        k = self.linear(i, 'k', x).view(b, t, self.n_kv, self.hd).transpose(1, 2)
        v = self.linear(i, 'v', x).view(b, t, self.n_kv, self.hd).transpose(1, 2)
        q, k = self.rope(q), self.rope(k)
        y = self.attention(q, k, v).transpose(1, 2).reshape(b, t, self.dim)
        h = h + self.linear(i, 'o', y)
        x = self.rms(h, self.w[f'model.layers.{i}.post_attention_layernorm.weight'])
        g = self.linear(i, 'gate', x)
        u = self.linear(i, 'up', x)
        return h + self.linear(i, 'down', torch.nn.functional.silu(g) * u)

    def logits(self, ids):
        h = self.embed(ids)
        for i in range(self.n_layers):
            h = self.block(i, h)
        h = self.rms(h, self.w['model.norm.weight'])
        head = self.w.get('lm_head.weight', self.w['model.embed_tokens.weight'])
        return h @ head.t()

    def perplexity(self, windows):
        """exp(mean next-token NLL) over non-overlapping windows (each predicts ids[1:] from ids[:-1])."""
        total, count = 0.0, 0
        for s in range(0, len(windows), 8):
            ids = torch.tensor(windows[s:s + 8], dtype=torch.long)
            logp = self.logits(ids[:, :-1]).log_softmax(-1)
            nll = -logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
            total += float(nll.double().sum())
            count += nll.numel()
        return math.exp(total / count)


# ----------------------------------------------------------------------------------------------------- masks

def lowest_keep(scores, count):
    """Keep-mask zeroing the `count` lowest of a flat float32 tensor; ties by index."""
    flat = scores.reshape(-1)
    order = np.argsort(flat.numpy(), kind='stable')
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[torch.from_numpy(order[:count])] = False
    return keep.reshape(scores.shape)


def rowwise_keep(scores, sparsity):
    rows, cols = scores.shape
    k = int(math.floor(cols * sparsity))
    order = np.argsort(scores.numpy(), axis=1, kind='stable')
    keep = torch.ones(rows, cols, dtype=torch.bool)
    if k > 0:
        keep.scatter_(1, torch.from_numpy(order[:, :k].copy()), False)
    return keep


def nm_prune_count(n, m, r):
    return n if r == m else (n * r) // m


def nm_keep(scores, n, m):
    rows, cols = scores.shape
    keep = torch.ones(rows, cols, dtype=torch.bool)
    for g in range(0, cols, m):
        r = min(m, cols - g)
        k = nm_prune_count(n, m, r)
        if k == 0:
            continue
        order = np.argsort(scores[:, g:g + r].numpy(), axis=1, kind='stable')
        keep[:, g:g + r].scatter_(1, torch.from_numpy(order[:, :k].copy()), False)
    return keep


def wanda_scores(W, act_sq):
    return W.abs().float() * torch.sqrt(act_sq.double()).float()[None, :]


def select_keep(scores, sparsity, pattern, scope):
    if pattern is not None:
        return nm_keep(scores, *pattern)
    if scope == 'layer':
        return lowest_keep(scores, int(math.floor(scores.numel() * sparsity)))
    return rowwise_keep(scores, sparsity)


# -------------------------------------------------------------------------------------------------- SparseGPT

def sparsegpt(W, H, sparsity, pattern=None, blocksize=128, percdamp=0.01):
    """Returns (new W float32, keep mask). W [rows, cols] float32, H = 2 X X^T / n [cols, cols]."""
    W = W.double().clone()
    H = H.double().clone()
    rows, cols = W.shape
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += percdamp * torch.mean(torch.diag(H)) * torch.eye(cols, dtype=torch.float64)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    keep = torch.ones(rows, cols, dtype=torch.bool)
    n, m = pattern if pattern is not None else (0, 0)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        d1 = torch.diag(Hinv1)
        if pattern is None:
            tmp = (W1 ** 2 / (d1[None, :] ** 2)).float()
            prune1 = ~lowest_keep(tmp, int(math.floor(rows * count * sparsity)))
        else:
            prune1 = torch.zeros(rows, count, dtype=torch.bool)
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if pattern is not None and i % m == 0:
                r = min(m, count - i)
                tmp = (W1[:, i:i + r] ** 2 / (d1[None, i:i + r] ** 2)).float()
                prune1[:, i:i + r] = ~nm_keep(tmp, n, m)
            q = w.clone()
            q[prune1[:, i]] = 0
            Q1[:, i] = q
            err = (w - q) / d
            W1[:, i:] -= err[:, None] * Hinv1[i, i:][None, :]
            Err1[:, i] = err
        W[:, i1:i2] = Q1
        keep[:, i1:i2] = ~prune1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return W.float(), keep


# ------------------------------------------------------------------------------------------------------- OWL

def outlier_ratio(scores_list, M):
    flat = torch.cat([s.reshape(-1).double() for s in scores_list])
    return float((flat > M * flat.mean()).double().mean())


def owl_sparsities(ratios, target, lam):
    r = np.array(ratios, dtype=np.float64)
    span = r.max() - r.min()
    scaled = np.zeros_like(r) if span == 0 else (r - r.min()) / span * (2 * lam)
    keep = scaled - scaled.mean() + (1 - target)
    return [float(1 - k) for k in keep]


# ------------------------------------------------------------------------------------------- sequential driver

def collect_block_stats(model, i, hidden, need_gram):
    """Run block i on every chunk of hidden states, accumulating sum x^2 (and X^T X) of each linear's input."""
    stats = {}

    def hook(layer, kind, x):
        if layer != i:
            return
        x = x.double()
        s = stats.setdefault(kind, {'sq': torch.zeros(x.shape[1], dtype=torch.float64), 'n': 0, 'gram': None})
        s['sq'] += (x * x).sum(0)
        s['n'] += x.shape[0]
        if need_gram:
            s['gram'] = x.t() @ x if s['gram'] is None else s['gram'] + x.t() @ x

    model.hook = hook
    for h in hidden:
        model.block(i, h)
    model.hook = None
    return stats


def prune_model(model, windows, method, sparsity, pattern=None, scope='row', owl=None, blocksize=128, percdamp=0.01):
    """Sequential layer-wise pruning; returns per-parameter keep masks and (with OWL) the per-block sparsities."""
    chunks = [torch.tensor(windows[s:s + 8], dtype=torch.long) for s in range(0, len(windows), 8)]
    layer_sparsity = [sparsity] * model.n_layers
    ratios = None
    if owl is not None:
        hidden = [model.embed(c) for c in chunks]
        ratios = []
        for i in range(model.n_layers):
            st = collect_block_stats(model, i, hidden, False)
            ratios.append(outlier_ratio([wanda_scores(model.w[model.pname(i, k)], st[k]['sq']) for k in KINDS], owl['M']))
            hidden = [model.block(i, h) for h in hidden]
        layer_sparsity = owl_sparsities(ratios, sparsity, owl['lambda'])
    masks = {}
    hidden = [model.embed(c) for c in chunks] if method != 'magnitude' else None
    for i in range(model.n_layers):
        s_i = layer_sparsity[i]
        st = collect_block_stats(model, i, hidden, method == 'sparsegpt') if hidden is not None else None
        for k in KINDS:
            name = model.pname(i, k)
            W = model.w[name]
            if method == 'magnitude':
                keep = select_keep(W.abs(), s_i, pattern, scope)
                W = W * keep
            elif method == 'wanda':
                keep = select_keep(wanda_scores(W, st[k]['sq']), s_i, pattern, scope)
                W = W * keep
            else:
                H = 2.0 * st[k]['gram'] / st[k]['n']
                W, keep = sparsegpt(W, H, s_i, pattern, blocksize, percdamp)
            model.w[name] = W.contiguous()
            masks[name] = keep
        if hidden is not None:
            hidden = [model.block(i, h) for h in hidden]
    return masks, layer_sparsity, ratios


# ------------------------------------------------------------------------------------------------ serialisation

def b64(t, dtype):
    return base64.b64encode(np.ascontiguousarray(t.numpy().astype(dtype)).tobytes()).decode()


def bits(keep):
    return base64.b64encode(np.packbits(keep.reshape(-1).numpy().astype(np.uint8), bitorder='little').tobytes()).decode()


def measured_sparsity(masks, weights):
    zeros = sum(int((weights[n] == 0).sum()) for n in masks)
    total = sum(weights[n].numel() for n in masks)
    return zeros / total


# ----------------------------------------------------------------------------------------------------- modes

def unit():
    """Per-layer cases on real weights: block 1's inputs from real text (the golden greedy story) through the dense model."""
    golden = json.load(open(GOLDEN))
    ids = [1] + golden['greedy_ids']  # BOS + 256 real tokens
    model = Llama()
    h = model.embed(torch.tensor([ids[:129], ids[128:257]], dtype=torch.long))
    h = model.block(0, h)
    st = collect_block_stats(model, 1, [h], True)
    cases = []
    for kind in ['q', 'down']:
        name = model.pname(1, kind)
        W = model.w[name]
        sq = st[kind]['sq']
        n = st[kind]['n']
        H = 2.0 * st[kind]['gram'] / n
        case = {
            'param': name, 'rows': W.shape[0], 'cols': W.shape[1], 'tokens': n,
            'weight': b64(W, '<f4'), 'activationSquares': b64(sq, '<f8'), 'hessian': b64(H, '<f8'),
            'wanda': {}, 'magnitude': {}, 'sparsegpt': {},
        }
        sc = wanda_scores(W, sq)
        for label, sp, pat, scope in [('row50', 0.5, None, 'row'), ('layer50', 0.5, None, 'layer'), ('row30', 0.3, None, 'row'),
                                      ('2:4', 0.5, (2, 4), 'row'), ('4:8', 0.5, (4, 8), 'row')]:
            case['wanda'][label] = bits(select_keep(sc, sp, pat, scope))
            case['magnitude'][label] = bits(select_keep(W.abs(), sp, pat, scope))
        for label, sp, pat, bs in [('50', 0.5, None, 128), ('50b32', 0.5, None, 32), ('2:4', 0.5, (2, 4), 128), ('4:8', 0.5, (4, 8), 128), ('0', 0.0, None, 128)]:
            Wn, keep = sparsegpt(W, H, sp, pat, bs, 0.01)
            case['sparsegpt'][label] = {'weight': b64(Wn, '<f4'), 'keep': bits(keep), 'blocksize': bs}
        cases.append(case)
    # OWL on the five blocks' dense Wanda scores from the same text
    h = model.embed(torch.tensor([ids[:129], ids[128:257]], dtype=torch.long))
    ratios = []
    for i in range(model.n_layers):
        st = collect_block_stats(model, i, [h], False)
        ratios.append(outlier_ratio([wanda_scores(model.w[model.pname(i, k)], st[k]['sq']) for k in KINDS], 5.0))
        h = model.block(i, h)
    owl = {'M': 5.0, 'lambda': 0.08, 'target': 0.5, 'ratios': ratios, 'sparsities': owl_sparsities(ratios, 0.5, 0.08)}
    os.makedirs(OUT_DIR, exist_ok=True)
    out = {'produced_by': 'bench/reference/prune_reference.py unit', 'torch': torch.__version__, 'ids': ids, 'cases': cases, 'owl': owl}
    with open(os.path.join(OUT_DIR, 'prune_unit.json'), 'w') as f:
        json.dump(out, f)
    print('wrote', os.path.join(OUT_DIR, 'prune_unit.json'))


CONFIGS = [
    # (label, method, sparsity, pattern, owl)
    ('magnitude-50', 'magnitude', 0.5, None, False),
    ('magnitude-2:4', 'magnitude', 0.5, (2, 4), False),
    ('magnitude-4:8', 'magnitude', 0.5, (4, 8), False),
    ('magnitude-50-owl', 'magnitude', 0.5, None, True),
    ('wanda-50', 'wanda', 0.5, None, False),
    ('wanda-2:4', 'wanda', 0.5, (2, 4), False),
    ('wanda-4:8', 'wanda', 0.5, (4, 8), False),
    ('wanda-50-owl', 'wanda', 0.5, None, True),
    ('sparsegpt-50', 'sparsegpt', 0.5, None, False),
    ('sparsegpt-2:4', 'sparsegpt', 0.5, (2, 4), False),
    ('sparsegpt-4:8', 'sparsegpt', 0.5, (4, 8), False),
    ('sparsegpt-50-owl', 'sparsegpt', 0.5, None, True),
]


def arg(flag, default=None):
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv else default


def e2e():
    fixture = json.load(open(arg('--fixture', FIXTURE)))
    windows = fixture['calibration']
    evals = fixture['eval']
    dense = Llama()
    result = {'produced_by': 'bench/reference/prune_reference.py e2e', 'torch': torch.__version__,
              'fixture': os.path.relpath(arg('--fixture', FIXTURE), REPO), 'dense': dense.perplexity(evals), 'runs': {}}
    for label, method, sp, pat, owl in CONFIGS:
        model = Llama()
        t0 = time.time()
        masks, layer_sparsity, ratios = prune_model(model, windows, method, sp, pat, 'row', {'M': 5.0, 'lambda': 0.08} if owl else None)
        secs = time.time() - t0
        run = {'method': method, 'sparsity': sp, 'pattern': None if pat is None else f'{pat[0]}:{pat[1]}', 'owl': owl,
               'seconds': secs, 'perplexity': model.perplexity(evals), 'measuredSparsity': measured_sparsity(masks, model.w),
               'layerSparsity': layer_sparsity, 'outlierRatios': ratios}
        run['masks'] = {n: bits(k) for n, k in masks.items()}
        if method == 'sparsegpt':
            # the reconstructed weights: the kept entries only (pruned ones are 0), row-major, float32
            run['keptWeights'] = {n: b64(model.w[n][k], '<f4') for n, k in masks.items()}
        result['runs'][label] = run
        print(f'{label:20s} ppl {run["perplexity"]:.4f}  sparsity {run["measuredSparsity"]:.4f}  {secs:.2f}s', file=sys.stderr)
    out = arg('--out', os.path.join(OUT_DIR, 'prune_e2e.json'))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(result, f)
    print('wrote', out, 'dense ppl', result['dense'])


def bench():
    fixture = json.load(open(arg('--fixture', FIXTURE)))
    method = arg('--method', 'wanda')
    model = Llama(arg('--model', MODEL_DIR))
    t0 = time.time()
    prune_model(model, fixture['calibration'], method, 0.5)
    secs = time.time() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({'method': method, 'seconds': secs, 'peakRssBytes': peak_kb * 1024, 'threads': torch.get_num_threads(),
                      'blas': 'generic' if 'BLAS_INFO=generic' in torch.__config__.show() else 'other'}))


if __name__ == '__main__':
    mode = sys.argv[1] if len(sys.argv) > 1 else 'unit'
    {'unit': unit, 'e2e': e2e, 'bench': bench}[mode]()
