"""PyTorch CPU and numpy side of bench/backends: the same workloads as the JavaScript side, same thread count.

Run by run.mjs (through bench/lib/openblas.mjs) once per OpenBLAS kernel the CPU supports, as
`/usr/bin/python3 torch_bench.py <threads>` with OPENBLAS_CORETYPE=<kernel> or unset and OPENBLAS_L2_SIZE unset (this
process only). Prints one JSON object on stdout.
"""
import ctypes
import json
import math
import os
import sys
import time

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
os.environ.setdefault("OMP_NUM_THREADS", str(threads))
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(threads))

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(threads)
torch.manual_seed(0)


def loaded_blas_libraries():
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if any(k in path for k in ("blas", "lapack", "mkl", "openblas", "gomp", "dnnl")):
                libs.add(path)
    return sorted(libs)


def openblas_info():
    """Version/config and the CPU kernel OpenBLAS chose (SkylakeX, Haswell, ...), when OpenBLAS is loaded."""
    for name in ("libopenblas.so.0", "libblas.so.3"):
        try:
            lib = ctypes.CDLL(name)
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_num_threads.restype = ctypes.c_int
            return {
                "library": name,
                "config": lib.openblas_get_config().decode(),
                "corename": lib.openblas_get_corename().decode(),
                "threads": lib.openblas_get_num_threads(),
            }
        except (OSError, AttributeError):
            continue
    return None


def timeit(fn, min_seconds=1.0, min_reps=3):
    fn()  # warm-up
    reps, start = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        elapsed = time.perf_counter() - start
        if reps >= min_reps and elapsed >= min_seconds:
            return elapsed / reps * 1000.0


MATMULS = [("matmul 512x512x512", 512, 512, 512), ("matmul 1024x1024x1024", 1024, 1024, 1024), ("matmul 2048x768x3072", 2048, 768, 3072)]


def check_512():
    """max |torch − float64| on a 512³ product: the BLAS kernel in use must be correct, not only fast."""
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    return float((torch.mm(a, b).double() - a.double() @ b.double()).abs().max())


def bench_matmuls():
    out = []
    for name, m, k, n in MATMULS:
        flops = 2.0 * m * k * n
        a, b = torch.randn(m, k), torch.randn(k, n)
        ms = timeit(lambda: torch.mm(a, b))
        an, bn = a.numpy(), b.numpy()
        ms_np = timeit(lambda: an @ bn)
        out.append({"name": name, "flops": flops, "torch_ms": ms, "numpy_ms": ms_np})
    return out


# One LLaMA block (llama2.c "stories15M" shapes): dim 288, 6 heads, FFN hidden 768, seq 256, batch 8.
DIM, HEADS, HIDDEN, SEQ, BATCH = 288, 6, 768, 256, 8


def block_flops():
    t = BATCH * SEQ
    hd = DIM // HEADS
    proj = 2 * t * DIM * DIM * 4
    ffn = 2 * t * DIM * HIDDEN * 3
    attn = 2 * BATCH * HEADS * SEQ * SEQ * hd * 2
    fwd = proj + ffn + attn
    return fwd, 3 * fwd


def bench_block():
    hd = DIM // HEADS
    g = torch.Generator().manual_seed(0)

    def p(*shape):
        return (torch.randn(*shape, generator=g) * 0.02).requires_grad_(True)

    wq, wk, wv, wo = p(DIM, DIM), p(DIM, DIM), p(DIM, DIM), p(DIM, DIM)
    w1, w3, w2 = p(DIM, HIDDEN), p(DIM, HIDDEN), p(HIDDEN, DIM)
    n1 = torch.ones(DIM, requires_grad=True)
    n2 = torch.ones(DIM, requires_grad=True)
    params = [wq, wk, wv, wo, w1, w3, w2, n1, n2]
    x = torch.randn(BATCH, SEQ, DIM, generator=g)
    inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
    ang = torch.arange(SEQ).float()[:, None] * inv[None, :]
    cos, sin = torch.cos(ang), torch.sin(ang)
    mask = torch.triu(torch.full((SEQ, SEQ), -1e9), diagonal=1)

    def rms(v, w):
        return v * torch.rsqrt((v * v).mean(-1, keepdim=True) + 1e-5) * w

    def rope(v):  # v: [B, H, T, hd], pairs (even, odd)
        a, b = v[..., 0::2], v[..., 1::2]
        return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)

    def step():
        for q in params:
            q.grad = None
        h = rms(x, n1).reshape(BATCH * SEQ, DIM)
        q = (h @ wq).reshape(BATCH, SEQ, HEADS, hd).transpose(1, 2)
        k = (h @ wk).reshape(BATCH, SEQ, HEADS, hd).transpose(1, 2)
        v = (h @ wv).reshape(BATCH, SEQ, HEADS, hd).transpose(1, 2)
        att = torch.softmax(rope(q) @ rope(k).transpose(-1, -2) / math.sqrt(hd) + mask, dim=-1)
        o = (att @ v).transpose(1, 2).reshape(BATCH * SEQ, DIM) @ wo
        x1 = x + o.reshape(BATCH, SEQ, DIM)
        h2 = rms(x1, n2).reshape(BATCH * SEQ, DIM)
        f = (torch.nn.functional.silu(h2 @ w1) * (h2 @ w3)) @ w2
        y = x1 + f.reshape(BATCH, SEQ, DIM)
        loss = (y * y).mean()
        loss.backward()
        return loss

    fwd, total = block_flops()
    ms = timeit(step, min_seconds=2.0)
    return {"name": "llama block fwd+bwd (dim 288, 6 heads, seq 256, batch 8)", "flops": total, "forward_flops": fwd, "torch_ms": ms}


def main():
    result = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
        "torch_config": torch.__config__.show(),
    }
    result["check_512_maxabs"] = check_512()
    result["matmuls"] = bench_matmuls()
    result["block"] = bench_block()
    # After running, so the libraries torch and numpy really loaded are mapped.
    result["blas_libraries"] = loaded_blas_libraries()
    result["openblas"] = openblas_info()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
