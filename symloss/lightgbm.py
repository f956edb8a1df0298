"""Any symloss loss as a LightGBM objective and metric (optional: needs ``lightgbm``).

LightGBM 4 hands a custom objective raw margins, shape (n,) or (n, K) for
``num_class`` > 1; the objective returns per-sample gradient and Hessian of the
summed loss.  The scikit-learn API does not apply weights for a custom
objective, so :func:`sklearn_objective` takes them (three arguments) and
applies them itself.  A custom objective starts from 0 (``boost_from_average``
does nothing) unless ``init_score`` is set, and ``init_score`` is not stored in
the model; :func:`train` and :func:`fit` set it from :func:`base_margin` and
then fold the constant into the first iteration's trees (as LightGBM's own
``boost_from_average`` does), so ``predict`` needs no extra term.

Native API::

    booster = symloss.lightgbm.train("huber", {"learning_rate": 0.1}, lgb.Dataset(X, y), 100)

scikit-learn API::

    model = LGBMRegressor(objective=symloss.lightgbm.sklearn_objective("huber"))
    symloss.lightgbm.fit(model, X, y)        # start score and folding; plain model.fit(X, y) starts from 0

:func:`train` and :func:`fit` also renew the leaves of losses whose Hessian
vanishes (mae, quantile) as the built-in ``l1`` and ``quantile`` objectives do.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .boosting import BoostLoss, as_boost_loss
from .boosting import base_margin as _base_margin
from .boosting.refresh import refused, wanted
from .boosting.start import constant_margins, is_auto, yield_to

__all__ = ["base_margin", "dask_fit", "fit", "fold_start", "metric", "objective", "sklearn_metric", "sklearn_objective",
           "train"]


class Objective:
    """``params["objective"] = obj``: ``obj(preds, train_data) -> (grad, hess)``.

    The arrays returned are kept buffers, overwritten by the next call in the same thread (copy
    them to keep them); with a class axis they are float32 and F-contiguous, as LightGBM reads them.
    Labels and weights are checked once and re-checked only when they change.
    """

    def __init__(self, loss: BoostLoss):
        self.loss = loss

    def __call__(self, preds, train_data):
        # kept buffers (LightGBM is done with the gradients when the round ends); a class axis comes
        # back F-contiguous in float32, as LightGBM flattens and converts it
        return self.loss.grad_hess(train_data.get_label(), preds, train_data.get_weight(), reuse=True,
                                   layout="lightgbm")

    def __repr__(self) -> str:
        return f"symloss.lightgbm.objective({self.loss!r})"


class SklearnObjective:
    """``LGBMRegressor(objective=obj)``: ``obj(y_true, y_pred, weight) -> (grad, hess)``, weights applied here
    (kept buffers and layout as :class:`Objective`)."""

    def __init__(self, loss: BoostLoss):
        self.loss = loss

    def __call__(self, y_true, y_pred, weight):
        return self.loss.grad_hess(y_true, y_pred, weight, reuse=True, layout="lightgbm")


class Metric:
    """``feval(preds, eval_data) -> (name, weighted mean loss, False)`` on raw margins."""

    def __init__(self, loss: BoostLoss, name: str | None = None):
        self.loss = loss
        self.name = name or loss.source.name

    def __call__(self, preds, eval_data):
        return self.name, self.loss.value(eval_data.get_label(), preds, eval_data.get_weight()), False


class SklearnMetric:
    """``eval_metric(y_true, y_pred, weight) -> (name, weighted mean loss, False)``."""

    def __init__(self, loss: BoostLoss, name: str | None = None):
        self.loss = loss
        self.name = name or loss.source.name

    def __call__(self, y_true, y_pred, weight):
        return self.name, self.loss.value(y_true, y_pred, weight), False


def objective(loss, hessian: str | None = None, link: str | None = "auto", **params) -> Objective:
    return Objective(as_boost_loss(loss, hessian=hessian, link=link, **params))


def sklearn_objective(loss, hessian: str | None = None, link: str | None = "auto", **params) -> SklearnObjective:
    return SklearnObjective(as_boost_loss(loss, hessian=hessian, link=link, **params))


def metric(loss, name: str | None = None, link: str | None = "auto", **params) -> Metric:
    return Metric(as_boost_loss(loss, hessian="clip", link=link, **params), name)


def sklearn_metric(loss, name: str | None = None, link: str | None = "auto", **params) -> SklearnMetric:
    return SklearnMetric(as_boost_loss(loss, hessian="clip", link=link, **params), name)


def base_margin(loss, y, sample_weight=None, num_class: int | None = None, **params):
    """The optimal constant raw margin (float, or (K,) with a class axis): LightGBM's ``init_score``."""
    return _base_margin(loss, y, sample_weight, num_class=num_class, **params)


def init_score(start, n: int) -> np.ndarray:
    """``start`` repeated for ``n`` samples: (n,) or (n, K)."""
    return constant_margins(start, n)


def fold_start(booster, start) -> None:
    """Add the constant start margin to every leaf of the first iteration's trees (one per class),
    so the model predicts with it and needs no ``init_score`` at prediction time."""
    start = np.atleast_1d(np.asarray(start, dtype=np.float64))
    if booster.num_trees() < start.size:
        raise ValueError("the booster has fewer trees than classes: nothing to fold the start score into")
    info = booster.dump_model(num_iteration=1)["tree_info"]
    for tree, c in enumerate(start):
        for leaf in range(info[tree]["num_leaves"]):
            booster.set_leaf_output(tree, leaf, booster.get_leaf_output(tree, leaf) + c)


def train(loss, params: dict, train_set, num_boost_round: int = 100, *, loss_params: dict | None = None,
          hessian: str | None = None, start="auto", metric: bool = True, valid_sets=None,
          renew_leaves="auto", **kwargs):
    """``lgb.train`` with the symloss objective and metric, started from the loss's optimal constant.

    ``start="auto"`` computes it from ``train_set``'s labels and weights (unless
    ``train_set`` has an ``init_score``); a number (or K numbers) uses that;
    ``None`` starts from 0 (a custom objective's default).
    The start is set as ``init_score`` on every data set without one while
    training (and taken off again: the Datasets are left as they came) and
    folded into the returned booster's first trees.

    ``renew_leaves``: after each tree, set every leaf to the learning rate times
    the constant that minimises the loss of its samples, as LightGBM's built-in
    ``l1`` and ``quantile`` objectives renew theirs (symloss/boosting/refresh.py).
    ``"auto"`` does it for losses on a real-valued target whose exact Hessian
    vanishes on a set of positive measure (mae, quantile, huber; hinge only
    with ``True``) where it can: an elementwise
    loss, ``gbdt`` boosting without linear trees or monotone constraints, data
    sets built from in-memory features (each sample's leaf is found by
    predicting on them), no LightGBM metric on a validation set and no kept
    training booster (LightGBM's cached scores keep the old leaves; the
    objective and symloss's metric add the difference).  ``True`` insists (an
    error where it cannot); ``False`` never.  With ``init_model`` training goes
    on from that model's predictions (no start score).
    """
    import lightgbm as lgb

    bl = as_boost_loss(loss, hessian=hessian, **(loss_params or {}))
    valid_sets = list(valid_sets or [])
    renewal = _Renewal.make(renew_leaves, bl, params, train_set, valid_sets, kwargs)
    params = {**params, "objective": renewal.objective if renewal else Objective(bl)}
    if metric and "feval" not in kwargs:
        kwargs["feval"] = renewal.metric if renewal else Metric(bl)
        params.setdefault("metric", "None")
    if renewal:
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), renewal.before, renewal.after]
    start = _theirs(start, kwargs.get("init_model") is not None, _field(train_set, "init_score") is not None)
    if is_auto(start):
        start = bl.start(_float32(train_set.get_label()), _float32(_weight(train_set)), num_class=_num_class(params))
    if start is not None:
        _check_foldable(params)
    with _start_scores([train_set, *valid_sets], start):
        booster = lgb.train(params, train_set, num_boost_round, valid_sets=valid_sets or None, **kwargs)
    if start is not None:
        fold_start(booster, start)
    return booster


@contextmanager
def _start_scores(sets: list, start):
    """The start as ``init_score`` of the data sets that have none, taken off again when training
    ends: the Datasets are the caller's, and one left behind would pass for the caller's own
    init_score (the next :func:`train` on it would neither compute nor fold a start score, and a
    plain ``lgb.train`` would train from it unseen)."""
    mine = []
    try:
        for ds in sets if start is not None else ():
            if _field(ds, "init_score") is None:
                ds.set_init_score(init_score(start, len(ds.get_label())))
                mine.append(ds)
        yield
    finally:
        for ds in mine:
            _clear_init_score(ds)


def _clear_init_score(ds) -> None:
    # set_init_score(None) forgets the Python copy only; a constructed Dataset keeps its field (metadata,
    # not raw data: it can be cleared whether or not the raw data were freed)
    ds.set_init_score(None)
    if ds._handle is not None:
        ds.set_field("init_score", None)


_BOOSTING = ("boosting", "boosting_type", "boost")
_METRIC = ("metric", "metrics", "metric_types")
_NO_METRIC = ("none", "", "na", "null", "custom")
_MONOTONE = ("monotone_constraints", "mc", "monotone_constraint", "monotonic_cst")
_LINEAR = ("linear_tree", "linear_trees")


def _param(params: dict, aliases, default=None):
    return next((params[k] for k in aliases if k in params), default)


def _linear_trees(params: dict) -> bool:
    return _param(params, _LINEAR, False) in (True, "true", "True", 1)


def _lightgbm_metric(params: dict) -> bool:
    m = _param(params, _METRIC, "None")
    return any(str(v).lower() not in _NO_METRIC for v in (m if isinstance(m, (list, tuple)) else [m]))


class _Renewal:
    """Leaf renewal inside :func:`train`.  LightGBM keeps each data set's scores cached with the
    leaves a tree was grown with; after renewing them, the objective and the metric add the
    difference (``delta``, per data set) to the scores LightGBM hands over.  All training samples
    enter a leaf's constant (LightGBM's own renewal takes the in-bag ones under bagging)."""

    def __init__(self, bl: BoostLoss, sets: list | None):
        self.bl = bl
        self.sets = sets  # [(Dataset, in-memory features)], the training set first (fit(): at bind)
        self.delta = {id(ds): None for ds, _ in sets or []}
        self.margin = None  # the training margins of this round's objective call
        self.booster, self.done = None, -1
        self._metric = Metric(bl)

    @classmethod
    def make(cls, mode, bl: BoostLoss, params: dict, train_set, valid_sets: list, kwargs: dict):
        if not wanted(mode, bl):
            return None
        unique = {id(ds): ds for ds in [train_set, *valid_sets]}  # the training set may be a validation set too
        sets = [(ds, getattr(ds, "data", None)) for ds in unique.values()]
        foreign = "feval" in kwargs or (valid_sets and _lightgbm_metric(params))
        why = _refusal(bl, params, [X for _, X in sets], foreign, kwargs.get("keep_training_booster"))
        return None if refused(mode, bl.name, why) else cls(bl, sets)

    @classmethod
    def for_fit(cls, mode, bl: BoostLoss, params: dict, X, y, fit_kwargs: dict):
        """The renewal of :func:`fit`: its data sets are the ones LGBMModel.fit builds, found on the
        booster when training starts (the evaluation sets that are ``(X, y)`` itself share the
        training set, as LightGBM does)."""
        if not wanted(mode, bl):
            return None
        evals = _eval_pairs(fit_kwargs)
        metrics = _metrics(fit_kwargs)
        # (an estimator without a metric evaluates its class's default: l2, logloss)
        foreign = bool(evals) and (_lightgbm_metric({"metric": _param(params, _METRIC) or "default"})
                                   or any(not isinstance(m, SklearnMetric) for m in metrics))
        why = _refusal(bl, params, [X, *(ex for ex, _ in evals)], foreign, False)
        if why is not None and foreign and evals:
            why += " (with an eval_set, give the estimator metric='None' and symloss's sklearn_metric)"
        if refused(mode, bl.name, why):
            return None
        r = cls(bl, None)
        r._fit_data = (X, y, evals)
        return r

    def bind(self, booster) -> None:
        """fit(): the booster's training and validation Datasets, paired with their features."""
        X, y, evals = self._fit_data
        # LightGBM uses the training Dataset for an evaluation pair that is (X, y) itself, and does
        # not add it to valid_sets; a classifier, which encodes y, may build a separate one instead
        same = [ex is X and ey is y for ex, ey in evals]
        if len(booster.valid_sets) == len(evals):
            same = [False] * len(evals)
        elif len(booster.valid_sets) != len(evals) - sum(same):
            raise RuntimeError("symloss.lightgbm.fit: cannot pair the evaluation sets with LightGBM's "
                               "Datasets; pass renew_leaves=False")
        valid = iter(booster.valid_sets)
        sets = {id(booster.train_set): (booster.train_set, X)}
        for (ex, _), train in zip(evals, same):
            if not train:
                ds = next(valid)
                sets[id(ds)] = (ds, ex)
        self.sets = list(sets.values())
        self.delta = {k: None for k in sets}
        self.by_label = {id(ds.get_label()): id(ds) for ds, _ in self.sets}

    def __deepcopy__(self, memo):
        return self  # lgb.train deep-copies params: its objective must share this state with the callbacks

    def objective(self, preds, train_data):
        return self.sklearn_objective(train_data.get_label(), preds, train_data.get_weight())

    def sklearn_objective(self, y_true, preds, weight):
        d = self.delta[id(self.sets[0][0])]
        # a copy: LightGBM evaluates the training set into the same buffer after the tree is added
        self.margin = np.array(preds, dtype=np.float64) if d is None else preds + d
        return self.bl.grad_hess(y_true, self.margin, weight, reuse=True, layout="lightgbm")

    def renewed(self, preds, key):
        """A data set's margins with the renewed leaves (``key``: its id)."""
        self.renew(self.booster)  # the metric of this round sees the renewed tree
        d = self.delta.get(key)
        m = np.asarray(preds, dtype=np.float64)
        return m if d is None else m + d

    def metric(self, preds, eval_data):
        return self._metric(self.renewed(preds, id(eval_data)), eval_data)

    def before(self, env):
        if self.sets is None:
            self.bind(env.model)
        if self.booster is None:  # an init_model's trees are not this training's to renew
            self.done = env.model.current_iteration() - 1
        self.booster = env.model

    def after(self, env):
        self.renew(env.model)

    before.before_iteration = True
    # first among the round's callbacks (lgb.train gives unordered ones negative orders), so every
    # callback, early stopping included, sees the renewed tree
    before.order = after.order = -(1 << 30)

    def renew(self, booster) -> None:
        from .boosting.refresh import leaf_constants

        # the newest tree (one per iteration): a round whose tree had no split adds none, so the
        # tree's index, not the round's, says which tree is new
        it = booster.current_iteration() - 1
        if it <= self.done or self.margin is None:
            return
        self.done = it
        info = booster.dump_model(start_iteration=it, num_iteration=1)["tree_info"]
        # the tree's own shrinkage: the learning rate it was grown with (aliases, reset_parameter)
        shrinkage = float(info[0]["shrinkage"])
        leaves = [np.asarray(booster.predict(X, start_iteration=it, num_iteration=1, pred_leaf=True)).reshape(-1)
                  .astype(np.int64) for _, X in self.sets]
        train = self.sets[0][0]
        w = train.get_weight()
        consts = leaf_constants(self.bl, self.bl.labels(train.get_label()).astype(np.float64),
                                None if w is None else np.asarray(w, dtype=np.float64), self.margin, leaves[0])
        change = np.zeros(max(int(lv.max(initial=0)) for lv in leaves) + 1)
        for leaf, c in consts.items():
            new = shrinkage * c
            change[leaf] = new - booster.get_leaf_output(it, leaf)
            booster.set_leaf_output(it, leaf, new)
        for (ds, _), lv in zip(self.sets, leaves):
            d = change[lv]
            self.delta[id(ds)] = d if self.delta[id(ds)] is None else self.delta[id(ds)] + d


class _RenewingObjective(SklearnObjective):
    """fit()'s objective while a renewal runs: the margins get the renewed leaves' difference.
    LightGBM deep-copies its parameters and metrics; the copies must share the renewal."""

    def __init__(self, loss: BoostLoss, renewal: _Renewal):
        super().__init__(loss)
        self.renewal = renewal

    def __call__(self, y_true, y_pred, weight):
        if self.renewal is None:  # (after fit: the plain objective)
            return super().__call__(y_true, y_pred, weight)
        return self.renewal.sklearn_objective(y_true, y_pred, weight)

    def __deepcopy__(self, memo):
        return self


class _RenewingMetric(SklearnMetric):
    """fit()'s symloss metric while a renewal runs: each evaluation set is known by its label array
    (the one LightGBM's Dataset keeps and hands to every metric call)."""

    def __init__(self, metric: SklearnMetric, renewal: _Renewal):
        super().__init__(metric.loss, metric.name)
        self.renewal = renewal

    def __call__(self, y_true, y_pred, weight):
        r = self.renewal
        if r is None:
            return super().__call__(y_true, y_pred, weight)
        return super().__call__(y_true, r.renewed(y_pred, r.by_label.get(id(y_true))), weight)

    def __deepcopy__(self, memo):
        return self


def _refusal(bl: BoostLoss, params: dict, features: list, foreign_metric: bool, kept_booster) -> str | None:
    """Why leaf renewal cannot run (None: it can)."""
    if bl.row:
        return "it renews one tree per iteration (an elementwise loss)"
    if str(_param(params, _BOOSTING, "gbdt")).lower() not in ("gbdt", "gbrt"):
        return "it needs gbdt boosting (dart and rf rescale or drop trees)"
    if _linear_trees(params):
        return "linear trees' leaves are not constants"
    if _param(params, _MONOTONE) is not None and np.any(np.asarray(_param(params, _MONOTONE)) != 0):
        return "a renewed leaf can break monotone constraints (LightGBM refuses them with l1 and quantile)"
    if kept_booster:
        return "a kept training booster's cached scores would miss the renewal"
    if any(not (hasattr(X, "shape") and len(X.shape) == 2) for X in features):
        return ("it needs every data set's in-memory features (an array, DataFrame or sparse matrix: "
                "not a file or a Sequence)")
    if foreign_metric:
        return "a metric other than symloss's would see LightGBM's cached scores, not the renewed ones"
    return None


def _metrics(fit_kwargs: dict) -> list:
    """fit()'s ``eval_metric`` as a list (one metric, or none, is allowed)."""
    metrics = fit_kwargs.get("eval_metric")
    return [] if metrics is None else metrics if isinstance(metrics, list) else [metrics]


def _eval_pairs(fit_kwargs: dict) -> list:
    """fit()'s evaluation sets as (X, y) pairs (``eval_set``, or LightGBM 4.6's eval_X/eval_y)."""
    eval_set = fit_kwargs.get("eval_set")
    if eval_set is not None:  # a list of (X, y) pairs, or one pair as a tuple
        return [tuple(e[:2]) for e in ([eval_set] if isinstance(eval_set, tuple) else eval_set)]
    xs, ys = fit_kwargs.get("eval_X"), fit_kwargs.get("eval_y")
    if xs is None or ys is None:
        return []
    return list(zip(_as_list(xs), _as_list(ys)))


def _check_foldable(params: dict) -> None:
    if _linear_trees(params):
        raise ValueError("linear trees cannot hold the start score (set_leaf_output does not reach their "
                         "linear models): pass start=None, or an init_score of your own and add it to "
                         "the predictions")


def fit(model, X, y, sample_weight=None, *, start="auto", renew_leaves="auto", **fit_kwargs):
    """``model.fit`` for an ``LGBMModel`` whose objective is :func:`sklearn_objective`'s, started
    from the loss's optimal constant (folded into the fitted booster); returns the model.

    ``renew_leaves`` as in :func:`train`.  With an ``eval_set`` it needs symloss's
    :func:`sklearn_metric` as the only metric: ``eval_metric=sklearn_metric(...)`` and
    ``metric="None"`` on the estimator (an LGBMRegressor evaluates ``l2`` otherwise, on
    LightGBM's cached scores).  With ``init_model`` training goes on from that model's
    predictions (no start score)."""
    obj = model.get_params()["objective"]
    if not isinstance(obj, SklearnObjective):
        raise TypeError("fit() needs an LGBM estimator with objective=symloss.lightgbm.sklearn_objective(...)")
    params = model.get_params()  # (an estimator's extra LightGBM parameters included)
    renewal = _Renewal.for_fit(renew_leaves, obj.loss, params, X, y, fit_kwargs)
    start = _theirs(start, fit_kwargs.get("init_model") is not None, fit_kwargs.get("init_score") is not None)
    if start is not None:
        _check_foldable(params)
        y_arr = np.asarray(y)
        if is_auto(start):
            labels, k = _fit_labels(model, y_arr, obj.loss)
            start = obj.loss.start(labels, _fit_weights(model, y_arr, sample_weight), num_class=k)
        fit_kwargs["init_score"] = init_score(start, len(y_arr))
        evals = [ey for _, ey in _eval_pairs(fit_kwargs)]
        if evals and fit_kwargs.get("eval_init_score") is None:
            fit_kwargs["eval_init_score"] = [init_score(start, len(ey)) for ey in evals]
    if renewal is None:
        model.fit(X, y, sample_weight=sample_weight, **fit_kwargs)
    else:
        if fit_kwargs.get("eval_metric") is not None:
            fit_kwargs["eval_metric"] = [_RenewingMetric(m, renewal) for m in _metrics(fit_kwargs)]
        fit_kwargs["callbacks"] = [*(fit_kwargs.get("callbacks") or []), renewal.before, renewal.after]
        renewing = _RenewingObjective(obj.loss, renewal)
        model.set_params(objective=renewing)
        try:
            model.fit(X, y, sample_weight=sample_weight, **fit_kwargs)
        finally:
            model.set_params(objective=obj)  # the estimator's parameters are the caller's again
            renewing.renewal = None  # (the fitted objective_ is then the plain objective)
            for m in fit_kwargs.get("eval_metric") or []:
                m.renewal = None
    if start is not None:
        fold_start(model.booster_, start)
    return model


def dask_fit(model, X, y, sample_weight=None, *, start="auto", **fit_kwargs):
    """``fit`` for a ``lightgbm.dask`` estimator (DaskLGBMRegressor, ...) with a symloss
    :func:`sklearn_objective` on Dask collections: the start score comes from a distributed
    Newton over ``y``'s partitions, is passed as ``init_score`` partitioned like ``y``, and is
    folded into the fitted booster."""
    from .boosting import dask as _dask

    obj = model.get_params()["objective"]
    if not isinstance(obj, SklearnObjective):
        raise TypeError("dask_fit() needs a lightgbm.dask estimator with "
                        "objective=symloss.lightgbm.sklearn_objective(...)")
    start = _theirs(start, fit_kwargs.get("init_model") is not None, fit_kwargs.get("init_score") is not None)
    if start is not None:
        _check_foldable(model.get_params())  # (an estimator's extra LightGBM parameters included)
        if is_auto(start):
            k = model.get_params().get("num_class") if obj.loss.row else None
            start = _dask.base_margin(obj.loss, y, sample_weight, num_class=k if k and k > 1 else None)
        fit_kwargs["init_score"] = _dask.constant_like(y, start)
    model.fit(X, y, sample_weight=sample_weight, **fit_kwargs)
    if start is not None:
        fold_start(model.booster_, start)
    return model


def _theirs(start, continued: bool, init_score: bool):
    """The start score to use: none when training goes on from ``init_model`` (its predictions are
    the start) or from an init_score the caller gave (it wins and is not folded: it is theirs)."""
    why = None
    if continued:
        why = "with init_model, training continues from the model's predictions"
    elif init_score:
        why = "the training data have an init_score of their own (the model is trained from it)"
    return yield_to(start, why)


def _fit_labels(model, y: np.ndarray, bl: BoostLoss):
    """The labels fit()'s objective sees, and the class count of a row loss.  An LGBMClassifier
    encodes its classes as 0..K-1 in sorted order (sklearn's LabelEncoder: {1, 2} and {"a", "b"}
    become {0, 1}); other estimators hand y over as LightGBM keeps it (float32)."""
    from lightgbm import LGBMClassifier

    if isinstance(model, LGBMClassifier):
        classes, codes = np.unique(y, return_inverse=True)
        return codes.reshape(-1), (len(classes) if bl.row else None)
    y = _float32(y)
    return y, (int(y.max()) + 1 if bl.row else None)


def _fit_weights(model, y: np.ndarray, sample_weight):
    """The weights fit()'s objective sees: LGBMModel.fit multiplies ``class_weight``'s into them."""
    if getattr(model, "class_weight", None) is None:
        return _float32(sample_weight)
    from sklearn.utils.class_weight import compute_sample_weight

    w = compute_sample_weight(model.class_weight, y)
    return _float32(w if sample_weight is None else w * np.asarray(sample_weight, dtype=np.float64))


def _num_class(params: dict) -> int | None:
    for key in ("num_class", "num_classes"):
        if key in params and int(params[key]) > 1:
            return int(params[key])
    return None


def _field(ds, name: str):
    """A Dataset field without constructing it (construction belongs to lgb.train, with its params)."""
    return getattr(ds, name) if ds._handle is None else ds.get_field(name)


def _weight(ds):
    return _field(ds, "weight")


def _float32(a):
    """Labels or weights as LightGBM keeps them (float32), whether or not the Dataset is constructed yet:
    the same start score either way, from the values the objective sees."""
    return None if a is None else np.asarray(a, dtype=np.float32)


def _as_list(eval_xy):
    """LightGBM's eval_X or eval_y: a tuple holds several sets; anything else (a list too) is one."""
    if eval_xy is None:
        return []
    return list(eval_xy) if isinstance(eval_xy, tuple) else [eval_xy]
