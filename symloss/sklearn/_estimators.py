"""LossRegressor and LossClassifier: linear models fitted with any symloss loss.

Objective (scikit-learn's ElasticNet / GLM convention), intercept unpenalised:

    sum_i s_i loss(y_i, x_i w + b) / sum_i s_i + alpha * (l1_ratio * ||w||_1 + (1 - l1_ratio) / 2 * ||w||_2^2)
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ..boosting import link as _link
from ..boosting.core import _check_indices
from ..multitask import CombinedLoss
from ._dask import DaskData, is_dask
from ..dask_arrays import LossRef
from ._heads import CombinedHead, ElementwiseHead, RowHead, check_targets, margin_loss, resolve_loss
from ._objective import InMemoryData, Objective
from ._solvers import choose, run

SIGMOID_LOSSES = ("bce_logits", "focal_binary")  # losses on logits: P(y = 1) = sigmoid(z)
_CLASS_DOMAINS = ("binary", "sign", "unit", "unit_closed")  # targets a regressor's real labels may miss


# Estimator parameters a loss parameter may not shadow: general_robust's shape
# `alpha` becomes the estimator parameter `loss_alpha`, and so on.
_RESERVED = {"loss", "alpha", "l1_ratio", "fit_intercept", "solver", "max_iter", "tol", "learning_rate", "verbose"}


def _param_name(name: str) -> str:
    return f"loss_{name}" if name in _RESERVED else name


def _is_row(loss) -> bool:
    return getattr(loss, "kind", None) == "row"


def _checked(y, check):
    """Labels passed through ``check``: at once in memory; for Dask, chunk by chunk
    as the fit computes them (no extra pass over the data)."""
    return y.map_blocks(check, dtype=y.dtype) if is_dask(y) else check(y)


def _check_tasks(loss: CombinedLoss, Y) -> None:
    """Each task's column against its loss: class indices for a row loss, its target domain otherwise."""
    for t, (name, (l, _, _)) in enumerate(loss.tasks.items()):
        shown = f"task {name!r} ({l.name})"
        if _is_row(l):
            _check_indices(shown, np.asarray(Y[:, t], dtype=float))
        else:
            check_targets(margin_loss(l), Y[:, t], shown)


class _LossModel(BaseEstimator):
    def __init__(self, loss, *, alpha=0.0, l1_ratio=0.0, fit_intercept=True, solver="auto", max_iter=100,
                 tol=1e-6, learning_rate=None, verbose=1, **loss_params):
        self.loss = loss
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.learning_rate = learning_rate
        self.verbose = verbose
        for k, v in loss_params.items():  # loss parameters are estimator parameters (GridSearchCV)
            setattr(self, k, v)

    # The loss's parameters join get_params/set_params, so clone and grid search
    # see them.  A keyword the estimator does not know is kept as a loss
    # parameter (the loss may change after it is set) and checked by fit.
    # get_params reports only those set, not the loss's defaults: clone would pass
    # a default on as a setting, which then outlives a change of loss
    # (GridSearchCV over "loss": huber's delta=1.0 reaching mse).
    def _extra_params(self) -> list:
        own = set(super().get_params(deep=False))
        return [k for k in vars(self) if k not in own and not k.startswith("_") and not k.endswith("_")]

    def get_params(self, deep=True):
        params = super().get_params(deep)
        for k in self._extra_params():
            params[k] = getattr(self, k)
        return params

    def set_params(self, **params):
        own = set(super().get_params(deep=False))
        for k, v in params.items():
            if k in own or "__" in k:
                super().set_params(**{k: v})
            else:
                setattr(self, k, v)
        return self

    def _loss_params(self) -> dict:
        """The loss's keywords, under the loss's own names (unknown ones are an error)."""
        params = resolve_loss(self.loss).params
        unknown = set(self._extra_params()) - {_param_name(k) for k in params}
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)} for loss {resolve_loss(self.loss).name!r} "
                             f"(its parameters: {[_param_name(k) for k in params]})")
        return {k: getattr(self, _param_name(k)) for k in params if hasattr(self, _param_name(k))}

    def _check_hyper(self):
        if not (np.isscalar(self.alpha) and self.alpha >= 0):
            raise ValueError(f"alpha must be a number >= 0, got {self.alpha!r}")
        if not (np.isscalar(self.l1_ratio) and 0 <= self.l1_ratio <= 1):
            raise ValueError(f"l1_ratio must be in [0, 1], got {self.l1_ratio!r}")
        if not (isinstance(self.max_iter, (int, np.integer)) and self.max_iter >= 0):
            raise ValueError(f"max_iter must be an int >= 0, got {self.max_iter!r}")
        if not (np.isscalar(self.tol) and self.tol >= 0):
            raise ValueError(f"tol must be a number >= 0, got {self.tol!r}")

    def _data(self, X, Y, sample_weight):
        """(data, p): in memory after validation, or Dask chunks left where they are."""
        if is_dask(X) or is_dask(Y):
            import dask.array as da

            sw = da.ones(X.shape[0], chunks=(X.chunks[0],)) if sample_weight is None else sample_weight
            self.n_features_in_ = X.shape[1]
            return DaskData(X, Y, sw, self.fit_intercept), X.shape[1]
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
        return InMemoryData(X, Y, sw, self.fit_intercept), X.shape[1]

    def _solve(self, head, data, p):
        p1 = p + bool(self.fit_intercept)
        obj = Objective(head, data, p1, head.m, self.alpha, self.l1_ratio, self.fit_intercept)
        self.solver_ = choose(head, obj, self.solver)
        theta0 = getattr(self, "_theta0", None)
        if theta0 is None or theta0.size != p1 * head.m:
            theta0 = np.zeros((p1, head.m))
            if self.fit_intercept and hasattr(data, "intercept_start") and self.solver_ != "lp":
                theta0[-1] = data.intercept_start(head, head.m, self.tol)
            theta0 = theta0.ravel()
        theta, self.n_iter_, hist = run(self.solver_, obj, theta0, self.max_iter, self.tol, self.verbose,
                                        self.learning_rate)
        W = theta.reshape(p1, head.m)
        self.history_ = hist
        self._theta0 = None
        return W

    def _fit_combined(self, loss, data, p):
        """Multi-task: fixed weights, or uncertainty weighting by block coordinate
        descent (W for fixed s by the solver, then the exact s_t = log L_t)."""
        K = [int(np.max(data.Y[:, t])) + 1 if _is_row(l) else 1
             for t, (l, _, _) in enumerate(loss.tasks.values())]
        heads = [(RowHead if _is_row(l) else ElementwiseHead)(margin_loss(l), params, k)
                 for (l, _, params), k in zip(loss.tasks.values(), K)]
        head = CombinedHead(heads, loss.scales())
        W = self._solve(head, data, p)
        self.log_vars_ = None
        if loss.weighting == "uncertainty":
            history = {k: list(v) for k, v in self.history_.items()}
            s = np.zeros(len(heads))
            for _ in range(50):
                Z = data.outputs(W)
                vals = CombinedHead(heads, np.ones(len(heads))).task_values(data.Y, Z, data.sw) / data.weight_sum
                if np.any(vals <= 0):
                    raise ValueError("uncertainty weighting needs every task's mean loss > 0")
                s_new = np.log(vals)
                done = np.max(np.abs(s_new - s)) <= max(self.tol, 1e-12)
                s = s_new
                if done:
                    break
                head = CombinedHead(heads, loss.weights * np.exp(-s))
                self._theta0 = W.ravel()
                W = self._solve(head, data, p)
                for k, v in self.history_.items():
                    history[k].extend(v)
            self.history_ = history
            self.log_vars_ = s
        self.task_slices_ = dict(zip(loss.names, head.slices))
        return W

    def _set_coef(self, W, squeeze: bool):
        coef = W[:-1] if self.fit_intercept else W
        intercept = W[-1] if self.fit_intercept else np.zeros(W.shape[1])
        self.coef_ = coef[:, 0].copy() if squeeze else coef.T.copy()
        self.intercept_ = float(intercept[0]) if squeeze else intercept.copy()

    def _raw(self, X):
        check_is_fitted(self)
        if is_dask(X):
            return X @ self.coef_.T + self.intercept_
        X = validate_data(self, X, reset=False)
        return X @ self.coef_.T + self.intercept_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class LossRegressor(RegressorMixin, _LossModel):
    """Linear regression minimising any elementwise symloss loss, or a
    ``symloss.combine(...)`` multi-task loss (y with one column per task).

    Parameters: ``loss`` (catalog name, spec path, Loss or CombinedLoss),
    ``alpha``, ``l1_ratio`` (penalty), ``fit_intercept``, ``solver`` ("auto",
    "newton", "lbfgs", "gd", "proximal", "lp"), ``max_iter``, ``tol`` (on the
    gradient's infinity norm), ``learning_rate`` (gd: None = backtracking),
    ``verbose`` (1: a tqdm progress bar for fits longer than 3 s, when tqdm
    is installed; 0: none), and the loss's own parameters
    (``delta=``, ``tau=``...) as keywords.  ``get_params`` lists the loss
    parameters that were set; unset ones take the loss's defaults at fit, so
    ``set_params(loss=...)`` switches losses cleanly.

    Labels outside the loss's target domain (y < 0 for gamma_nll, y outside
    [0, 1] for bce_logits) raise an InputError naming the loss and the label,
    by the rule the boosting objectives apply.  A loss on a probability or a
    positive mean is composed with its link (sigmoid, exp): ``predict`` then
    returns the raw margin, as it returns poisson_nll's log-rate.

    Attributes: ``coef_``, ``intercept_``, ``n_iter_``, ``solver_``,
    ``history_`` (objective, grad_norm, step, time per iteration).
    """

    def __init__(self, loss="mse", *, alpha=0.0, l1_ratio=0.0, fit_intercept=True, solver="auto", max_iter=100,
                 tol=1e-6, learning_rate=None, verbose=1, **loss_params):
        super().__init__(loss, alpha=alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept, solver=solver,
                         max_iter=max_iter, tol=tol, learning_rate=learning_rate, verbose=verbose, **loss_params)

    def fit(self, X, y, sample_weight=None):
        self._check_hyper()
        combined = isinstance(self.loss, CombinedLoss)
        if not (is_dask(X) or is_dask(y)):
            X, y = validate_data(self, X, y, y_numeric=True, multi_output=True)
        if combined:
            if is_dask(X) or is_dask(y):
                raise ValueError("combined (multi-task) losses fit numpy data; Dask takes single losses")
            if y.ndim != 2 or y.shape[1] != len(self.loss.tasks):
                raise ValueError(f"a combined loss of {len(self.loss.tasks)} tasks needs y of shape "
                                 f"(n, {len(self.loss.tasks)}), got {y.shape}")
            _check_tasks(self.loss, y)
            W = self._fit_combined(self.loss, *self._data(X, y, sample_weight))
            self._set_coef(W, squeeze=False)
            return self
        source = resolve_loss(self.loss)
        if _is_row(source):
            raise ValueError(f"{source.name} is a row (multi-class) loss: use LossClassifier")
        loss = margin_loss(source)
        head = ElementwiseHead(loss, self._loss_params(), 1 if y.ndim == 1 else y.shape[1])
        hint = "; for class labels use LossClassifier" if loss.spec.targets[0].domain in _CLASS_DOMAINS else ""
        y = _checked(y, lambda b: check_targets(loss, b, source.name, hint))
        W = self._solve(head, *self._data(X, y, sample_weight))
        self._set_coef(W, squeeze=y.ndim == 1)
        return self

    def predict(self, X):
        """The model's raw output x w + b (for log-link losses such as poisson_nll,
        the log of the mean: use ``predict_mean``)."""
        return self._raw(X)

    def predict_tasks(self, X) -> dict:
        """Multi-task models: each task's outputs, by task name."""
        Z = self._raw(X)
        return {n: Z[:, s] if s.stop - s.start > 1 else Z[:, s.start] for n, s in self.task_slices_.items()}


class LossClassifier(ClassifierMixin, _LossModel):
    """Linear classification with any classification loss.

    ``loss="auto"``: ``bce_logits`` for two classes, ``cross_entropy``
    (multinomial) for more.  An elementwise loss (``bce_logits``, ``hinge``,
    ``focal_binary``...) with more than two classes fits one output per class
    (one-vs-rest, jointly); a row loss (``cross_entropy``) fits one output per
    class with the softmax.  Labels reach the loss as 0/1, or -1/+1 where its
    target's domain is "sign" (hinge); a loss whose targets cannot be those
    raises an InputError.  A loss on a probability (``bce``'s p) is composed
    with its sigmoid link, p = sigmoid(x w + b), as the boosting objectives
    compose it (symloss.boosting.link): ``bce`` fits as ``bce_logits`` does.
    A row loss on a distribution (``categorical_cross_entropy``) is refused:
    use ``cross_entropy``.  ``predict_proba`` exists for row losses, losses on
    logits (bce_logits, focal_binary) and losses on a probability, whether
    fitted or not; not for margin losses such as hinge.
    """

    def __init__(self, loss="auto", *, alpha=0.0, l1_ratio=0.0, fit_intercept=True, solver="auto", max_iter=100,
                 tol=1e-6, learning_rate=None, verbose=1, **loss_params):
        super().__init__(loss, alpha=alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept, solver=solver,
                         max_iter=max_iter, tol=tol, learning_rate=learning_rate, verbose=verbose, **loss_params)

    def _resolved(self, n_classes):
        if isinstance(self.loss, str) and self.loss == "auto":
            return resolve_loss("bce_logits" if n_classes == 2 else "cross_entropy")
        return resolve_loss(self.loss)

    def _loss_params(self):
        if isinstance(self.loss, str) and self.loss == "auto":
            return {}
        return super()._loss_params()

    def fit(self, X, y, sample_weight=None):
        self._check_hyper()
        dask_input = is_dask(X) or is_dask(y)
        if dask_input:
            import dask.array as da

            self.classes_ = np.unique(np.asarray(da.unique(y).compute()))
        else:
            X, y = validate_data(self, X, y)
            check_classification_targets(y)
            self.classes_ = np.unique(y)
        K = len(self.classes_)
        if K < 2:
            raise ValueError(f"LossClassifier needs samples of at least 2 classes; got one class: {self.classes_[0]}")
        source = self._resolved(K)
        loss = margin_loss(source)
        self._loss_ref = LossRef(loss)  # pickles by spec: the fitted model pickles
        params = self._loss_params()
        if _is_row(loss):
            head, encode = RowHead(loss, params, K), self._index_encoder()
        else:
            m = 1 if K == 2 else K
            head, encode = ElementwiseHead(loss, params, m), self._binary_encoder(loss, m)
        Y = y.map_blocks(encode, dtype=float, chunks=y.chunks if head.m == 1 or _is_row(loss)
                         else (y.chunks[0], (head.m,)), new_axis=None if head.m == 1 or _is_row(loss) else 1) \
            if dask_input else encode(y)
        if not _is_row(loss):  # a loss whose targets are not 0/1 (or -1/+1) cannot take class labels
            shown = f"{source.name} (classes encoded as {self._negative(loss):g}/1)"
            Y = _checked(Y, lambda b: check_targets(loss, b, shown))
        data, p = self._data(X, Y, sample_weight)
        W = self._solve(head, data, p)
        if _is_row(loss) and self.fit_intercept:  # the softmax ignores a common shift: report centred intercepts
            W[-1] -= W[-1].mean()
        self._set_coef(W, squeeze=False)
        return self

    def _index_encoder(self):
        classes = self.classes_
        return lambda y: np.searchsorted(classes, y).astype(np.int64)

    @staticmethod
    def _negative(loss) -> float:
        return -1.0 if loss.spec.targets[0].domain == "sign" else 0.0

    def _binary_encoder(self, loss, m):
        classes = self.classes_
        neg = self._negative(loss)

        def encode(y):
            y = np.asarray(y)
            if m == 1:
                return np.where(y == classes[1], 1.0, neg)
            return np.where(y[:, None] == classes[None, :], 1.0, neg)

        return encode

    def decision_function(self, X):
        Z = self._raw(X)
        return Z[:, 0] if self.coef_.shape[0] == 1 else Z

    def predict(self, X):
        Z = self.decision_function(X)
        if is_dask(Z):
            Z = Z.compute()
        idx = (Z > 0).astype(int) if Z.ndim == 1 else np.argmax(Z, axis=1)
        return self.classes_[idx]

    @property
    def loss_(self):
        """The loss fitted (the one "auto" chose; bce composed with its sigmoid link: bce_sigmoid)."""
        check_is_fitted(self)
        return self._loss_ref.loss

    def _has_proba(self):
        """A function of ``loss`` alone, fitted or not (as available_if expects): a softmax
        row loss, a loss on logits, or a loss on a probability (fitted through its sigmoid)."""
        if isinstance(self.loss, str) and self.loss == "auto":
            return True
        try:
            loss = resolve_loss(self.loss)
        except Exception:  # an unknown loss fails in fit, with the catalog's message
            return True
        return _is_row(loss) or loss.name in SIGMOID_LOSSES or _link.needs_link(loss) == "unit"

    @available_if(_has_proba)
    def predict_proba(self, X):
        Z = np.asarray(self.decision_function(X))
        if _is_row(self.loss_):
            Z = Z - Z.max(axis=1, keepdims=True)
            E = np.exp(Z)
            return E / E.sum(axis=1, keepdims=True)
        P = 0.5 * (1 + np.tanh(0.5 * Z))  # sigmoid without overflow
        if P.ndim == 1:
            return np.column_stack([1 - P, P])
        return P / P.sum(axis=1, keepdims=True)  # one-vs-rest, normalised

    @available_if(_has_proba)
    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = False
        return tags
