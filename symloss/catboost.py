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
from .boosting.start import constant_margins, is_auto, yield_to

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
    the loss's optimal constant (``baseline``), which becomes the model's bias; returns the model.

    The evaluation sets (``eval_set``: an ``(X, y)`` pair, a Pool, a file, or a list of them) start
    from the same constant (a Pool that has a baseline of its own keeps it; the caller's Pools are
    copied, not changed).  A CatBoostClassifier's start comes from its classes as the objective sees
    them, 0..K-1 in sorted order (or ``class_names``' order).  A ``baseline`` of the caller's wins
    (``start="auto"``: no start score of symloss's)."""
    obj = model.get_params().get("loss_function")
    if not isinstance(obj, Objective):
        raise TypeError("fit() needs a CatBoost model with loss_function=symloss.catboost.objective(...)")
    y_arr = np.asarray(y)
    labels, k = _labels(model, y_arr, obj.loss)
    # a baseline of the caller's wins, and is not the model's bias
    start = yield_to(start, "a baseline of the caller's is the start" if fit_kwargs.get("baseline") is not None
                     else None)
    if start is None:
        model.fit(X, y_arr, sample_weight=sample_weight, **fit_kwargs)
        return model
    if is_auto(start):
        start = obj.loss.start(labels, sample_weight, num_class=k)
    start = np.asarray(start, dtype=np.float64)
    if fit_kwargs.get("eval_set") is not None:
        fit_kwargs["eval_set"] = _eval_with_baseline(fit_kwargs["eval_set"], start, model.get_params(), fit_kwargs)
    model.fit(X, y_arr, sample_weight=sample_weight, baseline=constant_margins(start, len(y_arr)), **fit_kwargs)
    model.set_scale_and_bias(1.0, float(start) if start.ndim == 0 else start.tolist())
    return model


def _labels(model, y: np.ndarray, bl: BoostLoss):
    """The targets the objective sees and the class count of a row loss.  A CatBoostClassifier
    with ``class_names`` hands the objective class indices, positions in them; one without them
    (nor ``classes_count``) hands a custom objective the raw labels, so it is given the sorted
    classes as ``class_names`` ({1, 2} and {"a", "b"} become {0, 1}, as a built-in classifier's
    do) where the labels are classes: with a class axis, or two of them.  (Other labels, such as
    probabilities, stay as they are.)"""
    from catboost import CatBoostClassifier

    params = model.get_params()
    if isinstance(model, CatBoostClassifier) and not params.get("classes_count"):
        names = params.get("class_names")
        if names is None:
            classes, codes = np.unique(y, return_inverse=True)
            if not (bl.row or len(classes) == 2) or _sign_target(bl):
                return y, None  # not class labels, or a loss on -1/+1 that takes them as they are
            # the estimator's classes, set once: predict() and classes_ need them, and labels other
            # than codes ({1, 2}, strings) reach the objective as their positions in them
            try:
                model.set_params(class_names=classes.tolist())
            except Exception as e:  # CatBoostError: a fitted model's parameters are fixed
                if not _codes_already(classes):  # (codes reach the objective as they are: go on)
                    raise ValueError(f"{bl.name}: these labels need class_names={classes.tolist()!r}, and this "
                                     f"CatBoost model is fitted already ({e}); give class_names when creating it") \
                        from None
        else:
            classes, index = names, {c: i for i, c in enumerate(names)}
            missing = set(np.unique(y).tolist()) - set(index)
            if missing:
                raise ValueError(f"labels {sorted(missing, key=str)[:5]} are not among the model's class_names")
            codes = np.array([index[c] for c in y.reshape(-1).tolist()])
        return codes.reshape(-1), (len(classes) if bl.row else None)
    if bl.row and not params.get("classes_count"):
        model.set_params(classes_count=int(np.max(y)) + 1)  # the approx dimension of a custom objective
    return y, (int(model.get_params()["classes_count"]) if bl.row else None)


def _sign_target(bl: BoostLoss) -> bool:
    return not bl.row and bl.loss.spec.targets[0].domain == "sign"


def _codes_already(classes: np.ndarray) -> bool:
    """Sorted classes that are 0..K-1 (or False/True) already: they reach the objective unchanged."""
    return classes.dtype.kind in "biuf" and np.array_equal(classes, np.arange(len(classes)))


_FEATURE_KINDS = ("cat_features", "text_features", "embedding_features")


def _eval_with_baseline(eval_set, start: np.ndarray, params: dict, fit_kwargs: dict):
    """``eval_set`` with the start as each set's baseline, in the forms CatBoost takes: an ``(X, y)``
    pair becomes a Pool with the training data's special features (as CatBoost builds it), a file
    is loaded, a Pool without a baseline is copied and given one."""
    from catboost import Pool

    features = {kind: fit_kwargs.get(kind, params.get(kind)) for kind in _FEATURE_KINDS}
    features = {kind: v for kind, v in features.items() if v is not None}

    def one(es):
        if isinstance(es, tuple) and len(es) == 2 and es[0] is not None and es[1] is not None:
            return Pool(es[0], es[1], baseline=constant_margins(start, len(es[1])), **features)
        if isinstance(es, (str, bytes)) or hasattr(es, "__fspath__"):
            es = Pool(es, column_description=fit_kwargs.get("column_description"))
        elif isinstance(es, Pool):
            if es.get_baseline().size:  # the caller's baseline
                return es
            es = es.slice(np.arange(es.num_row()))  # (slice: a copy; the caller's Pool stays as it is)
        else:
            return es  # (CatBoost says what is wrong with it)
        return es.set_baseline(constant_margins(start, es.num_row()))

    return [one(es) for es in eval_set] if isinstance(eval_set, list) else one(eval_set)
