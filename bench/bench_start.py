"""Start-up: ``import symloss`` + the first call of a cached catalog kernel, against Numba's floor.

The floor is what any Numba user pays: a fresh process imports numpy and
numba, imports a trivial module of two cached ``@njit`` kernels and calls one.
symloss's path is a fresh process running ``import symloss;
symloss.load(NAME).value(y, yhat)``.  Both caches are warmed first; then the
two processes alternate ``--repeat`` times and the medians are compared.
Goal: symloss <= floor + 0.1 s, with SymPy, Jinja and matplotlib never
imported on that path.

Usage: python bench/bench_start.py [--repeat N] [NAME ...]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

FLOOR_MODULE = '''
import numba
import numpy as np


@numba.njit(cache=True)
def value(y, yhat):
    total = 0.0
    for i in range(y.size):
        total += (yhat[i] - y[i]) ** 2
    return total / y.size


@numba.njit(cache=True)
def grad(y, yhat, out):
    for i in range(y.size):
        out[i] = 2.0 * (yhat[i] - y[i]) / y.size
'''
FLOOR = '''
import time, sys, json
t0 = time.perf_counter()
import numpy as np
sys.path.insert(0, sys.argv[1])
import floor_kernels
y = np.zeros(8); yhat = np.full(8, 0.5)
floor_kernels.value(y, yhat)
print(json.dumps({"seconds": time.perf_counter() - t0}))
'''
SYMLOSS = '''
import time, sys, json
t0 = time.perf_counter()
import numpy as np
import symloss
L = symloss.load(sys.argv[1])
args = [np.full(8, 0.5) for _ in L.inputs]
L.value(*args)
seconds = time.perf_counter() - t0
heavy = sorted(m for m in ("sympy", "jinja2", "matplotlib", "mpmath", "torch") if m in sys.modules)
print(json.dumps({"seconds": seconds, "heavy": heavy}))
'''


def run(script: str, arg: str) -> dict:
    out = subprocess.run([sys.executable, "-c", script, arg], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("names", nargs="*", default=["mse", "huber", "bce_logits", "cross_entropy"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "floor_kernels.py").write_text(FLOOR_MODULE)
        run(FLOOR, tmp)  # warm Numba's cache
        print(f"{'loss':<16} {'floor s':>8} {'symloss s':>10} {'excess s':>9}  heavy modules imported")
        for name in args.names:
            run(SYMLOSS, name)  # warm
            floor, ours, heavy = [], [], set()
            for _ in range(args.repeat):
                floor.append(run(FLOOR, tmp)["seconds"])
                result = run(SYMLOSS, name)
                ours.append(result["seconds"])
                heavy.update(result["heavy"])
            f, s = statistics.median(floor), statistics.median(ours)
            print(f"{name:<16} {f:8.3f} {s:10.3f} {s - f:9.3f}  {', '.join(sorted(heavy)) or 'none'}")


if __name__ == "__main__":
    main()
