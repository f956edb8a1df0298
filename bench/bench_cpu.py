"""Fused value_and_grad on the CPU against the memory-bandwidth floor and the usual tools.

Everything runs in one process on the same arrays, so the ratios hold on a
noisy shared machine even when absolute times drift:

  floor     numpy.add(a, b, out=c): read two arrays, write one (what a fused
            loss+gradient must at least do)
  symloss   L.value_and_grad(y, yhat) (reduction="mean")
  numpy     the naive NumPy expression for loss and gradient
  sklearn   sklearn._loss loss_gradient(..., n_threads=2), where it has the loss
  torch     PyTorch CPU forward + backward, 2 threads

Usage: python bench/bench_cpu.py [--n 10000000] [--repeat 15] [--losses mse huber ...] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np


def median_time(fn, repeat: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def numpy_naive(name):
    if name == "mse":
        return lambda y, x: (((x - y) ** 2).mean(), 2 * (x - y) / x.size)
    if name == "huber":
        def f(y, x, d=1.0):
            r = x - y
            a = np.abs(r)
            small = a <= d
            loss = np.where(small, 0.5 * r * r, d * (a - 0.5 * d)).mean()
            return loss, np.where(small, r, d * np.sign(r)) / x.size
        return f
    if name == "bce_logits":
        return lambda y, z: ((np.logaddexp(0, z) - y * z).mean(), (1 / (1 + np.exp(-z)) - y) / z.size)
    if name == "log_cosh":
        return lambda y, x: (np.log(np.cosh(x - y)).mean(), np.tanh(x - y) / x.size)
    if name == "poisson_nll":
        return lambda y, z: ((np.exp(z) - y * z).mean(), (np.exp(z) - y) / z.size)
    return None


def sklearn_loss(name):
    try:
        from sklearn._loss import loss as sk
    except ImportError:
        return None
    table = {
        "mse": lambda: sk.HalfSquaredError(),
        "huber": lambda: sk.HuberLoss(delta=1.0),
        "bce_logits": lambda: sk.HalfBinomialLoss(),
        "poisson_nll": lambda: sk.HalfPoissonLoss(),
    }
    if name not in table:
        return None
    obj = table[name]()
    return lambda y, x, lo, g: obj.loss_gradient(y, x, loss_out=lo, gradient_out=g, n_threads=2)


def torch_loss(name):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    torch.set_num_threads(2)
    fns = {
        "mse": lambda x, y: F.mse_loss(x, y),
        "huber": lambda x, y: F.huber_loss(x, y, delta=1.0),
        "bce_logits": lambda x, y: F.binary_cross_entropy_with_logits(x, y),
        "log_cosh": lambda x, y: torch.log(torch.cosh(x - y)).mean(),
        "poisson_nll": lambda x, y: F.poisson_nll_loss(x, y, log_input=True, full=False),
    }
    if name not in fns:
        return None
    fn = fns[name]

    def run(y, x):
        xt = torch.from_numpy(x).requires_grad_(True)
        loss = fn(xt, torch.from_numpy(y))
        loss.backward()
        return loss.item(), xt.grad
    return run


def inputs_for(name, n, rng):
    x = rng.normal(0, 2, n)
    if name in ("bce_logits",):
        return rng.uniform(0, 1, n).round(), x
    if name == "poisson_nll":
        return rng.poisson(2.0, n).astype(np.float64), rng.normal(0, 1, n)
    return rng.normal(0, 2, n), x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--losses", nargs="+", default=["mse", "huber"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import numba

    import symloss

    rng = np.random.default_rng(0)
    results = {"n": args.n, "threads": numba.get_num_threads(), "machine": platform.processor() or platform.machine(),
               "losses": {}}
    print(f"n = {args.n:,} float64, numba threads = {numba.get_num_threads()}")
    header = f"{'loss':<12} {'floor ms':>9} {'symloss':>9} {'numpy':>9} {'sklearn':>9} {'torch':>9} " \
             f"{'floor/sym':>10} {'sk/sym':>8} {'torch/sym':>10}"
    rows = []
    for name in args.losses:
        L = symloss.load(name)
        y, x = inputs_for(name, args.n, rng)
        c = np.empty_like(x)
        g = np.empty_like(x)
        t = {"floor": median_time(lambda: np.add(y, x, out=c), args.repeat),
             "symloss": median_time(lambda: L.value_and_grad(y, x, out=g), args.repeat)}
        naive = numpy_naive(name)
        if naive:
            t["numpy"] = median_time(lambda: naive(y, x), max(3, args.repeat // 3))
        sk = sklearn_loss(name)
        if sk:
            lo = np.empty_like(x)
            t["sklearn"] = median_time(lambda: sk(y, x, lo, g), args.repeat)
        tf = torch_loss(name)
        if tf:
            t["torch"] = median_time(lambda: tf(y, x), max(3, args.repeat // 3))
        results["losses"][name] = t
        ms = lambda k: f"{t[k] * 1e3:9.2f}" if k in t else f"{'-':>9}"  # noqa: E731
        ratio = lambda k: f"{t[k] / t['symloss']:.2f}" if k in t else "-"  # noqa: E731
        rows.append(f"{name:<12} {ms('floor')} {ms('symloss')} {ms('numpy')} {ms('sklearn')} {ms('torch')} "
                    f"{ratio('floor'):>10} {ratio('sklearn'):>8} {ratio('torch'):>10}")
        print(rows[-1], flush=True)
    print()
    print("floor/sym >= 0.8 means symloss runs within 1.25x of numpy.add; sk/sym and torch/sym are speed-ups.")
    print(header)
    for r in rows:
        print(r)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
