"""Verify a row loss's kernels: finite differences, the Hessian's three forms, mpmath, reductions.

* gradient vs central differences of the per-row values;
* the full per-row Hessian vs central differences of the gradient, and
  ``hessian_diag`` and ``hvp`` vs that full Hessian;
* value, gradient and Hessian diagonal vs a 50-digit evaluation of the spec's
  own expression (no rewrites, no shift), its derivatives by 50-digit
  differences, in float64 and float32;
* fused and separate kernels, reductions, row weights and (for index targets)
  class indices vs the equivalent one-hot rows all agree.

Used by ``symloss check`` (through :func:`symloss.check.verify.check_loss`)
and by the tests; nothing here raises on a numerical failure.
"""
from __future__ import annotations

import mpmath
import numpy as np
import sympy as sp

from ..derive.primitives import mpmath_namespace
from ..derive.row import RowDerivation
from .sampling import sample
from .verify import FD_TOL, REFERENCE_TOL, Result, _rel_err

DIGITS = 50
ROWS, CLASSES = 6, 5


def _list(x):
    return list(x) if isinstance(x, tuple) else [x]


def sample_row_inputs(loss, n: int = ROWS, k: int = CLASSES, seed: int = 0) -> list[np.ndarray]:
    """Positional arrays for ``loss``: vector inputs (n, k), scalar inputs (n,)."""
    rng = np.random.default_rng(seed)
    out = []
    for inp in loss.spec_inputs:
        if inp.shape == "scalar":
            out.append(sample(inp.domain, n, rng))
        elif inp.domain == "simplex":
            out.append(rng.dirichlet(np.ones(k), size=n))
        else:
            out.append(sample(inp.domain, n * k, rng).reshape(n, k))
    return out


def sample_class_inputs(loss, k: int = CLASSES, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 100)
    return {name: rng.uniform(0.5, 2.0, k) for name in loss.class_inputs}


class RowReference:
    """The spec's own expression evaluated in mpmath, one row at a time."""

    def __init__(self, loss):
        spec = loss.spec
        d = RowDerivation(spec)
        G, reductions = d._extract(d._to_class_symbols(spec.loss), {}, norms=False)
        self.class_names = [i.name for i in spec.inputs if i.shape in ("vector", "class")]
        self.row_names = [i.name for i in spec.inputs if i.shape == "scalar"] + [p.name for p in spec.params]
        cls = [spec.symbols[n] for n in self.class_names]
        row = [spec.symbols[n] for n in self.row_names] + [spec.symbols[spec.row.size]]
        modules = [mpmath_namespace(), {"sign": mpmath.sign, "Max": mpmath_max, "Min": mpmath_min}, "mpmath"]
        self.reductions = []
        done: list[sp.Symbol] = []
        for r in reductions:
            fn = sp.lambdify(cls + row + done, r.expr, modules=modules)
            self.reductions.append((r.kind, fn))
            done.append(r.symbol)
        self.G = sp.lambdify(row + done, G, modules=modules)

    def value(self, cls: dict[str, list], row: list) -> mpmath.mpf:
        """``cls``: name -> the row's K entries (mpf); ``row``: scalar inputs and params (mpf)."""
        k = len(next(iter(cls.values())))
        row = list(row) + [mpmath.mpf(k)]
        done = []
        for kind, fn in self.reductions:
            terms = [fn(*[cls[n][j] for n in self.class_names], *row, *done) for j in range(k)]
            done.append(mpmath.fsum(terms) if kind == "sum" else _mpmax(terms))
        return self.G(*row, *done)


def mpmath_max(*args):
    return _mpmax(args)


def mpmath_min(*args):
    return -_mpmax([-a for a in args])


def _mpmax(values):
    values = list(values)
    if any(mpmath.isnan(v) for v in values):
        return mpmath.nan
    return max(values)


def _mp_rows(loss, arrays, classes, params):
    """Per row: (class dict of mpf lists, row list of mpf)."""
    spec_inputs = loss.spec_inputs
    n = arrays[[i.name for i in spec_inputs].index(loss.predictions[0])].shape[0]
    out = []
    for r in range(n):
        cls, row = {}, []
        for inp, a in zip(spec_inputs, arrays):
            if inp.shape == "scalar":
                row.append(mpmath.mpf(float(a[r])))
            else:
                cls[inp.name] = [mpmath.mpf(float(x)) for x in a[r]]
        k = len(cls[loss.predictions[0]])
        for name, default in loss.class_inputs.items():
            c = classes.get(name)
            cls[name] = [mpmath.mpf(float(c[j])) if c is not None else mpmath.mpf(default) for j in range(k)]
        row += [mpmath.mpf(float(params.get(p, dflt))) for p, dflt in loss.params.items()]
        out.append((cls, row))
    return out


def reference_derivatives(loss, arrays, classes=None, params=None, hessian=True):
    """50-digit (values, grads per prediction, Hessian diagonals per prediction), as float64 arrays."""
    ref = RowReference(loss)
    classes, params = classes or {}, params or {}
    rows = _mp_rows(loss, arrays, classes, params)
    n, k = len(rows), len(rows[0][0][loss.predictions[0]])
    values = np.empty(n)
    grads = [np.empty((n, k)) for _ in loss.predictions]
    diags = [np.empty((n, k)) for _ in loss.predictions]
    with mpmath.workdps(DIGITS):
        h1, h2 = mpmath.mpf(10) ** -20, mpmath.mpf(10) ** -12
        for r, (cls, row) in enumerate(rows):
            f0 = ref.value(cls, row)
            values[r] = float(f0)
            for p, name in enumerate(loss.predictions):
                for j in range(k):
                    def at(step):
                        shifted = dict(cls)
                        shifted[name] = list(cls[name])
                        shifted[name][j] += step
                        return ref.value(shifted, row)
                    scale = max(mpmath.mpf(1), abs(cls[name][j]))
                    grads[p][r, j] = float((at(h1 * scale) - at(-h1 * scale)) / (2 * h1 * scale))
                    if hessian:
                        diags[p][r, j] = float((at(h2 * scale) - 2 * f0 + at(-h2 * scale)) / (h2 * scale) ** 2)
    return values, grads, diags


def check_finite_differences(loss, n: int = ROWS, k: int = CLASSES, seed: int = 1) -> list[Result]:
    """Gradient vs differences of values; full Hessian vs differences of gradients; diag and hvp vs full."""
    cols = sample_row_inputs(loss, n, k, seed)
    classes = sample_class_inputs(loss, k, seed)
    pred_at = [[i.name for i in loss.spec_inputs].index(p) for p in loss.predictions]
    P = len(pred_at)
    results = []
    grads = _list(loss.grad(*cols, reduction="none", **classes))
    H = loss.hessian(*cols, **classes)
    H = H[None, None] if P == 1 else H  # (P, P, n, k, k)

    def shifted(p, j, step, fn):
        c = [a.copy() for a in cols]
        c[pred_at[p]][:, j] += step
        return fn(*c)

    value = lambda *c: loss.value(*c, reduction="none", **classes)  # noqa: E731
    skipped_any = 0
    for p, name in enumerate(loss.predictions):
        x = cols[pred_at[p]]
        fd_grad = np.empty((n, k))
        ok_grad = np.ones((n, k), bool)
        fd_hess = np.empty((P, n, k, k))  # [q, row, j (varied), i]: d grad_q[i] / d x_p[j]
        ok_hess = np.ones((n, k), bool)
        for j in range(k):
            h = 1e-6 * np.maximum(1.0, np.abs(x[:, j]))
            f0, fp, fm = value(*cols), shifted(p, j, h, value), shifted(p, j, -h, value)
            fd_grad[:, j] = (fp - fm) / (2 * h)
            ok_grad[:, j] = np.abs((fp - f0) / h - (f0 - fm) / h) <= 1e-3 * np.maximum(1.0, np.abs(fd_grad[:, j]))
            g0 = grads
            gp = _list(shifted(p, j, h, lambda *c: loss.grad(*c, reduction="none", **classes)))
            gm = _list(shifted(p, j, -h, lambda *c: loss.grad(*c, reduction="none", **classes)))
            for q in range(P):
                fd_hess[q, :, j, :] = (gp[q] - gm[q]) / (2 * h[:, None])
                right, left = (gp[q] - g0[q]) / h[:, None], (g0[q] - gm[q]) / h[:, None]
                ok_hess[:, j] &= (np.abs(right - left) <= 1e-3 * np.maximum(1.0, np.abs(fd_hess[q, :, j, :]))).all(1)
        scale = np.maximum(1.0, np.abs(grads[p]))
        err = np.abs(fd_grad - grads[p])[ok_grad] / scale[ok_grad]
        skipped = np.count_nonzero(~ok_grad)
        skipped_any += skipped
        max_err = float(err.max()) if err.size else 0.0
        results.append(Result(loss.name, f"grad[{name}] vs finite diff", np.inf if skipped > ok_grad.size // 4 else max_err,
                              FD_TOL))
        for q in range(P):
            # d grad_q[i] / d x_p[j] = H[q, p][i, j]
            want = np.transpose(H[q, p], (0, 2, 1))  # [row, j, i]
            got = fd_hess[q]
            sc = np.maximum(1.0, np.abs(want))
            e = (np.abs(got - want) / sc)[ok_hess]
            me = float(e.max()) if e.size else 0.0
            label = f"hessian[{loss.predictions[q]},{name}] vs finite diff"
            results.append(Result(loss.name, label, np.inf if np.count_nonzero(~ok_hess) > ok_hess.size // 4 else me,
                                  FD_TOL))
    diags = _list(loss.hessian_diag(*cols, **classes))
    for p, name in enumerate(loss.predictions):
        want = np.einsum("njj->nj", H[p, p])
        results.append(Result(loss.name, f"hessian_diag[{name}] vs full Hessian", _rel_err(diags[p], want), 1e-12))
    rng = np.random.default_rng(seed + 7)
    v = tuple(rng.normal(size=(n, k)) for _ in range(P))
    hv = _list(loss.hvp(*cols, v=v if P > 1 else v[0], **classes))
    for p, name in enumerate(loss.predictions):
        want = sum(np.einsum("njk,nk->nj", H[p, q], v[q]) for q in range(P))
        results.append(Result(loss.name, f"hvp[{name}] vs full Hessian", _rel_err(hv[p], want), 1e-12))
    return results


def check_reference(loss, dtype=np.float64, n: int = ROWS, k: int = CLASSES, seed: int = 2) -> list[Result]:
    """Value, gradient and Hessian diagonal vs the 50-digit reference of the spec's expression."""
    cols = [c.astype(dtype) for c in sample_row_inputs(loss, n, k, seed)]
    classes = {name: c.astype(dtype) for name, c in sample_class_inputs(loss, k, seed).items()}
    tol = REFERENCE_TOL[np.dtype(dtype).type]
    tag = np.dtype(dtype).name
    values, grads, diags = reference_derivatives(loss, cols, classes)
    v, g = loss.value_and_grad(*cols, reduction="none", **classes)
    results = [Result(loss.name, f"value {tag} vs mpmath", _rel_err(v, values), tol)]
    for name, got, want in zip(loss.predictions, _list(g), grads):
        results.append(Result(loss.name, f"grad[{name}] {tag} vs mpmath", _rel_err(got, want), tol))
    # the reference's second differences carry ~1e-24 error: far below float32/64 rounding
    hd = _list(loss.hessian_diag(*cols, **classes))
    for name, got, want in zip(loss.predictions, hd, diags):
        results.append(Result(loss.name, f"hessian_diag[{name}] {tag} vs mpmath", _rel_err(got, want),
                              tol))
    return results


def check_fused(loss, n: int = 8, k: int = CLASSES, seed: int = 3) -> list[Result]:
    """Fused kernels, reductions, row weights and class-index targets agree."""
    cols = sample_row_inputs(loss, n, k, seed)
    classes = sample_class_inputs(loss, k, seed)
    w = np.random.default_rng(seed).uniform(0.1, 2.0, n)
    per = loss.value(*cols, reduction="none", **classes)
    g_none = _list(loss.grad(*cols, reduction="none", **classes))
    v, g = loss.value_and_grad(*cols, sample_weight=w, **classes)
    v_none, g2 = loss.value_and_grad(*cols, reduction="none", **classes)
    errs = [
        abs(v - np.sum(w * per) / np.sum(w)) / max(1.0, abs(v)),
        max(_rel_err(a, w[:, None] * b / np.sum(w)) for a, b in zip(_list(g), g_none)),
        _rel_err(v_none, per),
        max(_rel_err(a, b) for a, b in zip(_list(g2), g_none)),
        abs(loss.value(*cols, reduction="sum", **classes) - per.sum()) / max(1.0, abs(per.sum())),
        max(_rel_err(a, b / n) for a, b in zip(_list(loss.grad(*cols, **classes)), g_none)),
    ]
    results = [Result(loss.name, "fused kernels and reductions agree", float(max(errs)), 1e-12)]
    index = loss.spec.row and next((i for i, x in enumerate(loss.spec_inputs) if x.indices), None)
    if index is not None:
        rng = np.random.default_rng(seed + 1)
        t = rng.integers(0, k, n)
        t[1] = -100
        onehot = np.eye(k)[np.where(t >= 0, t, 0)]
        c_idx, c_hot = list(cols), list(cols)
        c_idx[index], c_hot[index] = t, onehot
        v_i, g_i = loss.value_and_grad(*c_idx, reduction="none", **classes)
        v_h, g_h = loss.value_and_grad(*c_hot, reduction="none", **classes)
        live = t != -100
        e = [_rel_err(v_i[live], v_h[live]), float(abs(v_i[~live]).max())]
        e += [_rel_err(a[live], b[live]) for a, b in zip(_list(g_i), _list(g_h))]
        e += [float(abs(a[~live]).max()) for a in _list(g_i)]
        hd_i = _list(loss.hessian_diag(*c_idx, **classes))
        hd_h = _list(loss.hessian_diag(*c_hot, **classes))
        e += [_rel_err(a[live], b[live]) for a, b in zip(hd_i, hd_h)]
        results.append(Result(loss.name, "class indices = one-hot rows; ignore_index", float(max(e)), 1e-12))
    return results


def check_row_loss(loss) -> list[Result]:
    return (
        check_finite_differences(loss)
        + check_reference(loss, np.float64)
        + check_reference(loss, np.float32)
        + check_fused(loss)
    )
