"""High-precision reference: the textbook derivation evaluated in mpmath."""
from __future__ import annotations

from collections.abc import Sequence

import mpmath
import numpy as np
import sympy as sp

from ..derive import Derivation
from ..derive.primitives import mpmath_namespace

DIGITS = 50


class Reference:
    """Loss, gradients and Hessian entries of the *unrewritten* expression, in mpmath."""

    def __init__(self, derivation: Derivation):
        spec = derivation.spec
        self.args = [spec.symbols[i.name] for i in spec.inputs] + [spec.symbols[p.name] for p in spec.params]
        d = derivation.naive
        modules = [mpmath_namespace(), {"sign": mpmath.sign}, "mpmath"]
        make = lambda e: sp.lambdify(self.args, e, modules=modules)  # noqa: E731
        self.loss = make(d.loss)
        self.grads = [make(g) for g in d.grads]
        self.hessian = {k: make(h) for k, h in d.hessian.items()}
        self.params = {p.name: make(e) for p, e in zip(derivation.param_wrt, d.params)}

    def evaluate(self, fn, columns: Sequence[np.ndarray], params: Sequence[float]) -> np.ndarray:
        """``fn`` at every row of ``columns`` (float inputs taken exactly), as float64."""
        out = np.empty(len(columns[0]))
        with mpmath.workdps(DIGITS):
            ps = [mpmath.mpf(float(p)) for p in params]
            for k in range(len(out)):
                xs = [mpmath.mpf(float(c[k])) for c in columns]
                try:
                    out[k] = real_or_nan(fn(*xs, *ps))
                except (TypeError, ZeroDivisionError, ValueError):  # complex compared, 1/0: undefined
                    out[k] = float("nan")
        return out


def strict_namespace() -> dict:
    """mpmath functions that give NaN for an argument off the real line.

    The plain namespace lets a complex intermediate come back real: with
    log(-inf) = inf + i pi, exp(-(that)) is 0 and 1/(1 + exp(...)) is 1, where
    the real-valued loss is undefined.  Here every function of a non-real
    argument is NaN, as in the kernels; a fuzzer's random expressions meet
    this where the curated catalog does not.
    """

    def strict(fn):
        def call(*args):
            if any(isinstance(a, mpmath.mpc) and a.imag != 0 for a in args):
                return mpmath.nan
            return fn(*args)

        return call

    names = ("exp", "log", "sqrt", "cosh", "sinh", "tanh", "fabs", "sign", "log1p", "expm1")
    return {**{n: strict(getattr(mpmath, n)) for n in names}, "abs": strict(abs), **mpmath_namespace()}


def real_part(value):
    """A reference value, NaN where the expression leaves the reals (a negative
    number to a fractional power), as the real-valued kernels do."""
    if isinstance(value, mpmath.mpc):
        return value.real if value.imag == 0 else mpmath.nan
    return value


def real_or_nan(value) -> float:
    return float(real_part(value))
