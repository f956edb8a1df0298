"""Any symloss loss as a CatBoost objective and metric (optional: needs ``catboost``).

CatBoost's custom objective returns derivatives of the log-likelihood, i.e.
the *negatives* of the loss's gradient and Hessian: ``calc_ders_range``
(one margin per sample) returns ``[(-g, -h), ...]`` and ``calc_ders_multi``
(a class axis, called once per sample) ``(-g, -H)`` with H the diagonal the
Hessian policy gives, as a K x K matrix.  CatBoost tries to numba-jit these
methods; they call symloss's own compiled kernels, so it falls back to
calling them from Python.

The start score: :func:`fit` trains from ``baseline`` = the loss's optimal
constant and then sets it as the model's bias (``set_scale_and_bias``), so the
fitted model predicts with it::

    model = CatBoostRegressor(loss_function=symloss.catboost.objective("huber"),
                              eval_metric=symloss.catboost.metric("huber"))
    symloss.catboost.fit(model, X, y)
"""
from __future__ import annotations

import numpy as np

from .boosting import BoostLoss, as_boost_loss
from .boosting import base_margin as _base_margin

__all__ = ["base_margin", "fit", "metric", "objective"]


class Objective:
    """A CatBoost ``loss_function`` object over a :class:`~symloss.boosting.BoostLoss`."""

    def __init__(self, loss: BoostLoss):
        self.loss = loss

    def calc_ders_range(self, approxes, targets, weights):
        m = np.asarray(approxes, dtype=np.float64)
        g, h = self.loss.grad_hess(np.asarray(targets), m, None if weights is None else np.asarray(weights))
        return list(zip((-g).tolist(), (-h).tolist()))

    def calc_ders_multi(self, approx, target, weight):
        m = np.asarray(approx, dtype=np.float64)[None, :]
        w = None if weight is None else np.array([weight], dtype=np.float64)
        g, h = self.loss.grad_hess(np.array([target]), m, w)
        return (-g[0]).tolist(), np.diag(-h[0]).tolist()

    def __repr__(self) -> str:
        return f"symloss.catboost.objective({self.loss!r})"


class Metric:
    """A CatBoost ``eval_metric`` object: the weighted mean loss on raw margins (lower is better)."""

    def __init__(self, loss: BoostLoss):
        self.loss = loss

    def is_max_optimal(self):
        return False

    def evaluate(self, approxes, target, weight):
        m = np.asarray(approxes, dtype=np.float64)
        m = m[0] if m.shape[0] == 1 else m.T  # CatBoost hands (dims, n)
        y = np.asarray(target)
        w = None if weight is None else np.asarray(weight, dtype=np.float64)
        wsum = float(len(y) if w is None else w.sum())
        return self.loss.value(y, m, w) * wsum, wsum

    def get_final_error(self, error, weight):
        return error / weight if weight else 0.0


def objective(loss, hessian: str | None = None, link: str | None = "auto", **params) -> Objective:
    return Objective(as_boost_loss(loss, hessian=hessian, link=link, **params))


def metric(loss, link: str | None = "auto", **params) -> Metric:
    return Metric(as_boost_loss(loss, hessian="clip", link=link, **params))


def base_margin(loss, y, sample_weight=None, num_class: int | None = None, **params):
    """The optimal constant raw margin (float, or (K,) with a class axis): CatBoost's ``baseline``."""
    return _base_margin(loss, y, sample_weight, num_class=num_class, **params)


def fit(model, X, y, sample_weight=None, *, start="auto", **fit_kwargs):
    """``model.fit`` for a CatBoost model whose ``loss_function`` is :func:`objective`'s, trained from
    the loss's optimal constant (``baseline``), which becomes the model's bias; returns the model."""
    from catboost import Pool

    obj = model.get_params().get("loss_function")
    if not isinstance(obj, Objective):
        raise TypeError("fit() needs a CatBoost model with loss_function=symloss.catboost.objective(...)")
    y_arr = np.asarray(y)
    if obj.loss.row and not model.get_params().get("classes_count"):
        model.set_params(classes_count=_classes(model, y_arr))  # the approx dimension of a custom objective
    if start is None:
        model.fit(X, y_arr, sample_weight=sample_weight, **fit_kwargs)
        return model
    if isinstance(start, str) and start == "auto":
        start = obj.loss.start(y_arr, sample_weight, num_class=_classes(model, y_arr) if obj.loss.row else None)
    start = np.asarray(start, dtype=np.float64)
    n = len(y_arr)
    baseline = np.full(n, float(start)) if start.ndim == 0 else np.tile(start, (n, 1))
    model.fit(Pool(X, y_arr, weight=sample_weight, baseline=baseline), **fit_kwargs)
    model.set_scale_and_bias(1.0, float(start) if start.ndim == 0 else start.tolist())
    return model


def _classes(model, y) -> int:
    return int(model.get_params().get("classes_count") or int(np.max(y)) + 1)
