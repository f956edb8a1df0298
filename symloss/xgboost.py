"""Any symloss loss as an XGBoost objective and metric (optional: needs ``xgboost``).

XGBoost hands a custom objective raw margins, shape (n,) or (n, K) with
``num_class``; the objective returns per-sample gradient and Hessian of the
summed loss, weights applied.  A custom objective never estimates the
intercept (``base_score`` stays 0.5), so :func:`train` and
:func:`sklearn_objective`'s users set it from :func:`base_margin`: a scalar
``base_score`` (a vector of K for a class axis), stored in the model.

:func:`train` also renews the leaves of losses whose Hessian vanishes (mae,
quantile) as the built-in L1 and quantile objectives do (see its docstring).

Native API::

    booster = symloss.xgboost.train("huber", {"max_depth": 4}, dtrain, 100, loss_params={"delta": 1.0})
    # or by hand:
    xgb.train({**params, "base_score": base_margin("huber", y)}, dtrain, 100,
              obj=objective("huber"), custom_metric=metric("huber"))

scikit-learn API::

    XGBRegressor(objective=sklearn_objective("huber"), base_score=base_margin("huber", y),
                 eval_metric=sklearn_metric("huber"))

An ``XGBClassifier`` runs a custom objective under ``binary:logistic`` (two
classes), which reads ``base_score`` as a probability: give it the sigmoid of
the margin, which :func:`sklearn_base_score` works out for any estimator::

    model = XGBClassifier(objective=sklearn_objective("bce_logits"))
    model.set_params(base_score=sklearn_base_score("bce_logits", y, model)).fit(X, y)
"""
from __future__ import annotations

import json
import re

import numpy as np

from .boosting import BoostLoss, as_boost_loss
from .boosting import base_margin as _base_margin
from .boosting.refresh import refused, wanted
from .boosting.start import is_auto, yield_to

__all__ = ["base_margin", "dask_train", "metric", "objective", "sklearn_base_score", "sklearn_metric",
           "sklearn_objective", "train"]


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
        from xgboost import collective

        y, w = dmatrix.get_label(), dmatrix.get_weight()
        if collective.get_world_size() == 1:
            return self.__name__, self.loss.value(y, predt, w)
        # distributed (Dask): each worker holds some rows and XGBoost averages the workers' values;
        # the weighted sums of all workers give every worker the one exact mean (an empty part: no NaN)
        wsum = float(w.sum(dtype=np.float64) if w.size else y.shape[0])
        total = self.loss.value(y, predt, w) * wsum if wsum > 0 else 0.0
        total, wsum = collective.allreduce(np.array([total, wsum]), collective.Op.SUM)
        return self.__name__, float(total / wsum)


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
    """The optimal constant raw margin (float, or (K,) with a class axis): the ``base_score`` of
    ``xgb.train``, an ``XGBRegressor`` and a multi-class ``XGBClassifier``, which take it as a margin.
    A binary ``XGBClassifier`` reads ``base_score`` as a probability: see :func:`sklearn_base_score`."""
    return _base_margin(loss, y, sample_weight, num_class=num_class, **params)


def sklearn_base_score(loss, y, model, sample_weight=None, **params):
    """The ``base_score`` that starts the scikit-learn estimator ``model`` (with
    :func:`sklearn_objective`'s objective) from the loss's optimal constant margin.

    An ``XGBClassifier`` (or one derived from it) runs a custom objective under ``binary:logistic``
    with two classes: XGBoost reads ``base_score`` as a probability and starts from its logit, so
    it gets the margin's sigmoid (the margin itself would start from the wrong place, and a
    negative one is refused).  Other estimators, and multi-class (``multi:softprob``), take the
    margin as it is."""
    from sklearn.base import is_classifier

    start = _base_margin(loss, y, sample_weight, **params)
    if is_classifier(model) and np.ndim(start) == 0:
        return float(1.0 / (1.0 + np.exp(-float(start))))
    return _score(start)


def _score(start):
    """XGBoost's base_score: a float, or a list of K for a class axis (stored in the model)."""
    return [float(v) for v in start] if np.ndim(start) else float(start)


def train(loss, params: dict, dtrain, num_boost_round: int = 10, *, loss_params: dict | None = None,
          hessian: str | None = None, start: str | None = "auto", metric: bool = True, renew_leaves="auto",
          **kwargs):
    """``xgb.train`` with the symloss objective, its metric, and its start score as ``base_score``.

    ``start="auto"`` computes the start score from ``dtrain``'s labels and weights
    (unless ``params`` has ``base_score`` or ``dtrain`` a base margin); a number
    (or K) is used as it is; ``None`` keeps XGBoost's (0.5 for a custom objective).
    With ``xgb_model`` training goes on from that model's predictions (no start score).

    ``renew_leaves``: after each tree, every leaf becomes the learning rate times
    the constant that minimises the loss of its samples, as XGBoost's built-in
    ``reg:absoluteerror`` and ``reg:quantileerror`` renew theirs
    (symloss/boosting/refresh.py).  XGBoost has no leaf setter, so the renewed
    leaves are written into the model once, when training ends; until then the
    objective and symloss's metric add the difference to the margins XGBoost
    hands over, and a callback that predicts or saves during training sees the
    leaves as grown.  ``"auto"`` renews for losses on a real-valued target whose
    exact Hessian vanishes on a set of positive measure (mae, quantile, huber)
    where it can: an elementwise loss, the ``gbtree`` booster with one tree per
    round and no monotone constraints, no metric but symloss's on ``evals`` and
    no ``TrainingCheckPoint``.  ``True`` insists (an error where it cannot, and
    for hinge); ``False`` never.
    """
    import xgboost as xgb

    bl = as_boost_loss(loss, hessian=hessian, **(loss_params or {}))
    params, obj = _wire(bl, params, kwargs, metric, renew_leaves)
    start = _continued(start, kwargs)
    if start is not None and "base_score" not in params and dtrain.get_base_margin().size == 0:
        if is_auto(start):
            w = dtrain.get_weight()
            start = bl.start(dtrain.get_label(), w if w.size else None, num_class=params.get("num_class"))
        params = {**params, "base_score": _score(start)}
    return xgb.train(params, dtrain, num_boost_round, obj=obj, **kwargs)


def _wire(bl: BoostLoss, params: dict, kwargs: dict, metric: bool, renew_leaves):
    """train's and dask_train's objective, with symloss's metric and the renewal callback put into
    ``params`` (returned) and ``kwargs`` (in place)."""
    if kwargs.get("evals") is not None:
        kwargs["evals"] = list(kwargs["evals"])  # (read here and by xgb.train: an iterator would run dry)
    renewal = _Renewal.make(renew_leaves, bl, params, kwargs.get("evals") or (), metric, kwargs)
    if metric and "custom_metric" not in kwargs:
        kwargs["custom_metric"] = renewal.metric if renewal else Metric(bl)
        params = {**params, "disable_default_eval_metric": 1}
    if renewal:
        kwargs["callbacks"] = [renewal, *(kwargs.get("callbacks") or [])]  # first: the others see renewed scores
    return params, (renewal.objective if renewal else Objective(bl))


def _continued(start, kwargs: dict):
    """No start score when training goes on from ``xgb_model``: a ``base_score`` parameter would
    replace the model's own and shift every prediction of its trees."""
    return yield_to(start, None if kwargs.get("xgb_model") is None
                    else "with xgb_model, training continues from the model's predictions")


def _monotone(constraints) -> bool:
    """Whether XGBoost's ``monotone_constraints`` (a string "(1,0)", a sequence or a dict by
    feature name) constrains any feature."""
    if constraints is None:
        return False
    if isinstance(constraints, dict):
        return any(int(v) != 0 for v in constraints.values())
    if isinstance(constraints, str):
        return any(int(v) != 0 for v in re.findall(r"-?\d+", constraints))
    return bool(np.any(np.asarray(constraints) != 0))


def __getattr__(name: str):
    # the renewal callback subclasses xgboost's TrainingCallback, made on first use (importing
    # symloss.xgboost imports no xgboost) and importable by name, so it pickles to Dask workers
    if name == "_LeafRenewal":
        import xgboost as xgb

        cls = type("_LeafRenewal", (_Renewal, xgb.callback.TrainingCallback), {"__module__": __name__})
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Renewal:
    """Leaf renewal inside :func:`train` and :func:`dask_train` (as ``_LeafRenewal``, a
    ``TrainingCallback``).  XGBoost keeps each DMatrix's margins cached with the leaves a tree was
    grown with, and its Python API cannot set a leaf: the renewed values are kept per tree, the
    objective and the metric add their difference to XGBoost's margins (each DMatrix's leaves
    found once per tree, when it is first seen after the tree), and ``after_training`` writes them
    into the model (its JSON form, the one public way in).  Under Dask every worker solves the same
    leaves in lockstep, with XGBoost's allreduce of the per-leaf sums of its own samples.  All
    training samples enter a leaf's constant (the built-ins take the sampled ones under
    ``subsample``)."""

    @classmethod
    def make(cls, mode, bl: BoostLoss, params: dict, evals, metric: bool, kwargs: dict):
        if not wanted(mode, bl):
            return None
        why = _refusal(bl, {k: v for k, v in params.items() if v is not None},  # (None: XGBoost's "not set")
                       evals, metric, kwargs)
        if refused(mode, bl.name, why):
            return None
        renewal = (globals().get("_LeafRenewal") or __getattr__("_LeafRenewal"))(bl)
        renewal.insist = mode is True
        return renewal

    def __init__(self, bl: BoostLoss):
        self.bl = bl
        self.changes = {}  # {tree: change of each node's value (0 where not renewed)}
        self.leaves = {}  # {tree: {node: renewed value}}
        self.seen = {}  # {id(DMatrix): [DMatrix, its delta or None, trees accounted for]}
        self.train = self.margin = None  # this round's training DMatrix and margins (the objective's)
        self.booster, self.done = None, -1
        self.insist, self.off = False, False
        self._metric = Metric(bl)

    def _delta(self, d, known: tuple | None = None):
        """What ``d``'s cached margins lack: the renewed trees' changes at each sample's leaf
        (``known``: a tree and ``d``'s leaves in it, found already)."""
        entry = self.seen.setdefault(id(d), [d, None, set()])  # (held: ids stay unique)
        for tree, change in self.changes.items():
            if tree not in entry[2]:
                leaf = known[1] if known and known[0] == tree else \
                    self.booster[tree:tree + 1].predict(d, pred_leaf=True).reshape(-1).astype(np.int64)
                entry[1] = change[leaf] if entry[1] is None else entry[1] + change[leaf]
                entry[2].add(tree)
        return entry[1]

    def objective(self, predt, dtrain):
        self.train = dtrain
        d = self._delta(dtrain)
        self.margin = np.array(predt, dtype=np.float64) if d is None else predt + d
        return self.bl.grad_hess(dtrain.get_label(), self.margin, dtrain.get_weight(), reuse=True)

    def metric(self, predt, dmatrix):
        self.renew(self.booster)  # the round's metric sees the renewed tree
        d = self._delta(dmatrix) if not self.off else None
        m = np.asarray(predt, dtype=np.float64)
        return self._metric(m if d is None else m + d, dmatrix)

    def before_iteration(self, model, epoch, evals_log) -> bool:
        if self.booster is None:  # the first round: the booster's own configuration, an xgb_model's included
            self.done = model.num_boosted_rounds() - 1  # (an xgb_model's trees are not this training's)
            self.off = refused(self.insist, self.bl.name, _model_refusal(model))
        self.booster = model
        return False

    def after_iteration(self, model, epoch, evals_log) -> bool:
        self.renew(model)
        return False

    def after_training(self, model):
        if self.leaves:
            _set_leaves(model, self.leaves)
        self.seen, self.train, self.margin, self.booster = {}, None, None, None  # (the data are the caller's)
        return model

    def renew(self, booster) -> None:
        from xgboost import collective

        from .boosting.refresh import leaf_constants, leaf_constants_lockstep

        tree = booster.num_boosted_rounds() - 1  # one tree per round (make and _model_refusal)
        if self.off or tree <= self.done or self.margin is None:
            return
        self.done = tree
        one = booster[tree:tree + 1]
        (grown,) = json.loads(one.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
        config = json.loads(booster.save_config())["learner"]["gradient_booster"]["tree_train_param"]
        eta = float(config["learning_rate"])  # the one the tree was grown with (a scheduler may change it)
        leaf = one.predict(self.train, pred_leaf=True).reshape(-1).astype(np.int64)
        w = self.train.get_weight()
        y = self.bl.labels(self.train.get_label()).astype(np.float64)
        w = np.asarray(w, dtype=np.float64) if w.size else None
        old = np.asarray(grown["split_conditions"], dtype=np.float64)
        # XGBoost keeps float32 leaves: a constant to 1e-7 of itself is as good as 1e-9, in fewer passes
        if collective.get_world_size() > 1:  # every worker the same leaves, from all workers' samples
            consts = leaf_constants_lockstep(self.bl, y, w, self.margin, leaf, old.size,
                                             lambda a: collective.allreduce(a, collective.Op.SUM), rtol=1e-7)
            consts = {node: c for node, c in enumerate(consts) if np.isfinite(c)}
        else:
            consts = leaf_constants(self.bl, y, w, self.margin, leaf, rtol=1e-7)
        change = np.zeros(old.size)
        renewed = {}
        for node, c in consts.items():
            # XGBoost's leaves are float32: the difference is taken against what the model will hold
            renewed[node] = float(np.float32(eta * c))
            change[node] = renewed[node] - old[node]
        self.leaves[tree] = renewed
        self.changes[tree] = change
        self._delta(self.train, (tree, leaf))


def _refusal(bl: BoostLoss, params: dict, evals, metric: bool, kwargs: dict) -> str | None:
    """Why leaf renewal cannot run with these parameters (None: it can)."""
    import xgboost as xgb

    if bl.row or int(params.get("num_class", 1)) > 1:
        return "it renews one tree per round (an elementwise loss)"
    if str(params.get("booster", "gbtree")) != "gbtree":
        return "it needs the gbtree booster (dart drops and rescales trees, gblinear has none)"
    if int(params.get("num_parallel_tree", 1)) != 1:
        return "it renews one tree per round (num_parallel_tree is not 1)"
    if str(params.get("process_type", "default")) != "default":
        return "process_type 'update' refreshes existing trees"
    if _monotone(params.get("monotone_constraints")):
        return "a renewed leaf can break monotone constraints"
    if evals and ("custom_metric" in kwargs or "feval" in kwargs or "eval_metric" in params or not metric):
        return "a metric other than symloss's would see XGBoost's cached margins, not the renewed ones"
    if any(isinstance(cb, xgb.callback.TrainingCheckPoint) for cb in kwargs.get("callbacks") or ()):
        return "a training checkpoint would save the leaves as grown (they are written when training ends)"
    return None


def _model_refusal(booster) -> str | None:
    """Why renewal cannot run on this booster (an ``xgb_model`` brings its own booster type and
    trees per round)."""
    gb = json.loads(booster.save_config())["learner"]["gradient_booster"]
    if gb["name"] != "gbtree":
        return f"it needs the gbtree booster, and the model is {gb['name']}"
    if int(gb["gbtree_model_param"]["num_parallel_tree"]) != 1:
        return "it renews one tree per round, and the model grows a forest per round"
    return None


def _set_leaves(booster, leaves: dict) -> None:
    """Write ``{tree: {node: value}}`` into the booster's leaves, in place (its JSON model;
    the training configuration, which loading a model resets, is put back)."""
    config = booster.save_config()
    model = json.loads(booster.save_raw("json"))
    trees = model["learner"]["gradient_booster"]["model"]["trees"]
    for t, nodes in leaves.items():
        if t < len(trees):  # (early stopping may have cut the model)
            cond = trees[t]["split_conditions"]
            for node, v in nodes.items():
                cond[node] = v
    booster.load_model(bytearray(json.dumps(model).encode()))
    booster.load_config(config)


def dask_train(client, loss, params: dict, X, y, num_boost_round: int = 10, *, sample_weight=None,
               loss_params: dict | None = None, hessian: str | None = None, start="auto", metric: bool = True,
               renew_leaves="auto", **kwargs) -> dict:
    """``xgboost.dask.train`` on Dask collections ``X``, ``y`` (arrays or DataFrames) with the symloss
    objective; each worker calls it on its own partitions.  The start score is computed from ``y``
    by a distributed Newton (:mod:`symloss.boosting.dask`) and stored as ``base_score``.
    ``renew_leaves`` as in :func:`train`: the workers solve each leaf together, from all of its
    samples (one allreduce of per-leaf sums per solver step).
    Returns xgboost.dask.train's ``{"booster", "history"}``."""
    import xgboost.dask as xgb_dask

    from .boosting import dask as _dask

    bl = as_boost_loss(loss, hessian=hessian, **(loss_params or {}))
    params, obj = _wire(bl, params, kwargs, metric, renew_leaves)
    start = _continued(start, kwargs)
    if start is not None and "base_score" not in params:
        if is_auto(start):
            start = _dask.base_margin(bl, y, sample_weight, num_class=params.get("num_class"))
        params = {**params, "base_score": _score(start)}
    dtrain = xgb_dask.DaskDMatrix(client, X, y, weight=sample_weight)
    return xgb_dask.train(client, params, dtrain, num_boost_round, obj=obj, **kwargs)
