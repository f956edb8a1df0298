"""The extreme-input accuracy grid: every kernel against 50-digit mpmath.

Predictions sweep many orders of magnitude (logits to ±1e4, residuals to
±1e150, probabilities down to 1e-300); targets take a few typical and exact
values; parameters take their default and their limits.  A kernel output
must be within ``rtol`` relative of the reference wherever the reference is a
finite float, relaxed only by the output's condition number with respect to
the *predictions* (a result that is a cancellation inherent in the function,
e.g. the Poisson loss at its zero crossing, cannot be more accurate than its
inputs' last bit).  Cancellations that a better formula avoids are not
excused: the grid holds targets fixed and exact.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp

from ..derive import nonsmooth
from ..derive.primitives import mpmath_namespace
from ..runtime.loss import Loss
from .reference import real_part
from .verify import Result

_MAG = [0.0, 1e-300, 1e-150, 1e-20, 1e-8, 1e-3, 0.5, 1.0, 3.0, 30.0, 700.0, 1e4, 1e20, 1e150]
# Predictions a hair from the real targets below: a residual y - yhat expanded
# into y^2 - 2 y yhat + yhat^2 loses every digit there.
_NEAR_TARGETS = [1.5 * (1 + 1e-9), -2.0 * (1 - 1e-9)]
PREDICTION_GRID = {
    "real": sorted({s * m for m in _MAG for s in (1.0, -1.0)} | set(_NEAR_TARGETS)),
    "positive": [1e-300, 1e-20, 1e-3, 0.5, 1.0, 7.0, 1e3, 1e20, 1e150],
    "unit": [1e-300, 1e-20, 1e-8, 0.1, 0.5, 0.9, 1 - 1e-8, 1 - 2.0**-53],
}
PREDICTION_GRID["unit_closed"] = PREDICTION_GRID["unit"]
PREDICTION_GRID["binary"] = [0.0, 1.0]
PREDICTION_GRID["sign"] = [-1.0, 1.0]
TARGET_GRID = {
    "real": [0.0, 1.5, -2.0],
    "positive": [1e-3, 1.0, 7.0],
    "unit": [0.25, 0.5],
    "unit_closed": [0.0, 0.25, 1.0],
    "binary": [0.0, 1.0],
    "sign": [-1.0, 1.0],
}
# Several predictions multiply the grid; thin each axis.
SMALL_GRID = {
    "real": [-1e150, -1e4, -3.0, -1e-3, 0.0, 1e-8, 0.5, 30.0, 1e20],
    "positive": [1e-20, 1e-3, 1.0, 7.0, 1e20],
}
RTOL = {np.float64: 1e-12, np.float32: 1e-5}
DIGITS = 50
# float32 covers the same relative span of its exponent range: 1e150 is about
# sqrt(float64 max), 1e18 about sqrt(float32 max)
FLOAT32_CLIP = 1e18


def _dps(xs: tuple[float, ...]) -> int:
    """Working digits for a point: 1 - 1e-300 or log(1 + e^700) - 700 need hundreds."""
    spread = max((abs(np.log10(abs(x))) for x in xs if x != 0), default=0.0)
    growth = max((min(abs(x), 1e4) * 0.4343 for x in xs if abs(x) > 1), default=0.0)
    return int(DIGITS + min(700, 2 * spread + growth))


def _for_dtype(x: float, dtype) -> float:
    if dtype == np.float32 and x != 0:
        return float(np.sign(x) * min(max(abs(x), 1 / FLOAT32_CLIP), FLOAT32_CLIP))
    return x


def _special_values(loss: Loss) -> dict[str, list[float]]:
    """Parameter values the loss special-cases (``Piecewise`` branches on ``alpha == 0``)."""
    special = {}
    for eq in loss.spec.loss.atoms(sp.Eq):
        for a, b in ((eq.lhs, eq.rhs), (eq.rhs, eq.lhs)):
            if isinstance(a, sp.Symbol) and a.name in loss.params and b.is_Number:
                special.setdefault(a.name, []).append(float(b))
    return special


def _param_sets(loss: Loss) -> list[dict[str, float]]:
    """Defaults, then each parameter at its limits and at the values the loss special-cases."""
    special = _special_values(loss)
    sets = [dict(loss.params)]
    for p in loss.spec.params:
        for limit in (p.min, p.max, 0.0 if p.nonnegative else None, *special.get(p.name, [])):
            if limit is not None and limit != p.default and {**loss.params, p.name: float(limit)} not in sets:
                sets.append({**loss.params, p.name: float(limit)})
    return sets


def grid_points(loss: Loss) -> list[tuple[float, ...]]:
    spec = loss.spec
    several = len(spec.predictions) > 1
    axes = []
    for i in spec.inputs:
        if i.differentiable:
            axes.append(SMALL_GRID.get(i.domain, PREDICTION_GRID[i.domain]) if several else PREDICTION_GRID[i.domain])
        else:
            axes.append(TARGET_GRID[i.domain])
    return list(itertools.product(*axes))


@dataclass
class _Reference:
    """Outputs (loss, grads, Hessian entries) and, for each, its derivatives wrt the predictions."""

    outputs: list[tuple[str, object, list]]  # (label, fn, [d fn / d pred_k])

    @classmethod
    def build(cls, loss: Loss, modules=None, wrt=None) -> "_Reference":
        """``modules`` for lambdify (default: the mpmath namespace); ``wrt``
        the input names whose condition the tolerance allows (default: the predictions)."""
        spec = loss.spec
        d = loss.derivation.naive
        args = [spec.symbols[i.name] for i in spec.inputs] + [spec.symbols[p.name] for p in spec.params]
        preds = [spec.symbols[n] for n in (wrt or [i.name for i in spec.predictions])]
        modules = modules or [mpmath_namespace(), {"sign": mpmath.sign}, "mpmath"]

        def entry(label, expr):
            return (label, sp.lambdify(args, expr, modules=modules),
                    [sp.lambdify(args, nonsmooth.derivative(expr, x), modules=modules) for x in preds])

        names = [i.name for i in spec.predictions]
        out = [entry("value", d.loss)]
        out += [entry(f"grad[{n}]", g) for n, g in zip(names, d.grads)]
        out += [entry(f"hessian[{names[i]},{names[j]}]", h) for (i, j), h in d.hessian.items()]
        special = _special_values(loss)
        n_inputs = len(spec.inputs)
        for p, e in zip(loss.derivation.param_wrt, d.params):
            label, fn, dfns = entry(f"param[{p.name}]", e)
            k = n_inputs + [q.name for q in spec.params].index(p.name)
            at = special.get(p.name, [])
            # the condition terms only size the tolerance: plain digits, beside a special value
            out.append((label, _param_reference(fn, k, at), [_beside(f, k, at) for f in dfns]))
        return cls(out)


def _beside(fn, k: int, values: list[float]):
    """``fn``, moved a relative 1e-15 off the values of argument ``k`` where it is undefined."""

    def near(*args):
        if float(args[k]) in values:
            args = list(args)
            args[k] = args[k] * (1 + mpmath.mpf(10) ** -15) + mpmath.mpf(10) ** -15
        return fn(*args)

    return near


def _param_reference(fn, k: int, values: list[float]):
    """``fn``, a textbook parameter derivative, at enough digits, and as a limit
    in argument ``k`` where that equals one of ``values``.

    Differentiating in a parameter cancels more than in a prediction (Barron's
    d/dalpha: terms of order r^2 sum to order r^6), so this works at three
    times the point's digits.  The formula leaves out the branches at exact
    parameter values (alpha == 2), so there the reference is a limit: the mean
    of both sides at distances 10^-(d/4) and 10^-(d/2) (both sides: the error
    is the square of the distance).  Where the second is much larger the limit
    is infinite (Barron's d/dalpha at alpha = 2 grows like log(1/|alpha - 2|)),
    and the kernel must return inf there.
    """

    def reference(*args):
        d = mpmath.mp.dps
        if float(args[k]) not in values:
            with mpmath.workdps(3 * d):
                return +fn(*args)
        # the distance costs up to d digits (1/distance^2) on top of the 3d above
        with mpmath.workdps(4 * d):
            def side_mean(h):
                lo, hi = list(args), list(args)
                lo[k], hi[k] = args[k] - h, args[k] + h
                return (fn(*lo) + fn(*hi)) / 2

            near, nearer = side_mean(mpmath.mpf(10) ** -(d // 4)), side_mean(mpmath.mpf(10) ** -(d // 2))
            if abs(nearer - near) <= mpmath.mpf(10) ** -20 * abs(nearer):
                return +nearer
            # a logarithmic divergence doubles from 10^-(d/4) to 10^-(d/2); anything else is undecided
            return mpmath.inf * mpmath.sign(nearer) if abs(nearer) > 1.5 * abs(near) else mpmath.nan

    return reference


def _kernel_outputs(loss: Loss, cols: list[np.ndarray], params: dict) -> list[np.ndarray]:
    value, grads = loss.value_and_grad(*cols, reduction="none", **params)
    grads = list(grads) if isinstance(grads, tuple) else [grads]
    hess = loss.hessian(*cols, **params)
    pairs = list(loss.derivation.naive.hessian)
    hs = [hess] if len(loss.predictions) == 1 else [hess[i, j] for i, j in pairs]
    ps = list(loss.param_grad(*cols, reduction="none", **params).values()) if loss.derivation.param_wrt else []
    return [value] + grads + hs + ps


def check_grid(loss: Loss, dtypes=(np.float64, np.float32), param_sets: list[dict] | None = None) -> list[Result]:
    """``param_sets`` replaces the default parameter sets (defaults, limits, special values)."""
    ref = _Reference.build(loss)
    points = grid_points(loss)
    pred_pos = [k for k, i in enumerate(loss.spec.inputs) if i.differentiable]
    worst = {(label, np.dtype(dt).name): 0.0 for label, _, _ in ref.outputs for dt in dtypes}
    where = {}
    for n_set, params in enumerate(param_sets or _param_sets(loss)):
        for dtype in dtypes:
            pts = sorted({tuple(_for_dtype(x, dtype) for x in p) for p in points})
            if n_set:  # parameters at a limit: every third point is enough
                pts = pts[::3]
            cols = [np.array(c, dtype=dtype) for c in zip(*pts)]
            pvals = {k: float(dtype(v)) for k, v in params.items()}
            got = _kernel_outputs(loss, cols, pvals)
            tag = np.dtype(dtype).name
            for n in range(len(pts)):
                point = tuple(float(c[n]) for c in cols)
                with mpmath.workdps(_dps(point + tuple(pvals.values()))):
                    pm = [mpmath.mpf(v) for v in pvals.values()]
                    xs = [mpmath.mpf(x) for x in point]
                    for (label, fn, dfns), out in zip(ref.outputs, got):
                        err = _point_error(fn, dfns, xs, pm, pred_pos, float(out[n]), dtype,
                                           confirmed=worst[(label, tag)])
                        if err > worst[(label, tag)]:
                            worst[(label, tag)] = err
                            where[(label, tag)] = (point, pvals)
    results = []
    for (label, tag), err in worst.items():
        note = f" at {where[(label, tag)]}" if (label, tag) in where and err > 1 else ""
        results.append(Result(loss.name, f"grid {label} {tag}{note}", err, 1.0))
    return results


def _point_error(fn, dfns, xs, params, pred_pos, got: float, dtype, slack: float = 0.0,
                 confirmed: float = 0.0) -> float:
    """Error in units of the allowed tolerance (<= 1 passes); ``slack`` is an
    absolute error allowed on top (a fuzzer's rounding floor).

    A failure is confirmed at four times the digits: the textbook formula can
    cancel beyond the working precision (d/du tanh(u) = 1 - tanh(u)^2 is 0 at
    50 digits for u = 135, where the kernel's sech^2 is 2e-115).  ``confirmed``
    is a failure the caller already holds (its worst so far): an error no larger
    cannot change the verdict or the worst, so it is not confirmed again (a
    wrong derivative fails at most points, and confirming each one at a limit
    of a parameter took minutes)."""
    err = _point_error_at(fn, dfns, xs, params, pred_pos, got, dtype, slack)
    if err > 1 and not (confirmed > 1 and err <= confirmed):
        with mpmath.workdps(4 * mpmath.mp.dps):
            err = _point_error_at(fn, dfns, xs, params, pred_pos, got, dtype, slack)
    return err


def _point_error_at(fn, dfns, xs, params, pred_pos, got: float, dtype, slack: float) -> float:
    try:
        want = fn(*xs, *params)
    except (ZeroDivisionError, ValueError, TypeError):  # TypeError: a complex value compared
        return 0.0  # undefined at this point: nothing to compare
    want = real_part(want)  # NaN outside the reals: nothing to compare, below
    if mpmath.isinf(want):  # infinite: the kernel must say so, with the sign
        return 0.0 if got == float(want) else float("inf")
    if mpmath.isnan(want) or abs(want) > float(np.finfo(dtype).max):
        return 0.0  # undefined, or finite beyond the float range: inf or NaN are right
    if not np.isfinite(got):
        return float("inf")
    eps = float(np.finfo(dtype).eps)
    cond = mpmath.mpf(0)
    for k, dfn in zip(pred_pos, dfns):
        try:
            cond += abs(xs[k] * dfn(*xs, *params))
        except (ZeroDivisionError, ValueError, TypeError):
            pass
    # relative down to the smallest normal number; below it, absolute
    allowed = RTOL[np.dtype(dtype).type] * abs(want) + 8 * eps * cond + float(np.finfo(dtype).tiny) + slack
    return float(abs(mpmath.mpf(got) - want) / allowed)
