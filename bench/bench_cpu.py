"""Fused value_and_grad on the CPU against the memory-bandwidth floor and the usual tools.

Everything runs in one process on the same arrays, so the ratios hold on a
noisy shared machine even when absolute times drift:

  floor     numpy.add(a, b, out=c): read two arrays, write one (what a fused
            loss+gradient must at least do), one thread
  floor2    the two-thread floor: a cached Numba prange kernel that reads the
            same inputs and writes the same outputs as the symloss kernel
            (value_and_grad: y, yhat -> gradient + a float64 sum;
            grad_hessian: y, yhat -> gradient, Hessian)
  symloss   L.value_and_grad(y, yhat) (reduction="mean"), or with --kind
            grad_hessian L.grad_hessian(y, yhat) (the fused kernel writing
            gradient and Hessian; called on preallocated buffers, so no page
            faults of fresh outputs are timed)
  numpy     the naive NumPy expression for loss and gradient
  sklearn   sklearn._loss loss_gradient(..., n_threads=2), where it has the loss
  torch     PyTorch CPU forward + backward, 2 threads

Each loss's time is also printed as a ratio to mse's (same run, same dtype) and
to floor2: the goal for transcendental losses is sym/mse <= 1.3.  "cpu s/m" is
the ratio of CPU seconds (process_time, all threads) of the same calls: on a
machine shared with other jobs a kernel's wall time includes the time its
threads wait for a core, its CPU time does not.

Usage: python bench/bench_cpu.py [--n 10000000] [--repeat 15] [--float32]
           [--kind value_and_grad|grad_hessian] [--losses mse huber ...] [--compute] [--json FILE]

--compute adds each kernel's compute cost apart from memory: ns per element of
one thread running the serial kernel on 32768 elements (in cache), the least
thread CPU time of 60 calls -- the number to compare when changing the math
library or the templates on a loaded machine.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np


_CPU = {}  # fn -> median CPU seconds per call (all threads), from the last median_time


def median_time(fn, repeat: int) -> float:
    """Median wall seconds per call; the median CPU seconds of the same calls go to _CPU[fn]."""
    fn()
    fn()
    times, cpu = [], []
    for _ in range(repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    _CPU[fn] = float(np.median(cpu))
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


def sklearn_loss(name, kind="value_and_grad"):
    try:
        from sklearn._loss import loss as sk
    except ImportError:
        return None
    table = {
        "mse": lambda: sk.HalfSquaredError(),
        "huber": lambda: sk.HuberLoss(delta=1.0),
        "bce_logits": lambda: sk.HalfBinomialLoss(),
        "poisson_nll": lambda: sk.HalfPoissonLoss(),
        "gamma_nll": lambda: sk.HalfGammaLoss(),
        "tweedie": lambda: sk.HalfTweedieLoss(power=1.5),
    }
    if name not in table:
        return None
    obj = table[name]()
    if kind == "grad_hessian":
        return lambda y, x, g, h: obj.gradient_hessian(y, x, gradient_out=g, hessian_out=h, n_threads=2)
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


DEFAULT_LOSSES = ["mse", "huber", "bce_logits", "log_cosh", "poisson_nll", "soft_margin", "exponential",
                  "gamma_nll", "tweedie", "cauchy", "fair", "focal_binary"]


def inputs_for(L, n, rng, dtype):
    """Targets from the spec's domain; predictions where the loss is moderate (exp-based: near 0)."""
    domain = L.spec.inputs[0].domain
    if domain in ("unit_closed", "binary"):
        y = rng.integers(0, 2, n).astype(np.float64)
    elif domain == "sign":
        y = rng.choice([-1.0, 1.0], n)
    elif domain == "positive":
        y = rng.gamma(2.0, 1.0, n)
    else:
        y = rng.normal(0, 2, n)
    exp_based = L.name in ("poisson_nll", "exponential", "gamma_nll", "tweedie")
    x = rng.normal(0, 1 if exp_based else 2, n)
    return y.astype(dtype), x.astype(dtype)


_FLOORS = {}


def floors():
    """The two-thread floor kernels (compiled once, cached on disk)."""
    if not _FLOORS:
        import numba

        @numba.njit(parallel=True, cache=True, error_model="numpy", fastmath={"reassoc"})
        def floor_vg(y, x, scale, g):
            # what value_and_grad must do: read y and x, write g, a float64 sum
            total = 0.0
            for i in numba.prange(x.size):
                d = x[i] - y[i]
                total += d
                g[i] = scale * d
            return total

        @numba.njit(parallel=True, cache=True, error_model="numpy", fastmath={"reassoc"})
        def floor_gh(y, x, scale, g, h):
            # what grad_hessian must do: read y and x, write g and h
            for i in numba.prange(x.size):
                d = x[i] - y[i]
                g[i] = scale * d
                h[i] = scale * y[i]

        _FLOORS.update(value_and_grad=floor_vg, grad_hessian=floor_gh)
    return _FLOORS


def kernel_call(L, kind, y, x, g, h):
    """L's parallel kernel on preallocated buffers, with the arguments L.value_and_grad /
    L.grad_hessian pass (reduction mean for value_and_grad, none for grad_hessian)."""
    reduction = "mean" if kind == "value_and_grad" else "none"
    c = L._setup((y, x), reduction, None, {})
    T = c.dtype.type
    k = getattr(L.module, kind + "_parallel")
    args = (*c.flat, *c.pvals, c.w, T(c.scale))
    if kind == "value_and_grad":
        return lambda: k(*args, None, g, T)
    return lambda: k(*args, g, h, T)


def compute_ns(L, kind, y, x, g, h, n=32768, rounds=60):
    """Single-thread compute per element: the serial kernel on n elements that stay in cache,
    the least thread CPU time of `rounds` calls (other jobs on the machine only add to it)."""
    reduction = "mean" if kind == "value_and_grad" else "none"
    c = L._setup((y[:n], x[:n]), reduction, None, {})
    T = c.dtype.type
    k = getattr(L.module, kind)
    args = (*c.flat, *c.pvals, c.w, T(c.scale))
    fn = (lambda: k(*args, None, g[:n], T)) if kind == "value_and_grad" else (lambda: k(*args, g[:n], h[:n], T))
    fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
    return best / n * 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--losses", nargs="+", default=DEFAULT_LOSSES)
    ap.add_argument("--float32", action="store_true")
    ap.add_argument("--kind", choices=["value_and_grad", "grad_hessian"], default="value_and_grad")
    ap.add_argument("--threads", type=int, default=None,
                    help="numba threads for symloss and floor2 (default: numba's, 2 here); 1 isolates "
                         "compute per element from thread scheduling on a loaded machine")
    ap.add_argument("--no-others", action="store_true", help="skip numpy, sklearn and torch")
    ap.add_argument("--compute", action="store_true",
                    help="also each loss's single-thread compute per element (ns, serial kernel, in cache)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import numba

    import symloss

    if args.threads:
        numba.set_num_threads(args.threads)
    dtype = np.float32 if args.float32 else np.float64
    losses = list(args.losses)
    if "mse" not in losses:
        losses.insert(0, "mse")  # every ratio is to mse of the same run
    rng = np.random.default_rng(0)
    results = {"n": args.n, "dtype": np.dtype(dtype).name, "kind": args.kind, "threads": numba.get_num_threads(),
               "machine": platform.processor() or platform.machine(), "losses": {}}
    print(f"n = {args.n:,} {np.dtype(dtype).name} {args.kind}, numba threads = {numba.get_num_threads()}")
    header = f"{'loss':<13} {'floor ms':>9} {'floor2':>8} {'symloss':>8} {'numpy':>8} {'sklearn':>8} " \
             f"{'torch':>8} {'sym/mse':>8} {'cpu s/m':>8} {'sym/fl2':>8} {'sk/sym':>7} {'torch/sym':>9}"
    print(header)
    rows = []
    fl = floors()[args.kind]
    for name in losses:
        L = symloss.load(name)
        y, x = inputs_for(L, args.n, rng, dtype)
        c = np.empty_like(x)
        g = np.empty_like(x)
        h = np.empty_like(x)
        s = dtype(1.0 / args.n) if args.kind == "value_and_grad" else dtype(1.0)
        floor2 = (lambda: fl(y, x, s, g)) if args.kind == "value_and_grad" else (lambda: fl(y, x, s, g, h))
        t = {"floor": median_time(lambda: np.add(y, x, out=c), args.repeat),
             "floor2": median_time(floor2, args.repeat),
             "symloss": median_time(sym := kernel_call(L, args.kind, y, x, g, h), args.repeat)}
        t["symloss_cpu"] = _CPU.pop(sym)
        if args.compute:
            t["compute_ns"] = compute_ns(L, args.kind, y, x, g, h)
        if not args.no_others and args.kind == "value_and_grad":
            naive = numpy_naive(name)
            if naive:
                t["numpy"] = median_time(lambda: naive(y, x), max(3, args.repeat // 3))
            tf = torch_loss(name)
            if tf:
                t["torch"] = median_time(lambda: tf(y, x), max(3, args.repeat // 3))
        sk = None if args.no_others or dtype is np.float32 else sklearn_loss(name, args.kind)
        if sk:
            lo = np.empty_like(x)
            if args.kind == "grad_hessian":
                t["sklearn"] = median_time(lambda: sk(y, x, g, h), args.repeat)
            else:
                t["sklearn"] = median_time(lambda: sk(y, x, lo, g), args.repeat)
        if name == "mse":
            mse_time, mse_cpu = t["symloss"], t["symloss_cpu"]
        t["sym/mse"] = t["symloss"] / mse_time
        t["cpu sym/mse"] = t["symloss_cpu"] / mse_cpu
        t["sym/floor2"] = t["symloss"] / t["floor2"]
        results["losses"][name] = t
        ms = lambda k, w=8: f"{t[k] * 1e3:{w}.2f}" if k in t else f"{'-':>{w}}"  # noqa: E731
        ratio = lambda k: f"{t[k] / t['symloss']:.2f}" if k in t else "-"  # noqa: E731
        rows.append(f"{name:<13} {ms('floor', 9)} {ms('floor2')} {ms('symloss')} {ms('numpy')} {ms('sklearn')} "
                    f"{ms('torch')} {t['sym/mse']:8.2f} {t['cpu sym/mse']:8.2f} {t['sym/floor2']:8.2f} {ratio('sklearn'):>7} "
                    f"{ratio('torch'):>9}")
        if args.compute:
            rows[-1] += f" {t['compute_ns']:8.2f}"
        print(rows[-1], flush=True)
    print()
    print("sym/mse <= 1.3 is the goal for transcendental losses; cpu s/m is the same ratio of CPU seconds (all")
    print("threads; less sensitive than wall time to other jobs taking the cores); sym/fl2 is the time over the")
    print("two-thread floor;")
    print("sk/sym and torch/sym are speed-ups of symloss.")
    if args.compute:
        print("ns/el (--compute): one thread's compute per element, serial kernel on 32768 elements in cache.")
        header += f" {'ns/el':>8}"
    print(header)
    for r in rows:
        print(r)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
