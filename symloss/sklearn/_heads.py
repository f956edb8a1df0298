"""Heads: a loss seen from a linear model's raw outputs Z (n, m).

A head turns per-sample losses into the three per-block quantities every
solver needs: the weighted loss sum, the weighted gradient in Z (n, m), and
the weighted Hessian in Z, either diagonal (n, m) or full (n, m, m).  Sums
are unnormalised: the objective divides by the total sample weight once,
after adding up blocks (the same code serves in-memory data and Dask chunks).

Heads pickle by spec, not by module, so Dask workers can rebuild them.
"""
from __future__ import annotations

import numpy as np

from ..boosting import link as _link
from ..boosting.core import _check_domain
from ..dask_arrays import LossRef
from ..errors import InputError
from ..runtime import load

# Losses whose minimum needs a solver for non-smooth problems, with their
# piecewise-linear form loss(z) = lo * max(0, t - z) + hi * max(0, z - t),
# as functions (y, params) -> (t, lo, hi).  Those are solved exactly as
# linear programs (scipy's HiGHS); see _solvers.lp.
PIECEWISE_LINEAR = {
    "mae": lambda y, p: (y, np.ones_like(y), np.ones_like(y)),
    "quantile": lambda y, p: (y, np.full_like(y, p.get("tau", 0.5)), np.full_like(y, 1 - p.get("tau", 0.5))),
    "hinge": lambda y, p: (y, (y > 0).astype(float), (y < 0).astype(float)),
}


def _differentiable(loss) -> bool:
    """False where symloss's derived properties find a kink (smoothness C0, e.g. abs(yhat - y)
    written with from_expr): Newton's and L-BFGS's guarantees need a continuous gradient."""
    try:
        from ..docs.properties import properties

        return properties(loss.spec, loss).smoothness != "C0"
    except Exception:  # an analysis that cannot decide leaves the loss to the smooth solvers
        return True


def resolve_loss(loss):
    """A Loss from a catalog name, a spec path, or a Loss/RowLoss object."""
    if isinstance(loss, str):
        return load(loss)
    if hasattr(loss, "spec") and hasattr(loss, "value"):
        return loss
    raise TypeError(f"loss must be a catalog name, a spec path or a symloss Loss, got {type(loss).__name__}")


_COMPOSED: dict = {}  # id(loss) -> (loss, composed): composing derives kernels; the pair keeps the id taken


def margin_loss(loss):
    """The loss on the model's raw output z = x w + b.

    As the boosting objectives do (symloss.boosting.link), a loss on a probability
    (bce's p) or a positive mean is composed with its link, p = sigmoid(z) or
    mu = exp(z): a linear p would leave (0, 1) and the loss would be infinite.  A
    prediction that is a distribution (simplex) has no scalar link: an InputError
    names the loss to use."""
    dom = _link.needs_link(loss)
    if dom is None:
        return loss
    if loss.spec.kind == "row":
        raise InputError(f"{loss.name}: its prediction is a {dom}, not raw class scores; "
                         f"use {_link.ALTERNATIVE.get(dom, 'cross_entropy')}")
    if id(loss) not in _COMPOSED:
        _COMPOSED[id(loss)] = (loss, _link.compose(loss))
    return _COMPOSED[id(loss)][1]


def check_targets(loss, y, shown: str | None = None, hint: str = ""):
    """y (any shape) inside the loss's target domain, by the rule the boosting objectives
    apply; else an InputError naming the loss and the first bad label (plus ``hint``)."""
    try:
        _check_domain(loss, shown or loss.name, np.asarray(y, dtype=float).ravel())
    except InputError as e:
        raise InputError(f"{e}{hint}") from None
    return y


class ElementwiseHead:
    """An elementwise loss applied to each of m output columns (m > 1: one-vs-rest)."""

    full_hessian = False

    def __init__(self, loss, params: dict, m: int = 1):
        self.ref = LossRef(loss)
        self.params = dict(params)
        self.m = m
        loss = self.ref.loss
        if len(loss.predictions) != 1 or len(loss.inputs) != 2:
            raise ValueError(f"{loss.name}: a linear model needs a loss of one target and one prediction")
        self.smooth = loss.name not in PIECEWISE_LINEAR and _differentiable(loss)

    @property
    def loss(self):
        return self.ref.loss

    # Y is (n,) with one output, (n, m) with several; Z is always (n, m).
    def _args(self, Y, Z, sw):
        if Y.ndim == 1:
            return Y, np.ascontiguousarray(Z[:, 0]), sw
        return Y, Z, np.ascontiguousarray(np.broadcast_to(sw[:, None], Y.shape))

    def value(self, Y, Z, sw):
        y, z, w = self._args(Y, Z, sw)
        return float(self.loss.value(y, z, reduction="sum", sample_weight=w, **self.params))

    def value_grad(self, Y, Z, sw):
        y, z, w = self._args(Y, Z, sw)
        v, g = self.loss.value_and_grad(y, z, reduction="sum", sample_weight=w, **self.params)
        return float(v), g.reshape(Z.shape)

    def grad_hess(self, Y, Z, sw):
        y, z, w = self._args(Y, Z, sw)
        g, h = self.loss.grad_hessian(y, z, sample_weight=w, **self.params)
        return g.reshape(Z.shape), h.reshape(Z.shape)


class RowHead:
    """A row loss (e.g. softmax cross-entropy) over K columns, targets as class indices."""

    full_hessian = True
    smooth = True

    def __init__(self, loss, params: dict, m: int):
        self.ref = LossRef(loss)
        self.params = dict(params)
        self.m = m

    @property
    def loss(self):
        return self.ref.loss

    def value(self, Y, Z, sw):
        return float(self.loss.value(Y, Z, reduction="sum", sample_weight=sw, **self.params))

    def value_grad(self, Y, Z, sw):
        v, g = self.loss.value_and_grad(Y, Z, reduction="sum", sample_weight=sw, **self.params)
        return float(v), g

    def grad_hess(self, Y, Z, sw):
        g = self.loss.grad(Y, Z, reduction="sum", sample_weight=sw, **self.params)
        return g, self.loss.hessian(Y, Z, sample_weight=sw, **self.params)


class CombinedHead:
    """Several tasks side by side: task t reads target column t and its own Z columns.

    ``scales`` multiplies each task's sum (fixed weights, or exp(-s_t) for
    uncertainty weighting); the Hessian is block diagonal across tasks.
    """

    def __init__(self, heads: list, scales):
        self.heads = heads
        self.scales = np.asarray(scales, dtype=float)
        self.m = sum(h.m for h in heads)
        self.full_hessian = any(h.full_hessian for h in heads)
        self.smooth = all(h.smooth for h in heads)
        stops = np.cumsum([0] + [h.m for h in heads])
        self.slices = [slice(a, b) for a, b in zip(stops[:-1], stops[1:])]

    def _task(self, t, Y):
        y = Y[:, t]
        return y.astype(np.int64) if isinstance(self.heads[t], RowHead) else np.ascontiguousarray(y)

    def task_values(self, Y, Z, sw):
        return np.array([h.value(self._task(t, Y), np.ascontiguousarray(Z[:, s]), sw)
                         for t, (h, s) in enumerate(zip(self.heads, self.slices))])

    def value(self, Y, Z, sw):
        return float(self.scales @ self.task_values(Y, Z, sw))

    def value_grad(self, Y, Z, sw):
        total, G = 0.0, np.empty_like(Z)
        for t, (h, s) in enumerate(zip(self.heads, self.slices)):
            v, g = h.value_grad(self._task(t, Y), np.ascontiguousarray(Z[:, s]), sw)
            total += self.scales[t] * v
            G[:, s] = self.scales[t] * g
        return total, G

    def grad_hess(self, Y, Z, sw):
        n = Z.shape[0]
        G = np.empty_like(Z)
        H = np.zeros((n, self.m, self.m)) if self.full_hessian else np.empty_like(Z)
        for t, (h, s) in enumerate(zip(self.heads, self.slices)):
            g, hh = h.grad_hess(self._task(t, Y), np.ascontiguousarray(Z[:, s]), sw)
            G[:, s] = self.scales[t] * g
            if not self.full_hessian:
                H[:, s] = self.scales[t] * hh
            elif h.full_hessian:
                H[:, s, s] = self.scales[t] * hh
            else:
                idx = np.arange(s.start, s.stop)
                H[:, idx, idx] = self.scales[t] * hh
        return G, H
