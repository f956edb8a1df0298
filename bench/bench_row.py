"""Row losses: fused softmax cross-entropy value_and_grad against the bandwidth floor and PyTorch.

All measured in one process on the same float32 logits, so the ratios hold on
a noisy shared machine even when absolute times drift:

  floor     numpy.add(z, b, out=c) on two arrays of the logits' shape: one
            read of the logits, one more read and one write (the issue's floor)
  symloss   L.value_and_grad(t, z, out=g), class-index targets, mean; the
            gradient buffer is preallocated, as the floor's output is
  +alloc    the same without out= (a fresh gradient array every call)
  torch     F.cross_entropy(z, t) forward + backward on 2 threads (autograd
            allocates its log_softmax and the gradient every call)
  hvp       L.hvp(t, z, v=v): the per-row Hessian-vector product, O(K) per row

and the peak extra memory of a symloss call (tracemalloc: numpy allocations
beyond the inputs and the gradient buffer), which must be O(N + K).

Usage: python bench/bench_row.py [--shapes 65536x1024 4096x32768] [--repeat 5] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
import tracemalloc

import numpy as np


def best_time(fn, repeat: int) -> float:
    """The fastest of ``repeat`` runs after two warm-ups (the least disturbed by other jobs)."""
    fn()
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.min(times))


def bench_shape(n: int, k: int, repeat: int, threads: int) -> dict:
    import torch
    import torch.nn.functional as F

    import symloss

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((n, k), dtype=np.float32) * 3
    t = rng.integers(0, k, n)
    L = symloss.load("cross_entropy")
    row = {"shape": f"{n}x{k}", "n": n, "k": k}

    b, c = np.ones_like(z), np.empty_like(z)
    row["floor_ms"] = 1e3 * best_time(lambda: np.add(z, b, out=c), repeat)
    del b, c

    g = np.empty_like(z)
    row["symloss_ms"] = 1e3 * best_time(lambda: L.value_and_grad(t, z, out=g), repeat)
    row["symloss_alloc_ms"] = 1e3 * best_time(lambda: L.value_and_grad(t, z), repeat)
    value = float(L.value_and_grad(t, z, out=g)[0])

    tracemalloc.start()
    L.value_and_grad(t, z, out=g)
    row["peak_extra_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()

    v = rng.standard_normal((n, k), dtype=np.float32)
    row["hvp_ms"] = 1e3 * best_time(lambda: L.hvp(t, z, v=v, out=g), repeat)
    del v

    zt = torch.from_numpy(z).requires_grad_(True)
    tt = torch.from_numpy(t)

    def torch_fwd_bwd():
        zt.grad = None
        loss = F.cross_entropy(zt, tt)
        loss.backward()
        return loss

    row["torch_ms"] = 1e3 * best_time(torch_fwd_bwd, repeat)
    ref = torch_fwd_bwd()
    row["value_rel_diff"] = abs(value - ref.item()) / abs(ref.item())
    L.value_and_grad(t, z, out=g)  # (hvp used g as its output)
    row["grad_max_diff"] = float(np.abs(g - zt.grad.numpy()).max())
    del zt, tt, ref
    row["floor_over_symloss"] = row["floor_ms"] / row["symloss_ms"]
    row["torch_over_symloss"] = row["torch_ms"] / row["symloss_ms"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=["65536x1024", "4096x32768"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="numba and torch threads")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args()

    import numba
    import torch

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    rows = []
    print(f"# {platform.processor() or platform.machine()}, numba {numba.__version__}, numpy {np.__version__}, "
          f"torch {torch.__version__}, {args.threads} threads")
    print("| shape | floor ms | symloss ms | +alloc ms | torch ms | hvp ms | floor/sym | torch/sym | peak extra MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for shape in args.shapes:
        n, k = (int(x) for x in shape.split("x"))
        r = bench_shape(n, k, args.repeat, args.threads)
        rows.append(r)
        print(f"| {r['shape']} | {r['floor_ms']:.1f} | {r['symloss_ms']:.1f} | {r['symloss_alloc_ms']:.1f} | "
              f"{r['torch_ms']:.1f} | {r['hvp_ms']:.1f} | {r['floor_over_symloss']:.2f} | "
              f"{r['torch_over_symloss']:.2f} | {r['peak_extra_mb']:.2f} |", flush=True)
        assert r["value_rel_diff"] < 1e-5 and r["grad_max_diff"] < 1e-6, r
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
