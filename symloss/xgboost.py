"""Any symloss loss as an XGBoost objective and metric (optional: needs ``xgboost``).

XGBoost hands a custom objective raw margins, shape (n,) or (n, K) with
``num_class``; the objective returns per-sample gradient and Hessian of the
summed loss, weights applied.  A custom objective never estimates the
intercept (``base_score`` stays 0.5), so :func:`train` and
:func:`sklearn_objective`'s users set it from :func:`base_margin`: a scalar
``base_score`` (a vector of K for a class axis), stored in the model.

Native API::

    booster = symloss.xgboost.train("huber", {"max_depth": 4}, dtrain, 100, loss_params={"delta": 1.0})
    # or by hand:
    xgb.train({**params, "base_score": base_margin("huber", y)}, dtrain, 100,
              obj=objective("huber"), custom_metric=metric("huber"))

scikit-learn API::

    XGBRegressor(objective=sklearn_objective("huber"), base_score=base_margin("huber", y),
                 eval_metric=sklearn_metric("huber"))
"""
from __future__ import annotations

import numpy as np

from .boosting import BoostLoss, as_boost_loss
from .boosting import base_margin as _base_margin

__all__ = ["base_margin", "dask_train", "metric", "objective", "sklearn_metric", "sklearn_objective", "train"]


class Objective:
    """``obj(predt, dtrain) -> (grad, hess)`` for ``xgb.train``; margins in, XGBoost's shapes out.

    The arrays returned are kept buffers, overwritten by the next call in the same thread (copy
    them to keep them); labels and weights are checked once and re-checked only when they change.
    """

    def __init__(self, loss: BoostLoss):
        self.loss = loss

    def __call__(self, predt, dtrain):
        # kept buffers: XGBoost copies the gradients into its own within the round
        return self.loss.grad_hess(dtrain.get_label(), predt, dtrain.get_weight(), reuse=True)

    def __repr__(self) -> str:
        return f"symloss.xgboost.objective({self.loss!r})"


class SklearnObjective:
    """``objective(y_true, y_pred, sample_weight=None) -> (grad, hess)`` for ``XGBRegressor`` and friends
    (kept buffers, as :class:`Objective`)."""

    def __init__(self, loss: BoostLoss):
        self.loss = loss

    def __call__(self, y_true, y_pred, sample_weight=None):
        return self.loss.grad_hess(y_true, y_pred, sample_weight, reuse=True)


class Metric:
    """``custom_metric(predt, dmatrix) -> (name, weighted mean loss)`` on raw margins (lower is better).

    XGBoost passes raw margins to a custom metric when the objective is custom;
    with a built-in objective pass ``output_margin`` predictions yourself.
    """

    def __init__(self, loss: BoostLoss, name: str | None = None):
        self.loss = loss
        self.__name__ = name or loss.source.name

    def __call__(self, predt, dmatrix):
        return self.__name__, self.loss.value(dmatrix.get_label(), predt, dmatrix.get_weight())


class SklearnMetric:
    """``eval_metric(y_true, y_pred, sample_weight=None) -> float`` for the scikit-learn API."""

    def __init__(self, loss: BoostLoss, name: str | None = None):
        self.loss = loss
        self.__name__ = name or loss.source.name

    def __call__(self, y_true, y_pred, sample_weight=None):
        return self.loss.value(y_true, y_pred, sample_weight)


def objective(loss, hessian: str | None = None, link: str | None = "auto", **params) -> Objective:
    """The native-API objective of ``loss`` (a name, spec path or Loss) with ``params``."""
    return Objective(as_boost_loss(loss, hessian=hessian, link=link, **params))


def sklearn_objective(loss, hessian: str | None = None, link: str | None = "auto", **params) -> SklearnObjective:
    return SklearnObjective(as_boost_loss(loss, hessian=hessian, link=link, **params))


def metric(loss, name: str | None = None, link: str | None = "auto", **params) -> Metric:
    return Metric(as_boost_loss(loss, hessian="clip", link=link, **params), name)


def sklearn_metric(loss, name: str | None = None, link: str | None = "auto", **params) -> SklearnMetric:
    return SklearnMetric(as_boost_loss(loss, hessian="clip", link=link, **params), name)


def base_margin(loss, y, sample_weight=None, num_class: int | None = None, **params):
    """The optimal constant raw margin (float, or (K,) with a class axis): XGBoost's ``base_score``."""
    return _base_margin(loss, y, sample_weight, num_class=num_class, **params)


def _score(start):
    """XGBoost's base_score: a float, or a list of K for a class axis (stored in the model)."""
    return [float(v) for v in start] if np.ndim(start) else float(start)


def train(loss, params: dict, dtrain, num_boost_round: int = 10, *, loss_params: dict | None = None,
          hessian: str | None = None, start: str | None = "auto", metric: bool = True, **kwargs):
    """``xgb.train`` with the symloss objective, its metric, and its start score as ``base_score``.

    ``start="auto"`` computes the start score from ``dtrain``'s labels and weights
    (unless ``params`` has ``base_score`` or ``dtrain`` a base margin); a number
    (or K) is used as it is; ``None`` keeps XGBoost's (0.5 for a custom objective).
    """
    import xgboost as xgb

    bl = as_boost_loss(loss, hessian=hessian, **(loss_params or {}))
    if start is not None and "base_score" not in params and dtrain.get_base_margin().size == 0:
        if isinstance(start, str) and start == "auto":
            w = dtrain.get_weight()
            start = bl.start(dtrain.get_label(), w if w.size else None, num_class=params.get("num_class"))
        params = {**params, "base_score": _score(start)}
    if metric and "custom_metric" not in kwargs:
        kwargs["custom_metric"] = Metric(bl)
        params = {**params, "disable_default_eval_metric": 1}
    return xgb.train(params, dtrain, num_boost_round, obj=Objective(bl), **kwargs)


def dask_train(client, loss, params: dict, X, y, num_boost_round: int = 10, *, sample_weight=None,
               loss_params: dict | None = None, hessian: str | None = None, start="auto", metric: bool = True,
               **kwargs) -> dict:
    """``xgboost.dask.train`` on Dask collections ``X``, ``y`` (arrays or DataFrames) with the symloss
    objective; each worker calls it on its own partitions.  The start score is computed from ``y``
    by a distributed Newton (:mod:`symloss.boosting.dask`) and stored as ``base_score``.
    Returns xgboost.dask.train's ``{"booster", "history"}``."""
    import xgboost.dask as xgb_dask

    from .boosting import dask as _dask

    bl = as_boost_loss(loss, hessian=hessian, **(loss_params or {}))
    if start is not None and "base_score" not in params:
        if isinstance(start, str) and start == "auto":
            start = _dask.base_margin(bl, y, sample_weight, num_class=params.get("num_class"))
        params = {**params, "base_score": _score(start)}
    if metric and "custom_metric" not in kwargs:
        kwargs["custom_metric"] = Metric(bl)
        params = {**params, "disable_default_eval_metric": 1}
    dtrain = xgb_dask.DaskDMatrix(client, X, y, weight=sample_weight)
    return xgb_dask.train(client, params, dtrain, num_boost_round, obj=Objective(bl), **kwargs)
