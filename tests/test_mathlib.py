"""The math library (symloss.mathlib) against mpmath at 50 digits.

Every function, float64 and float32: thousands of log-spaced and uniform
points over its whole range, and its edges (signed zeros, subnormals, the
overflow and underflow thresholds, +-inf, NaN).  Also: each compiled loop is
vectorised (LLVM IR has vector float types and no remaining calls), the
emitted source of any subset is self-contained, and the generated files are
current.
"""
from __future__ import annotations

import math
import re
import types

import mpmath
import numba
import numpy as np
import pytest

from symloss import mathlib
from symloss.mathlib import fit
from symloss.mathlib import kernels as K

mpmath.mp.dps = 50
MP = mpmath.mpf

# relative-error bounds asserted (measured maxima are in bench/README.md)
BOUND = {np.float64: 1e-15, np.float32: 2.5e-7}
# where the exact result is subnormal in the dtype: absolute error allowed, in
# units of the smallest subnormal
SUB_ULPS = 4


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


def _points(name, dt, rng):
    """Log-spaced magnitudes of both signs, uniform points in the interesting
    range, and the function's edges."""
    f64 = dt == np.float64
    emin, emax = (-323.5, 308.2) if f64 else (-44.8, 38.5)
    big = 709.8 if f64 else 88.8
    tiny, sub = (np.finfo(dt).tiny, np.finfo(dt).smallest_subnormal)
    n = 1500
    logs = 10.0 ** rng.uniform(emin, emax, n)
    both = np.concatenate([logs, -logs])
    common = [0.0, -0.0, sub, -sub, tiny, -tiny, 1.0, -1.0, np.inf, -np.inf, np.nan, np.finfo(dt).max]
    if name in ("fexp", "fexpm1"):
        lo = -745.2 if f64 else -104.0
        extra = [big, 709.782712893384, 709.7827128933841, -745.1332191019411, -745.1332191019412,
                 -708.39641853226408, 88.72283, 88.72284, -103.27893, -103.97208, -87.33654]
        pts = np.concatenate([both, rng.uniform(lo, big, n), rng.uniform(-1, 1, 500), extra])
    elif name in ("flog", "flog1p"):
        near = 10.0 ** rng.uniform(-17 if f64 else -8, 0, 500)
        pts = np.concatenate([both, 1 + near, 1 - near, -1 + near, rng.uniform(-1, 4, n), [-1 - 2e-16, 2.0, 0.5]])
    else:
        lim = {"ftanh": 25, "fsigmoid": 760, "fsoftplus": 760, "flogcosh": 40, "fsech2": 380}[name]
        lim = lim if f64 else min(lim, 110)
        pts = np.concatenate([both, rng.uniform(-lim, lim, n), rng.uniform(-2, 2, 500)])
    with np.errstate(over="ignore"):
        return np.concatenate([pts, common]).astype(dt)


def _reference(name, x):
    """Exact values as (hi, lo) float64 pairs; inf where the value overflows float64."""
    ref = REF[name]
    hi = np.empty(x.size)
    lo = np.empty(x.size)
    for i, v in enumerate(x.tolist()):
        if math.isnan(v) or math.isinf(v):
            hi[i], lo[i] = np.nan, 0.0  # checked separately against the special-value table
            continue
        if name == "flog" and v <= 0 or name == "flog1p" and v <= -1:
            hi[i], lo[i] = np.nan, 0.0
            continue
        r = ref(MP(v))
        h = float(r)
        hi[i] = h
        lo[i] = float(r - MP(h)) if math.isfinite(h) else 0.0
    return hi, lo


def _loop(fn):
    @numba.njit(error_model="numpy")
    def loop(x, out, T):
        for i in range(x.size):
            out[i] = fn(x[i], T)

    return loop


LOOPS = {name: _loop(getattr(K, name)) for name in mathlib.FUNCTIONS}


def run(name, x):
    out = np.empty_like(x)
    LOOPS[name](x, out, x.dtype.type)
    return out


@pytest.mark.parametrize("dt", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(mathlib.FUNCTIONS))
def test_accuracy(name, dt):
    rng = np.random.default_rng(sorted(mathlib.FUNCTIONS).index(name))
    x = _points(name, dt, rng)
    out = run(name, x).astype(np.float64)
    hi, lo = _reference(name, x.astype(np.float64))
    ok = np.isfinite(hi)
    dmax = float(np.finfo(dt).max)
    sub = float(np.finfo(dt).smallest_subnormal)
    tiny = float(np.finfo(dt).tiny)
    mag = np.abs(hi)
    overflow = ok & (mag > dmax * (1 + 2.0 ** -(np.finfo(dt).nmant + 1)))
    # overflowing results are inf with the right sign
    assert np.all(np.isinf(out[overflow]) & (np.sign(out[overflow]) == np.sign(hi[overflow]))), x[overflow]
    ok &= ~overflow
    normal = ok & (mag >= tiny)
    with np.errstate(invalid="ignore", over="ignore"):
        rel = np.abs((out - hi) - lo) / mag
    worst = int(np.argmax(np.where(normal, rel, -1)))
    assert rel[worst] <= BOUND[dt], f"{name} {dt.__name__}: rel err {rel[worst]:.3g} at x={x[worst]!r}"
    small = ok & (mag < tiny)
    abserr = np.abs(out[small] - hi[small])
    assert np.all(abserr <= SUB_ULPS * sub + BOUND[dt] * mag[small]), (x[small][abserr.argmax()], abserr.max())


INF, NAN = math.inf, math.nan
SPECIAL = {  # (x, expected); NaN means NaN, zeros are checked with their sign
    "fexp": [(0.0, 1.0), (-0.0, 1.0), (INF, INF), (-INF, 0.0), (-1e4, 0.0), (1e4, INF)],
    "fexpm1": [(0.0, 0.0), (-0.0, -0.0), (INF, INF), (-INF, -1.0), (-1e4, -1.0), (1e4, INF)],
    "flog": [(0.0, -INF), (-0.0, -INF), (1.0, 0.0), (-1.0, NAN), (INF, INF), (-INF, NAN)],
    "flog1p": [(0.0, 0.0), (-0.0, -0.0), (-1.0, -INF), (-2.0, NAN), (INF, INF), (-INF, NAN)],
    "ftanh": [(0.0, 0.0), (-0.0, -0.0), (INF, 1.0), (-INF, -1.0), (1e4, 1.0), (-1e4, -1.0)],
    "fsigmoid": [(0.0, 0.5), (-0.0, 0.5), (INF, 1.0), (-INF, 0.0), (1e4, 1.0), (-1e4, 0.0)],
    "fsoftplus": [(INF, INF), (-INF, 0.0), (1e30, 1e30), (-1e4, 0.0)],
    "flogcosh": [(0.0, 0.0), (-0.0, 0.0), (INF, INF), (-INF, INF)],
    "fsech2": [(0.0, 1.0), (-0.0, 1.0), (INF, 0.0), (-INF, 0.0), (1e4, 0.0)],
}


@pytest.mark.parametrize("dt", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(mathlib.FUNCTIONS))
def test_special_values(name, dt):
    table = SPECIAL[name] + [(NAN, NAN)]
    x = np.array([p[0] for p in table], dtype=dt)
    out = run(name, x)
    assert out.dtype == dt
    for xi, got, (_, want) in zip(x, out, table):
        want = dt(want)
        if math.isnan(want):
            assert math.isnan(got), (name, xi, got)
        else:
            assert got == want and math.copysign(1, got) == math.copysign(1, want), (name, xi, got, want)


@pytest.mark.parametrize("dt", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(mathlib.FUNCTIONS))
def test_loop_vectorises(name, dt):
    """The loop body is inlined (no calls left) and runs on SIMD vectors."""
    run(name, np.ones(4, dt))
    loop = LOOPS[name]
    sig = next(s for s in loop.signatures if s[0].dtype == numba.from_dtype(np.dtype(dt)))
    ir = loop.inspect_llvm(sig)
    body = ir[ir.index("define"):]
    body = body[: body.index("\n}\n")]  # the loop's own function
    kind = "double" if dt == np.float64 else "float"
    assert re.search(rf"<(\d+) x {kind}>", body), f"{name} {dt.__name__}: no vector {kind} ops"
    lanes = max(int(n) for n in re.findall(rf"<(\d+) x {kind}>", body))
    assert lanes >= 2
    calls = [c for c in re.findall(r"call [^@]*@([\w.$]+)", body) if not c.startswith("llvm.")]
    assert calls == [], f"{name} {dt.__name__}: calls left in the loop: {calls}"


def test_source_subsets_are_self_contained():
    """Each function's emitted text (with its dependencies) compiles and runs alone."""
    for name in mathlib.FUNCTIONS:
        text = mathlib.source([name])
        assert text.count(f"\ndef {name}(") + text.startswith(f"def {name}(") == 1
        mod = types.ModuleType(f"mathlib_subset_{name}")
        exec(compile(mathlib.HEADER + text, f"<mathlib {name}>", "exec"), mod.__dict__)
        fn = getattr(mod, name)

        @numba.njit(error_model="numpy")
        def one(x, T):
            return fn(x, T)

        want = float(REF[name](MP("0.75")))
        for dt in (np.float64, np.float32):
            got = one(dt(0.75), dt)
            assert one.nopython_signatures[-1].return_type == numba.from_dtype(np.dtype(dt))
            assert abs(got - want) <= 4 * np.finfo(dt).eps * abs(want)
    assert mathlib.source(["fexp", "fexp"]) == mathlib.source(["fexp"])
    with pytest.raises(KeyError, match="no function"):
        mathlib.source(["nope"])


def test_dependencies():
    assert mathlib.dependencies("fsoftplus")[-2:] == ("fexp", "_ml_log1pu")
    assert "fexpm1" in mathlib.dependencies("ftanh")
    assert mathlib.dependencies("_ml_jit") == ()


def test_stub_outside_numba_is_a_clear_error():
    with pytest.raises(TypeError, match="numba-compiled"):
        K.fexp(1.0, np.float64)


def test_generated_files_are_current():
    from pathlib import Path

    assert (Path(mathlib.__file__).with_name("kernels.py")).read_text() == mathlib.module_text(), (
        "run python -m symloss.mathlib"
    )


def test_coefficients_are_reproducible():
    """fit.py regenerates coefficients.py byte for byte (Remez in mpmath)."""
    from pathlib import Path

    assert fit.render(fit.fit_all()) == Path(fit.__file__).with_name("coefficients.py").read_text()
