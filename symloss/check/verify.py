"""Verify a loss's kernels: finite differences, mpmath reference, reductions.

Used by ``symloss check`` and by the test suite.  Every check returns a
:class:`Result`; nothing here raises on a numerical failure.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runtime.loss import Loss
from .reference import Reference
from .sampling import sample_inputs

# Relative-or-absolute tolerances against the 50-digit reference.
REFERENCE_TOL = {np.float64: 1e-12, np.float32: 1e-5}
FD_TOL = 1e-6


@dataclass(frozen=True)
class Result:
    loss: str
    check: str
    max_error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return bool(self.max_error <= self.tolerance)

    def __str__(self) -> str:
        flag = "ok  " if self.ok else "FAIL"
        return f"{flag} {self.loss:<14} {self.check:<34} err {self.max_error:.2e} (tol {self.tolerance:.0e})"


def _rel_err(got: np.ndarray, want: np.ndarray, floor: float = 1.0) -> float:
    got = np.asarray(got, dtype=np.float64)
    bad = np.isnan(got) != np.isnan(want)
    if bad.any():
        return float("inf")
    both = ~np.isnan(want)
    if not both.any():
        return 0.0
    diff = np.abs(got[both] - want[both]) / np.maximum(np.abs(want[both]), floor)
    return float(diff.max()) if diff.size else 0.0


def _list(x):
    return list(x) if isinstance(x, tuple) else [x]


def check_finite_differences(loss: Loss, n: int = 64, seed: int = 1) -> list[Result]:
    """Gradient vs central differences of the value kernel, Hessian vs those of the gradient.

    Points where left and right differences disagree straddle a kink and are
    skipped; at most a quarter of the points may be skipped.
    """
    cols = sample_inputs(loss.spec, n, seed)
    pred_idx = [k for k, i in enumerate(loss.spec.inputs) if i.differentiable]
    results = []
    grads = _list(loss.grad(*cols, reduction="none"))
    hess = loss.hessian(*cols)
    for gi, k in enumerate(pred_idx):
        x = cols[k]
        h = 1e-6 * np.maximum(1.0, np.abs(x))

        def shifted(step, fn):
            c = list(cols)
            c[k] = x + step
            return fn(*c)

        def value(*c):
            return loss.value(*c, reduction="none")

        name = loss.predictions[gi]
        fd_checks = [(f"grad[{name}] vs finite diff", value, grads[gi])]
        for gj, _ in enumerate(pred_idx):
            want = hess if len(pred_idx) == 1 else hess[gi, gj]
            fd_checks.append(
                (f"hessian[{name},{loss.predictions[gj]}] vs finite diff",
                 lambda *c, gj=gj: _list(loss.grad(*c, reduction="none"))[gj], want)
            )
        for label, fn, analytic in fd_checks:
            f0, fp, fm = fn(*cols), shifted(h, fn), shifted(-h, fn)
            central = (fp - fm) / (2 * h)
            right, left = (fp - f0) / h, (f0 - fm) / h
            scale = np.maximum(1.0, np.abs(analytic))
            smooth = np.abs(right - left) <= 1e-3 * scale
            skipped = np.count_nonzero(~smooth)
            err = np.abs(central - analytic)[smooth] / scale[smooth]
            max_err = float(err.max()) if err.size else 0.0
            if skipped > n // 4:
                max_err = float("inf")
            results.append(Result(loss.name, label, max_err, FD_TOL))
    results += _param_finite_differences(loss, cols, n)
    return results


def _param_finite_differences(loss: Loss, cols, n: int) -> list[Result]:
    """Each parameter derivative vs central differences of the value kernel in that parameter."""
    if not loss.derivation.param_wrt:
        return []
    results = []
    analytic = loss.param_grad(*cols, reduction="none")
    spec_params = {q.name: q for q in loss.spec.params}
    for name, got in analytic.items():
        p = loss.params[name]
        h = 1e-6 * max(1.0, abs(p))

        def at(step):
            return loss.value(*cols, reduction="none", **{name: p + step})

        if spec_params[name].violation(p - h) is None:
            fd = (at(h) - at(-h)) / (2 * h)
        else:  # at a bound: one-sided, second order
            fd = (4 * at(h) - 3 * at(0.0) - at(2 * h)) / (2 * h)
        scale = np.maximum(1.0, np.abs(got))
        err = np.abs(fd - got) / scale
        results.append(Result(loss.name, f"param[{name}] vs finite diff", float(err.max()), FD_TOL))
    return results


def check_reference(loss: Loss, dtype=np.float64, n: int = 48, seed: int = 2) -> list[Result]:
    """Every kernel output vs the 50-digit evaluation of the textbook derivation."""
    ref = Reference(loss.derivation)
    cols = [c.astype(dtype) for c in sample_inputs(loss.spec, n, seed)]
    params = list(loss.params.values())
    tol = REFERENCE_TOL[np.dtype(dtype).type]
    tag = np.dtype(dtype).name
    value, grads = loss.value_and_grad(*cols, reduction="none")
    results = [Result(loss.name, f"value {tag} vs mpmath", _rel_err(value, ref.evaluate(ref.loss, cols, params)), tol)]
    for name, g, fn in zip(loss.predictions, _list(grads), ref.grads):
        results.append(Result(loss.name, f"grad[{name}] {tag} vs mpmath", _rel_err(g, ref.evaluate(fn, cols, params)), tol))
    hess = loss.hessian(*cols)
    for (i, j), fn in ref.hessian.items():
        got = hess if len(loss.predictions) == 1 else hess[i, j]
        label = f"hessian[{loss.predictions[i]},{loss.predictions[j]}] {tag} vs mpmath"
        results.append(Result(loss.name, label, _rel_err(got, ref.evaluate(fn, cols, params)), tol))
    if ref.params:
        for name, got in loss.param_grad(*cols, reduction="none").items():
            want = ref.evaluate(ref.params[name], cols, params)
            results.append(Result(loss.name, f"param[{name}] {tag} vs mpmath", _rel_err(got, want), tol))
    return results


def check_fused(loss: Loss, n: int = 40, seed: int = 3) -> list[Result]:
    """Fused kernels and reductions agree with the separate ones."""
    cols = sample_inputs(loss.spec, n, seed)
    w = np.random.default_rng(seed).uniform(0.1, 2.0, n)
    per = loss.value(*cols, reduction="none")
    g_none = _list(loss.grad(*cols, reduction="none"))
    v, g = loss.value_and_grad(*cols, sample_weight=w)
    gg, hh = loss.grad_hessian(*cols)
    errs = [
        abs(v - np.sum(w * per) / np.sum(w)) / max(1.0, abs(v)),
        max(_rel_err(a, w * b / np.sum(w)) for a, b in zip(_list(g), g_none)),
        max(_rel_err(a, b) for a, b in zip(_list(gg), g_none)),
        _rel_err(hh, loss.hessian(*cols)),
        abs(loss.value(*cols, reduction="sum") - per.sum()) / max(1.0, abs(per.sum())),
    ]
    return [Result(loss.name, "fused kernels and reductions agree", float(max(errs)), 1e-12)]


def check_loss(loss: Loss, grid: bool = True) -> list[Result]:
    from .grid import check_grid  # imports this module

    return (
        check_finite_differences(loss)
        + check_reference(loss, np.float64)
        + check_reference(loss, np.float32)
        + check_fused(loss)
        + (check_grid(loss) if grid else [])
    )
