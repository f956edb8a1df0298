"""symloss estimators against scikit-learn's solvers: same objective, same data, coefficients compared.

Mappings (ours: weighted mean loss + alpha * (l1_ratio |w|_1 + (1 - l1_ratio)/2 |w|^2)):
- PoissonRegressor / GammaRegressor / TweedieRegressor(link="log"): the half deviance
  equals poisson_nll / gamma_nll / tweedie up to terms in y alone: same alpha.
- LogisticRegression(C): sum of log-losses * C + |w|^2 / 2  ->  alpha = 1 / (C * sum(w)).
- ElasticNet(alpha_e): |y - Xw|^2 / (2n) + ...; our mse is (yhat - y)^2 (no 1/2)  ->  alpha = 2 alpha_e.
- HuberRegressor fits w and a scale sigma jointly; at its optimum, w minimises
  sum s_i (2 / sigma) huber_delta(r_i) + alpha_h |w|^2 with delta = epsilon * sigma,
  i.e. our huber with delta = epsilon * sigma and alpha = alpha_h * sigma / sum(s).
"""
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import (ElasticNet, GammaRegressor, HuberRegressor, LogisticRegression, PoissonRegressor,
                                  QuantileRegressor, TweedieRegressor)

from symloss.sklearn import LossClassifier, LossRegressor

TIGHT = 1e-10


def rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-12)


@pytest.fixture(scope="module")
def glm_data():
    rng = np.random.default_rng(0)
    n, p = 300, 6
    X = rng.normal(size=(n, p)) * 0.5
    mu = np.exp(X @ (rng.normal(size=p) * 0.5) + 0.3)
    return {
        "X": X, "sw": rng.uniform(0.5, 2.0, n),
        "poisson": rng.poisson(mu).astype(float), "gamma": rng.gamma(2.0, mu / 2.0),
    }


@pytest.mark.parametrize("weighted", [False, True])
def test_poisson_vs_newton_cholesky(glm_data, weighted):
    X, y = glm_data["X"], glm_data["poisson"]
    sw = glm_data["sw"] if weighted else None
    ours = LossRegressor("poisson_nll", alpha=0.01, tol=TIGHT).fit(X, y, sample_weight=sw)
    ref = PoissonRegressor(alpha=0.01, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y, sample_weight=sw)
    assert ours.solver_ == "newton" and ours.n_iter_ <= 10
    assert rel(ours.coef_, ref.coef_) < 1e-6
    assert abs(ours.intercept_ - ref.intercept_) < 1e-6 * abs(ref.intercept_)


def test_newton_keeps_its_hessian_in_the_fast_phase(glm_data, monkeypatch):
    """Newton in memory reuses a Gram matrix while its steps converge fast (the chord
    method), and still stops on the exact gradient at the reference's optimum."""
    from symloss.sklearn import _objective

    grams = []
    gram = _objective.Objective.gram
    monkeypatch.setattr(_objective.Objective, "gram", lambda self, Hz: grams.append(1) or gram(self, Hz))
    X, y = glm_data["X"], glm_data["poisson"]
    ours = LossRegressor("poisson_nll", alpha=0.01, tol=1e-13, solver="newton").fit(X, y)
    ref = PoissonRegressor(alpha=0.01, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y)
    assert len(grams) <= ours.n_iter_ - 2  # at least two steps on a kept Gram matrix
    assert ours.history_["grad_norm"][-1] <= 1e-13
    assert rel(ours.coef_, ref.coef_) < 1e-6


def test_gamma_vs_sklearn(glm_data):
    X, y = glm_data["X"], glm_data["gamma"]
    ours = LossRegressor("gamma_nll", alpha=0.01, tol=TIGHT).fit(X, y)
    ref = GammaRegressor(alpha=0.01, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y)
    assert rel(ours.coef_, ref.coef_) < 1e-6


@pytest.mark.parametrize("power", [0.0, 1.5, 3.0])
def test_tweedie_vs_sklearn(glm_data, power):
    X, y = glm_data["X"], glm_data["gamma"]
    ours = LossRegressor("tweedie", power=power, alpha=0.01, tol=TIGHT).fit(X, y)
    with warnings.catch_warnings():  # at p = 3 scikit-learn's Newton meets negative pointwise Hessians
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = TweedieRegressor(power=power, link="log", alpha=0.01, solver="newton-cholesky", tol=1e-12,
                               max_iter=1000).fit(X, y)
    assert rel(ours.coef_, ref.coef_) < 1e-6


@pytest.mark.parametrize("weighted", [False, True])
def test_logistic_vs_sklearn(weighted):
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    sw = np.random.default_rng(1).uniform(0.5, 2.0, len(y)) if weighted else None
    C = 0.5
    total = len(y) if sw is None else sw.sum()
    ours = LossClassifier("bce_logits", alpha=1 / (C * total), tol=TIGHT).fit(X, y, sample_weight=sw)
    ref = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y, sample_weight=sw)
    assert rel(ours.coef_, ref.coef_) < 1e-6
    assert np.abs(ours.predict_proba(X) - ref.predict_proba(X)).max() < 1e-8
    assert (ours.predict(X) == ref.predict(X)).all()


def test_multinomial_vs_sklearn():
    X, y = load_iris(return_X_y=True)
    C = 0.5
    ours = LossClassifier(alpha=1 / (C * len(y)), tol=TIGHT).fit(X, y)  # auto: cross_entropy for 3 classes
    assert ours.loss_.name == "cross_entropy" and ours.coef_.shape == (3, 4)
    ref = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y)
    assert rel(ours.coef_, ref.coef_) < 1e-6
    # softmax is shift invariant: compare intercepts centred
    assert rel(ours.intercept_ - ours.intercept_.mean(), ref.intercept_ - ref.intercept_.mean()) < 1e-6
    assert np.abs(ours.predict_proba(X) - ref.predict_proba(X)).max() < 1e-7


@pytest.mark.parametrize("data", ["diabetes", "synthetic"])
def test_elastic_net_vs_sklearn(data):
    if data == "diabetes":
        X, y = load_diabetes(return_X_y=True)
        sw = None
    else:
        rng = np.random.default_rng(2)
        X = rng.normal(size=(120, 15))
        y = X[:, :4] @ [2.0, -1.0, 0.5, 3.0] + 0.3 * rng.normal(size=120)
        sw = rng.uniform(0.2, 3.0, 120)
    a = 0.05 if data == "synthetic" else 0.01
    ours = LossRegressor("mse", alpha=2 * a, l1_ratio=0.7, tol=1e-12, max_iter=500).fit(X, y, sample_weight=sw)
    ref = ElasticNet(alpha=a, l1_ratio=0.7, tol=1e-14, max_iter=100_000).fit(X, y, sample_weight=sw)
    assert ours.solver_ == "proximal"
    assert rel(ours.coef_, ref.coef_) < 1e-6
    assert ((ours.coef_ == 0) == (ref.coef_ == 0)).all()  # the same support, exact zeros


def test_proximal_newton_poisson_elastic_net_kkt():
    """Proximal Newton on a loss whose Hessian moves (each step needs a new one): the
    optimality conditions checked in plain numpy, independently of the solver's own."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, 12)) / 3
    w = np.where(rng.random(12) < 0.5, rng.normal(size=12), 0.0)
    y = rng.poisson(np.exp(X @ w + 0.3)).astype(float)
    sw = rng.uniform(0.5, 2.0, 400)
    alpha, l1_ratio = 0.02, 0.6
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        m = LossRegressor("poisson_nll", alpha=alpha, l1_ratio=l1_ratio, tol=1e-10, max_iter=100).fit(
            X, y, sample_weight=sw)
    assert m.solver_ == "proximal" and m.n_iter_ > 2
    z = X @ m.coef_ + m.intercept_
    resid = sw * (np.exp(z) - y) / sw.sum()  # poisson_nll: exp(z) - y z
    assert abs(resid.sum()) < 1e-8  # the unpenalised intercept
    g = X.T @ resid + alpha * (1 - l1_ratio) * m.coef_
    l1 = alpha * l1_ratio
    nz = m.coef_ != 0
    assert 0 < nz.sum() < 12
    assert np.max(np.abs(g[nz] + l1 * np.sign(m.coef_[nz]))) < 1e-8
    assert np.max(np.abs(g[~nz])) <= l1 + 1e-10


@pytest.mark.parametrize("tau", [0.1, 0.5, 0.9])
def test_quantile_l1_vs_highs(tau):
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:200], y[:200]
    ours = LossRegressor("quantile", tau=tau, alpha=0.01, l1_ratio=1.0).fit(X, y)
    ref = QuantileRegressor(quantile=tau, alpha=0.01, solver="highs").fit(X, y)
    assert ours.solver_ == "lp"

    def objective(c, b):
        r = y - X @ c - b
        return np.mean(np.maximum(tau * r, (tau - 1) * r)) + 0.01 * np.abs(c).sum()

    assert objective(ours.coef_, ours.intercept_) <= objective(ref.coef_, ref.intercept_) * (1 + 1e-5)
    assert abs(ours.history_["objective"][-1] - objective(ours.coef_, ours.intercept_)) < 1e-9


def test_huber_vs_sklearn_at_its_scale():
    rng = np.random.default_rng(1)
    n = 200
    X = rng.normal(size=(n, 4))
    y = X @ [1.0, 2.0, -1.0, 0.5] + rng.standard_t(2, size=n)
    sw = rng.uniform(0.5, 2.0, n)
    ref = HuberRegressor(epsilon=1.35, alpha=1e-2, tol=1e-12, max_iter=10_000).fit(X, y, sample_weight=sw)
    s = ref.scale_
    ours = LossRegressor("huber", delta=1.35 * s, alpha=1e-2 * s / sw.sum(), tol=TIGHT).fit(X, y, sample_weight=sw)
    # HuberRegressor's joint (w, sigma) L-BFGS-B fit is the looser of the two
    assert rel(ours.coef_, ref.coef_) < 1e-5
    assert abs(ours.intercept_ - ref.intercept_) < 1e-5


def test_tweedie_powers_exact_on_the_grid():
    """The catalog's tweedie takes every power scikit-learn allows (p <= 0, p >= 1): kernels
    against 50-digit mpmath on the extreme-input grid, beyond the grid's default parameter sets."""
    import symloss
    from symloss.check.grid import check_grid

    loss = symloss.load("tweedie")
    bad = [str(r) for r in check_grid(loss, param_sets=[{"power": p} for p in (-1.0, 0.0, 3.0)]) if not r.ok]
    assert not bad, "\n".join(bad)
