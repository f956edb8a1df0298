"""symloss losses as CatBoost objectives: the sign convention, the start score as the model's bias."""
import warnings

import numpy as np
import pytest

catboost = pytest.importorskip("catboost")
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine  # noqa: E402

import symloss  # noqa: E402
import symloss.catboost as sc  # noqa: E402

COMMON = dict(iterations=15, depth=3, learning_rate=0.3, random_seed=0, thread_count=1, verbose=0,
              bootstrap_type="No", random_strength=0, leaf_estimation_method="Newton",
              leaf_estimation_iterations=1, allow_writing_files=False)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        # CatBoost cannot numba-jit methods that use self; it calls them from Python
        warnings.filterwarnings("ignore", message="Can't optimze method")
        yield


def test_mse_matches_rmse_sign_convention_and_start():
    X, y = load_diabetes(return_X_y=True)
    # documented settings: l2_leaf_reg=0 (symloss's mse is twice CatBoost's r^2 / 2; CatBoost's split
    # scores regularise by counts, not Hessians, so no l2_leaf_reg rescaling reproduces it otherwise)
    builtin = catboost.CatBoostRegressor(loss_function="RMSE", l2_leaf_reg=0.0, **COMMON).fit(X, y)
    model = catboost.CatBoostRegressor(loss_function=sc.objective("mse"), eval_metric=sc.metric("mse"),
                                       l2_leaf_reg=0.0, **COMMON)
    sc.fit(model, X, y)
    np.testing.assert_allclose(model.predict(X), builtin.predict(X), rtol=1e-8, atol=1e-5)
    # the wrong sign would climb the loss
    L = symloss.load("mse")
    assert L.value(y, model.predict(X)) < 0.6 * L.value(y, np.full(len(y), y.mean()))


def test_objective_returns_negated_derivatives():
    obj = sc.objective("poisson_nll")
    ders = obj.calc_ders_range([0.0, 1.0], [2.0, 0.0], [1.0, 3.0])
    np.testing.assert_allclose(ders, [(-(1 - 2.0), -1.0), (-3 * np.e, -3 * np.e)], rtol=1e-12)
    g, H = sc.objective("cross_entropy", hessian="exact").calc_ders_multi([0.0, 0.0, 0.0], 1.0, 2.0)
    np.testing.assert_allclose(g, [-2 / 3, 4 / 3, -2 / 3], rtol=1e-12)
    np.testing.assert_allclose(H, -2 * np.diag([2 / 9] * 3), rtol=1e-12)


def test_focal_binary_and_general_robust_train():
    X, y = load_breast_cancer(return_X_y=True)
    model = catboost.CatBoostRegressor(loss_function=sc.objective("focal_binary"),
                                       eval_metric=sc.metric("focal_binary"), **COMMON)
    sc.fit(model, X, y)
    L = symloss.load("focal_binary")
    assert L.value(y, model.predict(X)) < 0.5 * L.value(y, np.full(len(y), sc.base_margin("focal_binary", y)))
    Xr, yr = load_diabetes(return_X_y=True)
    yr = (yr - yr.mean()) / yr.std()
    model = catboost.CatBoostRegressor(loss_function=sc.objective("general_robust", alpha=0.5),
                                       eval_metric=sc.metric("general_robust", alpha=0.5), **COMMON)
    sc.fit(model, Xr, yr)
    G = symloss.load("general_robust")
    start = np.full(len(yr), sc.base_margin("general_robust", yr, alpha=0.5))
    assert G.value(yr, model.predict(Xr), alpha=0.5) < 0.9 * G.value(yr, start, alpha=0.5)


def test_multiclass_cross_entropy_trains_with_the_start_as_bias():
    X, y = load_wine(return_X_y=True)
    X, y = X[::2], y[::2]  # CatBoost calls calc_ders_multi once per sample, from Python: keep it small
    model = catboost.CatBoost(dict(loss_function=sc.objective("poly1_cross_entropy"),
                                   eval_metric=sc.metric("poly1_cross_entropy"), **{**COMMON, "iterations": 5}))
    sc.fit(model, X, y)
    z = model.predict(X, prediction_type="RawFormulaVal")
    assert z.shape == (len(y), 3)
    assert np.mean(z.argmax(axis=1) == y) > 0.9


def test_eval_sets_start_from_the_same_baseline():
    """Every eval set gets the training baseline, whatever form it takes: the logged metric is then
    the final model's loss on it.  The caller's Pools are not changed; one with its own baseline keeps it."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = X[:, 0] + 3 + rng.normal(size=300)
    L = symloss.load("huber")
    kw = {**COMMON, "iterations": 10}

    def model(**extra):
        return catboost.CatBoostRegressor(loss_function=sc.objective("huber"), eval_metric=sc.metric("huber"),
                                          **{**kw, **extra})

    def logged(m, i):
        return m.get_evals_result()[f"validation_{i}" if i is not None else "validation"]["Metric"]

    a, b, c = slice(200, 240), slice(240, 270), slice(270, 300)
    pool_b, pool_c = catboost.Pool(X[b], y[b]), catboost.Pool(X[c], y[c], baseline=np.full(30, 100.0))
    m = sc.fit(model(use_best_model=False), X[:200], y[:200], eval_set=[(X[a], y[a]), pool_b, pool_c])
    for i, part in ((0, a), (1, b)):
        assert logged(m, i)[-1] == pytest.approx(L.value(y[part], m.predict(X[part])), rel=1e-6)
    assert pool_b.get_baseline().size == 0  # (copied, not changed)
    # the caller's baseline is the start there: the metric is far off the data
    assert logged(m, 2)[-1] == pytest.approx(L.value(y[c], m.predict(X[c]) - sc.base_margin("huber", y[:200])
                                                     + 100.0), rel=1e-6)
    # one (X, y) pair, early stopping and the best model kept
    m = sc.fit(model(), X[:200], y[:200], eval_set=(X[a], y[a]), early_stopping_rounds=3)
    assert logged(m, None)[m.get_best_iteration()] == pytest.approx(L.value(y[a], m.predict(X[a])), rel=1e-6)


def test_classifier_start_from_its_encoded_classes():
    """CatBoostClassifier hands the objective classes 0..K-1 (sorted): the start comes from those,
    so relabelled classes give the same model, with K classes (not max(label) + 1)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    lab = rng.choice(3, size=120, p=[0.5, 0.3, 0.2])
    kw = {**COMMON, "iterations": 3}

    def fitted(labels, loss):
        return sc.fit(catboost.CatBoostClassifier(loss_function=sc.objective(loss), eval_metric=sc.metric(loss),
                                                  **kw), X, labels)

    m = fitted(lab, "cross_entropy")  # labels that are codes already: classes_ and predict() work
    assert list(m.classes_) == [0, 1, 2] and set(m.predict(X).ravel().tolist()) <= {0, 1, 2}
    ref = m.predict(X, prediction_type="RawFormulaVal")
    mb = fitted(lab > 0, "bce_logits")
    assert list(mb.classes_) == [False, True] and mb.predict(X).shape[0] == len(X)
    mh = fitted(np.where(lab > 0, 1, -1), "hinge")  # a loss on -1/+1 gets the labels as they are
    assert np.isfinite(mh.predict(X, prediction_type="RawFormulaVal")).all()
    for labels in (np.where(lab == 2, 3, lab), lab + 1, np.array(["ant", "bee", "cat"])[lab]):
        m = fitted(labels, "cross_entropy")
        np.testing.assert_allclose(m.predict(X, prediction_type="RawFormulaVal"), ref, rtol=1e-12)
        assert list(m.classes_) == sorted(set(labels.tolist()))
    z = sc.base_margin("cross_entropy", lab)
    np.testing.assert_allclose(np.exp(z) / np.exp(z).sum(), np.bincount(lab) / len(lab), rtol=1e-9)
    yb = 1 + (lab > 0)  # binary {1, 2}: the objective sees {0, 1}
    ref = fitted((lab > 0).astype(int), "bce_logits").predict(X, prediction_type="RawFormulaVal")
    m = fitted(yb, "bce_logits")
    np.testing.assert_allclose(m.predict(X, prediction_type="RawFormulaVal"), ref, rtol=1e-12)
    assert m.get_scale_and_bias()[1] == pytest.approx(sc.base_margin("bce_logits", lab > 0), rel=1e-12)
