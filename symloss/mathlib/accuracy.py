"""Measure the math library's error against mpmath at 50 digits.

    python -m symloss.mathlib.accuracy [--n 1500] [--seed 0]

For every function and float type: log-spaced magnitudes of both signs over
the type's whole range, uniform points where the function varies, points
near its thresholds, and its edges.  Prints the largest relative error over
results that are normal numbers, the same in ulps of the result, and the
largest absolute error where the exact result is subnormal (in units of the
smallest subnormal).  tests/test_mathlib.py asserts bounds on the same numbers.
"""
from __future__ import annotations

import argparse
import math

import mpmath
import numba
import numpy as np

from . import FUNCTIONS

DPS = 50


def _logcosh(x):
    return mpmath.log1p(2 * mpmath.sinh(x / 2) ** 2)  # exact near 0, unlike log(cosh)


REF = {
    "fexp": mpmath.exp,
    "fexpm1": mpmath.expm1,
    "flog": mpmath.log,
    "flog1p": mpmath.log1p,
    "ftanh": mpmath.tanh,
    "fsigmoid": lambda x: 1 / (1 + mpmath.exp(-x)),
    "fsoftplus": lambda x: mpmath.log1p(mpmath.exp(x)),
    "flogcosh": _logcosh,
    "fsech2": lambda x: mpmath.sech(x) ** 2,
}


def points(name: str, dt, rng: np.random.Generator, n: int = 1500) -> np.ndarray:
    """Test arguments for one function in float type dt."""
    f64 = dt == np.float64
    emin, emax = (-323.5, 308.2) if f64 else (-44.8, 38.5)
    big = 709.8 if f64 else 88.8
    tiny, sub = np.finfo(dt).tiny, np.finfo(dt).smallest_subnormal
    logs = 10.0 ** rng.uniform(emin, emax, n)
    both = np.concatenate([logs, -logs])
    common = [0.0, -0.0, sub, -sub, tiny, -tiny, 1.0, -1.0, np.inf, -np.inf, np.nan, np.finfo(dt).max]
    if name in ("fexp", "fexpm1"):
        lo = -745.2 if f64 else -104.0
        edges = [big, 709.782712893384, 709.7827128933841, -745.1332191019411, -745.1332191019412,
                 -708.3964185322641, 88.72283, 88.72284, -103.27893, -103.97208, -87.33654, -745.2, -104.0]
        pts = np.concatenate([both, rng.uniform(lo, big, n), rng.uniform(-1, 1, n // 3), edges])
    elif name in ("flog", "flog1p"):
        near = 10.0 ** rng.uniform(-17 if f64 else -8, 0, n // 3)
        pts = np.concatenate([both, 1 + near, 1 - near, -1 + near, rng.uniform(-1, 4, n),
                              [-1 - 2e-16, 2.0, 0.5, math.sqrt(0.5), math.sqrt(2)]])
    else:
        lim = {"ftanh": 25, "fsigmoid": 760, "fsoftplus": 760, "flogcosh": 40, "fsech2": 380}[name]
        lim = lim if f64 else min(lim, 110)
        edges = [0.75, np.nextafter(0.75, 0), -0.75, 1.0, 37.0, 745.0, 745.2, -745.2]
        pts = np.concatenate([both, rng.uniform(-lim, lim, n), rng.uniform(-2, 2, n // 3), edges])
    with np.errstate(over="ignore"):
        return np.concatenate([pts, common]).astype(dt)


def reference(name: str, x: np.ndarray):
    """Exact values as float64 pairs (hi, lo), hi + lo ~ f(x) to ~1e-32 relative.

    NaN where x is not finite or outside the domain (special-value tests cover
    those); +-inf where the value overflows float64.
    """
    mpmath.mp.dps = DPS
    ref = REF[name]
    hi = np.empty(x.size)
    lo = np.empty(x.size)
    for i, v in enumerate(x.astype(np.float64).tolist()):
        if not math.isfinite(v) or (name == "flog" and v <= 0) or (name == "flog1p" and v <= -1):
            hi[i], lo[i] = np.nan, 0.0
            continue
        r = ref(mpmath.mpf(v))
        h = float(r)
        hi[i] = h
        lo[i] = float(r - mpmath.mpf(h)) if math.isfinite(h) else 0.0
    return hi, lo


def errors(out: np.ndarray, x: np.ndarray, hi: np.ndarray, lo: np.ndarray, dt) -> dict:
    """Error summary of out (float type dt) against the reference (hi, lo)."""
    fi = np.finfo(dt)
    out = out.astype(np.float64)
    ok = np.isfinite(hi)
    mag = np.abs(hi)
    over = ok & (mag > float(fi.max) * (1 + 2.0 ** -(fi.nmant + 1)))
    bad_over = over & ~(np.isinf(out) & (np.sign(out) == np.sign(hi)))
    ok &= ~over
    normal = ok & (mag >= float(fi.tiny))
    with np.errstate(invalid="ignore", over="ignore"):
        rel = np.abs((out - hi) - lo) / mag
    rel = np.where(normal, rel, -1.0)
    worst = int(np.argmax(rel))
    # ulps of the exact result: 2^(exponent - nmant)
    ulp = np.ldexp(1.0, np.frexp(np.where(normal, hi, 1.0))[1] - 1 - fi.nmant)
    with np.errstate(invalid="ignore", over="ignore"):
        ulps = np.where(normal, np.abs((out - hi) - lo) / ulp, -1.0)
    small = ok & ~normal
    sub_abs = np.abs(out[small] - hi[small]) / float(fi.smallest_subnormal) if small.any() else np.zeros(1)
    return {
        "max_rel": float(rel[worst]),
        "worst_x": x[worst],
        "max_ulps": float(ulps.max()),
        "max_sub_units": float(sub_abs.max()),
        "n": int(x.size),
        "overflow_wrong": x[bad_over],
    }


def _loop(fn):
    @numba.njit(error_model="numpy")
    def loop(x, out, T):
        for i in range(x.size):
            out[i] = fn(x[i], T)

    return loop


_LOOPS: dict = {}


def evaluate(name: str, x: np.ndarray) -> np.ndarray:
    """The library's function applied to x in a compiled loop (x's dtype)."""
    from . import kernels

    if name not in _LOOPS:
        _LOOPS[name] = _loop(getattr(kernels, name))
    out = np.empty_like(x)
    _LOOPS[name](x, out, x.dtype.type)
    return out


def measure(name: str, dt, n: int = 1500, seed: int = 0) -> dict:
    rng = np.random.default_rng([seed, sorted(FUNCTIONS).index(name)])
    x = points(name, dt, rng, n)
    hi, lo = reference(name, x)
    return errors(evaluate(name, x), x, hi, lo, dt)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1500, help="log-spaced points per sign (and uniform points)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(f"| function | dtype | points | max rel error | max ulps | worst x | subnormal results: max error (smallest subnormals) |")
    print("|---|---|---|---|---|---|---|")
    for name in FUNCTIONS:
        for dt in (np.float64, np.float32):
            e = measure(name, dt, args.n, args.seed)
            flag = " OVERFLOW WRONG" if e["overflow_wrong"].size else ""
            print(f"| {name} | {dt.__name__} | {e['n']} | {e['max_rel']:.2e} | {e['max_ulps']:.2f} | "
                  f"{float(e['worst_x']):.9g} | {e['max_sub_units']:.2f}{flag} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
