"""Math library speed: libm vs symloss.mathlib inside generated-style kernels.

    python bench/bench_mathlib.py [--n 10000000] [--threads 2] [--repeat 7]

Kernels are shaped like the generated ones (templates/cpu/module.py.j2): a
scalar kernel called in a numba.prange loop that sums the loss and writes the
scaled gradient.  Each loss is timed with libm math (math.exp/log1p, the
branchy helpers of symloss/derive/primitives.py) and with the math library,
next to numpy.add(a, b, out=c) on arrays of the same size (the bandwidth
floor: two reads and one write, as a loss+gradient pass).  Prints times
(best of --repeat) and floor/time ratios (1.0 = at memory bandwidth), and
the largest gradient difference from the libm kernel, max |dg| / max(|g|, 1).

"mathlib" compiles the scalar kernel like the template's _SCALAR today;
"mathlib+inline" adds forceinline=True to it, which the loop needs to vectorise
once the scalar kernel is too big for LLVM's inliner (softplus + sigmoid is).
"""
from __future__ import annotations

import argparse
import math
import time

import numba
import numpy as np

from symloss.mathlib import kernels as K
from symloss.mathlib.kernels import fexp, flogcosh, fsigmoid, fsoftplus, ftanh

SCALAR = dict(error_model="numpy")  # the template's _SCALAR, minus cache
INLINE = dict(error_model="numpy", forceinline=True)
LOOP = dict(error_model="numpy", fastmath={"reassoc"}, parallel=True)


# --- libm helpers, as primitives.py emits them ---------------------------------
@numba.njit(**SCALAR)
def sigmoid(x, T):
    if x >= T(0):
        return T(1) / (T(1) + math.exp(-x))
    e = math.exp(x)
    return e / (T(1) + e)


@numba.njit(**SCALAR)
def softplus(x, T):
    if x > T(0):
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@numba.njit(**SCALAR)
def logcosh(x, T):
    a = abs(x)
    if a < T(1):
        s = math.sinh(T(0.5) * a)
        return math.log1p(T(2) * s * s)
    return a + math.log1p(math.exp(T(-2) * a)) - T(0.6931471805599453)


@numba.njit(**SCALAR)
def sech2(x, T):
    e = math.exp(T(-2) * abs(x))
    d = T(1) + e
    return T(4) * e / (d * d)


# --- one function per element: libm (or the libm helper) vs the math library ---
LIBM = {
    "fexp": (lambda x, T: math.exp(x), (-700, 700)),
    "fexpm1": (lambda x, T: math.expm1(x), (-5, 5)),
    "flog": (lambda x, T: math.log(x), (1e-3, 1e3)),
    "flog1p": (lambda x, T: math.log1p(x), (-0.9, 10)),
    "ftanh": (lambda x, T: math.tanh(x), (-5, 5)),
    "fsigmoid": (lambda x, T: sigmoid(x, T), (-20, 20)),
    "fsoftplus": (lambda x, T: softplus(x, T), (-20, 20)),
    "flogcosh": (lambda x, T: logcosh(x, T), (-5, 5)),
    "fsech2": (lambda x, T: sech2(x, T), (-5, 5)),
}


def _call(stub):
    def fn(x, T):
        return stub(x, T)

    return fn


def make_map(fn):
    scalar = numba.njit(**INLINE)(fn)

    @numba.njit(**LOOP)
    def apply(x, out, T):
        for i in numba.prange(x.size):
            out[i] = scalar(x[i], T)

    return apply


def bench_functions(n, dt, repeat, rng):
    x0 = rng.random(n)
    out = np.empty(n, dt)
    a = x0.astype(dt)
    floor = best(lambda: np.multiply(a, 2, out=out), repeat)
    print(f"\n{dt.__name__}, one function per element (numpy.multiply(a, 2, out=c): {floor * 1e3:.2f} ms)")
    print(f"  {'function':10s} {'libm ms':>8s} {'mathlib ms':>10s} {'speedup':>8s}")
    for name, (libm, (lo, hi)) in LIBM.items():
        x = (lo + (hi - lo) * x0).astype(dt)
        times = []
        for fn in (libm, _call(getattr(K, name))):
            k = make_map(fn)
            k(x[:16], out[:16], dt)
            times.append(best(lambda: k(x, out, dt), repeat))
        print(f"  {name:10s} {times[0] * 1e3:8.2f} {times[1] * 1e3:10.2f} {times[0] / times[1]:8.1f}")


# --- scalar kernels (value_and_grad_scalar of each loss) -----------------------
def bce_libm(y, z, T):
    return -y * z + softplus(z, T), -y + sigmoid(z, T)


def bce_ml(y, z, T):
    return -y * z + fsoftplus(z, T), -y + fsigmoid(z, T)


def poisson_libm(y, z, T):
    e = math.exp(z)
    return e - y * z, e - y


def poisson_ml(y, z, T):
    e = fexp(z, T)
    return e - y * z, e - y


def logcosh_libm(y, yhat, T):
    r = yhat - y
    return logcosh(r, T), math.tanh(r)


def logcosh_ml(y, yhat, T):
    r = yhat - y
    return flogcosh(r, T), ftanh(r, T)


def make_loop(scalar_py, inline):
    scalar = numba.njit(**(INLINE if inline else SCALAR))(scalar_py)

    @numba.njit(**LOOP)
    def value_and_grad(y, z, scale, g, T):
        total = 0.0
        for i in numba.prange(z.size):
            loss, d = scalar(y[i], z[i], T)
            total += loss
            g[i] = scale * d
        return total

    return value_and_grad


# --- compile cost: a generated-style module (cache=True) in a fresh process ----
_MODULE_TAIL = '''

_SCALAR = dict(cache=True, error_model="numpy", fastmath=False, forceinline=True)
_LOOP = dict(cache=True, error_model="numpy", fastmath={"reassoc"})


@numba.njit(**_SCALAR)
def value_and_grad_scalar(y, z, T):
    return -y * z + SOFTPLUS(z, T), -y + SIGMOID(z, T)


@numba.njit(parallel=True, **_LOOP)
def value_and_grad_parallel(y, z, scale, g, T):
    total = 0.0
    for i in numba.prange(z.size):
        loss, d = value_and_grad_scalar(y[i], z[i], T)
        total += loss
        g[i] = scale * d
    return total
'''

_LIBM_HELPERS = '''
@numba.njit(cache=True, error_model="numpy", fastmath=False)
def sigmoid(x, T):
    if x >= T(0):
        return T(1) / (T(1) + math.exp(-x))
    e = math.exp(x)
    return e / (T(1) + e)


@numba.njit(cache=True, error_model="numpy", fastmath=False)
def softplus(x, T):
    if x > T(0):
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))
'''

_TIMER = '''
import sys, time
t0 = time.perf_counter()
import numpy as np
import numba
t1 = time.perf_counter()
import {mod}
t2 = time.perf_counter()
z = np.linspace(-5, 5, 64); y = (z > 0).astype(np.float64); g = np.empty_like(z)
{mod}.value_and_grad_parallel(y, z, 1.0, g, np.float64)
t3 = time.perf_counter()
z32, y32, g32 = z.astype(np.float32), y.astype(np.float32), g.astype(np.float32)
{mod}.value_and_grad_parallel(y32, z32, 1.0, g32, np.float32)
t4 = time.perf_counter()
print(f"{{t2 - t1:.3f}} {{t3 - t2:.3f}} {{t4 - t3:.3f}}")
'''


def bench_compile():
    """Cold (empty cache) and warm (cached) import + first call, float64 then float32."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from symloss import mathlib

    print("\ncompile: bce_logits value_and_grad module, import / first f64 call / first f32 call (s)")
    with tempfile.TemporaryDirectory() as tmp:
        texts = {
            "bce_libm": mathlib.HEADER + _LIBM_HELPERS + _MODULE_TAIL.replace("SOFTPLUS", "softplus").replace("SIGMOID", "sigmoid"),
            "bce_mathlib": mathlib.HEADER + "\n\n" + mathlib.source(["fsoftplus", "fsigmoid"])
            + _MODULE_TAIL.replace("SOFTPLUS", "fsoftplus").replace("SIGMOID", "fsigmoid"),
        }
        for mod, text in texts.items():
            Path(tmp, f"{mod}.py").write_text(text)
            Path(tmp, f"time_{mod}.py").write_text(_TIMER.format(mod=mod))
            for label in ("cold", "warm"):
                r = subprocess.run([sys.executable, f"time_{mod}.py"], cwd=tmp, capture_output=True, text=True, check=True)
                imp, f64, f32 = r.stdout.split()
                print(f"  {mod:12s} {label}: import {imp}  first f64 call {f64}  first f32 call {f32}")


def best(f, repeat):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--float32", action="store_true", help="also time float32")
    ap.add_argument("--functions", action="store_true", help="also time each function alone")
    ap.add_argument("--compile", action="store_true", help="also time cold and cached compilation")
    args = ap.parse_args(argv)
    numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    dtypes = [np.float64] + ([np.float32] if args.float32 else [])
    print(f"n={args.n:,} threads={args.threads} numba {numba.__version__} numpy {np.__version__}")
    for dt in dtypes:
        z = rng.normal(0, 4, args.n).astype(dt)
        y = (rng.random(args.n) < 0.5).astype(dt)
        g = np.empty_like(z)
        c = np.empty_like(z)
        floor = best(lambda: np.add(y, z, out=c), args.repeat)
        print(f"\n{dt.__name__}: numpy.add floor {floor * 1e3:.2f} ms")
        print(f"  {'loss':10s} {'math':18s} {'ms':>8s} {'floor/t':>8s} {'grad diff vs libm':>21s}")
        for loss, libm, ml in (("bce_logits", bce_libm, bce_ml), ("poisson", poisson_libm, poisson_ml),
                               ("log_cosh", logcosh_libm, logcosh_ml)):
            zz = np.clip(z, -30, 30) if loss == "poisson" else z
            ref = None
            for label, fn, inline in (("libm", libm, False), ("mathlib", ml, False), ("mathlib+inline", ml, True)):
                k = make_loop(fn, inline)
                k(y[:16], zz[:16], 1.0, g[:16], dt)  # compile
                t = best(lambda: k(y, zz, 1.0, g, dt), args.repeat)
                if ref is None:
                    ref = g.copy()
                    diff = ""
                else:
                    den = np.maximum(np.abs(ref), 1)  # gradients like sigmoid(z) - y cancel
                    diff = f"{np.max(np.abs(g - ref) / den):.2e}"
                print(f"  {loss:10s} {label:18s} {t * 1e3:8.2f} {floor / t:8.2f} {diff:>21s}")
        if args.functions:
            bench_functions(args.n, dt, args.repeat, rng)
    if args.compile:
        bench_compile()


if __name__ == "__main__":
    main()
