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
from symloss.mathlib import accuracy, fit
from symloss.mathlib import kernels as K

MP = mpmath.mpf
REF = accuracy.REF

# relative-error bounds asserted (measured maxima are in bench/README.md)
BOUND = {np.float64: 1e-15, np.float32: 2.5e-7}
# sech2(x) = 4 e/(1 + e)^2, e = exp(-2|x|): where the result is normal but below
# 8 * FLT_MIN (|x| ~ 43.5), e is subnormal and has lost up to 2 bits (2^-22)
FSECH2_F32_BOUND = 4e-7
# where the exact result is subnormal in the dtype: absolute error allowed, in
# units of the smallest subnormal
SUB_UNITS = 4


def run(name, x):
    return accuracy.evaluate(name, x)


@pytest.mark.parametrize("dt", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(mathlib.FUNCTIONS))
def test_accuracy(name, dt):
    """Whole range, thresholds and edges against mpmath at 50 digits."""
    e = accuracy.measure(name, dt)
    assert e["n"] > 3000
    assert e["overflow_wrong"].size == 0, e["overflow_wrong"]
    bound = FSECH2_F32_BOUND if (name, dt) == ("fsech2", np.float32) else BOUND[dt]
    assert e["max_rel"] <= bound, f"{name} {dt.__name__}: rel err {e['max_rel']:.3g} at x={e['worst_x']!r}"
    assert e["max_sub_units"] <= SUB_UNITS, e


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
    loop = accuracy._LOOPS[name]
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


def _free_globals(text):
    """Global names the text's functions read, minus builtins and the header's modules."""
    import builtins
    import symtable

    out = set()

    def walk(table):
        for sym in table.get_symbols():
            if sym.is_global() and sym.is_referenced():
                out.add(sym.get_name())
        for child in table.get_children():
            walk(child)

    walk(symtable.symtable(text, "<mathlib>", "exec"))
    return out - set(dir(builtins)) - {"math", "numba", "np"}


def test_source_subsets_are_self_contained():
    """Each function's emitted text defines every global it reads; one subset
    is also compiled and run alone, in both float types."""
    for name in mathlib.FUNCTIONS:
        text = mathlib.source([name])
        assert text.count(f"\ndef {name}(") + text.startswith(f"def {name}(") == 1
        mod = types.ModuleType(f"mathlib_subset_{name}")
        exec(compile(mathlib.HEADER + text, f"<mathlib {name}>", "exec"), mod.__dict__)
        missing = {g for g in _free_globals(text) if g not in mod.__dict__}
        assert not missing, f"{name}: emitted source lacks {missing}"
    fn = mod.__dict__[name]  # the last one, with its dependencies only

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


def test_python_fallback():
    """Outside compiled code (e.g. NUMBA_DISABLE_JIT=1) the stubs compute with numpy."""
    for name in mathlib.FUNCTIONS:
        fn = getattr(K, name)
        for dt, tol in ((np.float64, 1e-15), (np.float32, 1e-6)):
            for v in (-3.0, -0.5, 1e-9, 0.5, 3.0):
                if name in ("flog", "flog1p") and v <= -0.5:
                    continue
                got = fn(v, dt)
                assert type(got) is dt
                want = float(REF[name](MP(float(dt(v)))))
                assert abs(float(got) - want) <= tol * abs(want), (name, dt, v)
            assert math.isnan(fn(math.nan, dt))


def test_generated_files_are_current():
    from pathlib import Path

    assert (Path(mathlib.__file__).with_name("kernels.py")).read_text() == mathlib.module_text(), (
        "run python -m symloss.mathlib"
    )


def test_coefficients_are_reproducible():
    """fit.py regenerates coefficients.py byte for byte (Remez in mpmath)."""
    from pathlib import Path

    assert fit.render(fit.fit_all()) == Path(fit.__file__).with_name("coefficients.py").read_text()
