"""What a parameter derivative costs next to the fused value and gradient.

For each loss with a differentiable parameter (``general_robust``: Barron's
alpha), times ``param_grad`` and ``value_and_grad`` on the same 1M elements
(Cauchy-distributed residuals, so every branch of barron_dalpha is taken) in
one run, medians of repeated calls, and prints the ratio.  No goal: adaptive
fitting calls both once per step, and this says what the second call adds.

Usage: python bench/bench_param.py [--n N] [--repeat R]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import symloss  # noqa: E402


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    loss = symloss.load("general_robust")
    rng = np.random.default_rng(0)
    y = rng.normal(size=args.n)
    yhat = y + rng.standard_cauchy(args.n)
    print("| dtype | alpha | value_and_grad ms | param_grad ms | param_grad / value_and_grad |")
    print("|---|---|---|---|---|")
    for dtype in (np.float64, np.float32):
        a, b = y.astype(dtype), yhat.astype(dtype)
        for alpha in (1.0, -2.0, 0.5, 3.0):
            loss.value_and_grad(a, b, alpha=alpha), loss.param_grad(a, b, alpha=alpha)  # compile or load
            tv = median_ms(lambda: loss.value_and_grad(a, b, alpha=alpha), args.repeat)
            tp = median_ms(lambda: loss.param_grad(a, b, alpha=alpha), args.repeat)
            print(f"| {np.dtype(dtype).name} | {alpha:g} | {tv:.1f} | {tp:.1f} | {tp / tv:.1f} |")


if __name__ == "__main__":
    main()
