"""symloss losses as XGBoost objectives: built-ins reproduced, the start score, the Hessian policy, leaf
renewal, bad input."""
import json
import pickle

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine  # noqa: E402

import symloss  # noqa: E402
import symloss.xgboost as sx  # noqa: E402
from symloss.boosting import BoostLoss, base_margin  # noqa: E402

P = {"max_depth": 3, "eta": 0.3, "nthread": 1, "tree_method": "hist"}


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X, y


def split(X, y, seed=0):
    idx = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.7 * len(y))
    return X[idx[:cut]], y[idx[:cut]], X[idx[cut:]], y[idx[cut:]]


# ---------------------------------------------------------------------------- the start score
def test_base_margin_is_the_optimal_constant():
    rng = np.random.default_rng(1)
    y = rng.gamma(2.0, size=501) + 1
    w = rng.uniform(0.1, 2.0, size=501)
    assert base_margin("mse", y, w) == pytest.approx(np.average(y, weights=w), rel=1e-12)
    assert base_margin("mae", y) == pytest.approx(np.median(y), rel=1e-9)  # odd n: a unique minimiser
    q = base_margin("quantile", y, tau=0.9)
    assert np.mean(y <= q) == pytest.approx(0.9, abs=2 / len(y))
    yb = (rng.uniform(size=400) < 0.3).astype(float)
    assert base_margin("bce_logits", yb) == pytest.approx(np.log(yb.mean() / (1 - yb.mean())), rel=1e-10)
    assert base_margin("poisson_nll", np.array([0.0, 1, 2, 5])) == pytest.approx(np.log(2.0), rel=1e-10)
    yc = rng.integers(0, 4, size=600)
    c = base_margin("cross_entropy", yc)
    freq = np.bincount(yc) / len(yc)
    np.testing.assert_allclose(np.exp(c) / np.exp(c).sum(), freq, rtol=1e-8)


def test_base_margin_where_the_infimum_is_at_infinity():
    # every label 1: the loss only approaches its infimum; Newton stops once the mean gradient is negligible
    c = base_margin("bce_logits", np.ones(10))
    assert 20 < c < 100 and 1 - 1 / (1 + np.exp(-c)) < 1e-11


def test_sklearn_base_score_starts_each_estimator_from_the_margin():
    """A binary XGBClassifier runs a custom objective under binary:logistic, which reads base_score
    as a probability: sklearn_base_score gives it the margin's sigmoid (base_margin itself would
    start elsewhere, and a negative one is refused); the others take the margin as it is."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    kw = dict(n_estimators=1, learning_rate=1e-9, n_jobs=1)
    for p in (0.7, 0.2):  # a positive and a negative margin
        y = (rng.uniform(size=300) < p).astype(int)
        m = xgb.XGBClassifier(objective=sx.sklearn_objective("bce_logits"), **kw)
        m.set_params(base_score=sx.sklearn_base_score("bce_logits", y, m)).fit(X, y)
        np.testing.assert_allclose(m.predict(X, output_margin=True), sx.base_margin("bce_logits", y), atol=1e-6)
        np.testing.assert_allclose(m.predict_proba(X)[:, 1], y.mean(), atol=1e-6)
    y3 = rng.integers(0, 3, size=300)
    m = xgb.XGBClassifier(objective=sx.sklearn_objective("cross_entropy"), **kw)
    m.set_params(base_score=sx.sklearn_base_score("cross_entropy", y3, m)).fit(X, y3)
    np.testing.assert_allclose(m.predict(X, output_margin=True)[0], sx.base_margin("cross_entropy", y3), atol=1e-6)
    yr = X[:, 0] - 2.0
    r = xgb.XGBRegressor(objective=sx.sklearn_objective("huber"), **kw)
    r.set_params(base_score=sx.sklearn_base_score("huber", yr, r)).fit(X, yr)
    np.testing.assert_allclose(r.predict(X), sx.base_margin("huber", yr), atol=1e-6)


# ---------------------------------------------------------------------------- built-ins reproduced
def test_mse_reproduces_reg_squarederror(diabetes):
    X, y = diabetes
    d = xgb.DMatrix(X, label=y)
    c = sx.base_margin("mse", y)
    builtin = xgb.train({**P, "objective": "reg:squarederror", "base_score": c}, d, 15)
    # symloss's mse is (yhat - y)^2, twice XGBoost's r^2 / 2: doubling lambda and min_child_weight
    # makes every leaf -2G / (2H + 2 lambda), the built-in's step exactly
    ours = sx.train("mse", {**P, "lambda": 2.0, "min_child_weight": 2.0}, d, 15)
    np.testing.assert_allclose(ours.predict(d), builtin.predict(d), rtol=0, atol=1e-6)
    # the scikit-learn form, with the start as base_score (stored in the model)
    m = xgb.XGBRegressor(objective=sx.sklearn_objective("mse"), base_score=c, n_estimators=15, max_depth=3,
                         learning_rate=0.3, reg_lambda=2.0, min_child_weight=2.0, n_jobs=1, tree_method="hist")
    np.testing.assert_allclose(m.fit(X, y).predict(X), builtin.predict(d), rtol=0, atol=1e-6)


def test_bce_logits_reproduces_binary_logistic():
    X, y = load_breast_cancer(return_X_y=True)
    c = sx.base_margin("bce_logits", y)
    d = xgb.DMatrix(X, label=y, base_margin=np.full(len(y), c))
    builtin = xgb.train({**P, "objective": "binary:logistic"}, d, 15)
    ours = sx.train("bce_logits", P, d, 15)  # the base margin on d is the start
    np.testing.assert_allclose(ours.predict(d, output_margin=True), builtin.predict(d, output_margin=True),
                               rtol=0, atol=1e-5)


def test_cross_entropy_upper_bound_reproduces_multi_softprob():
    X, y = load_wine(return_X_y=True)
    c = sx.base_margin("cross_entropy", y)
    d = xgb.DMatrix(X, label=y, base_margin=np.tile(c, (len(y), 1)))
    params = {**P, "num_class": 3}
    builtin = xgb.train({**params, "objective": "multi:softprob"}, d, 10)
    ours = sx.train("cross_entropy", params, d, 10, hessian="upper_bound")
    np.testing.assert_allclose(ours.predict(d, output_margin=True), builtin.predict(d, output_margin=True),
                               rtol=0, atol=1e-5)
    exact = sx.train("cross_entropy", params, d, 10, hessian="exact")
    assert np.abs(exact.predict(d, output_margin=True) - builtin.predict(d, output_margin=True)).max() > 1e-3


# ---------------------------------------------------------------------------- the Hessian policy
def test_default_policy_from_derived_properties():
    assert BoostLoss("mse").hessian == "exact"
    for name in ("mae", "quantile", "hinge", "huber"):
        assert BoostLoss(name).hessian == "fisher", name
    assert BoostLoss("cauchy").hessian == "clip"  # not convex
    assert BoostLoss("cross_entropy").hessian == "clip"


# the built-ins renew each leaf to the residuals' median / quantile after the tree is grown; symloss's
# train() does the same for these losses (renew_leaves="auto"): within 5% of the built-in, where the
# 0.9-quantile without renewal measured 7-15% behind
@pytest.mark.parametrize("seed", [0, 2])
@pytest.mark.parametrize("name, builtin, params, eta", [
    ("mae", {"objective": "reg:absoluteerror"}, {}, 0.1),
    ("quantile", {"objective": "reg:quantileerror", "quantile_alpha": 0.9}, {"tau": 0.9}, 0.05),
])
def test_nonsmooth_losses_train_close_to_the_builtin(diabetes, name, builtin, params, eta, seed):
    Xtr, ytr, Xte, yte = split(*diabetes, seed=seed)
    dtr, dte = xgb.DMatrix(Xtr, label=ytr), xgb.DMatrix(Xte, label=yte)
    ref = xgb.train({**P, "eta": eta, **builtin}, dtr, 100)
    history = {}
    ours = sx.train(name, {**P, "eta": eta}, dtr, 100, loss_params=params, evals=[(dtr, "train"), (dte, "test")],
                    evals_result=history, verbose_eval=False)
    plain = sx.train(name, {**P, "eta": eta}, dtr, 100, loss_params=params, renew_leaves=False)
    stalled = sx.train(name, {**P, "eta": eta}, dtr, 100, loss_params=params, hessian="exact", renew_leaves=False)
    L = symloss.load(name)

    def loss(booster, d=dte, y=yte):
        return L.value(y, booster.predict(d).astype(np.float64), **params)

    start_loss = L.value(yte, np.full(len(yte), sx.base_margin(name, ytr, **params)), **params)
    assert loss(stalled) == pytest.approx(start_loss, rel=1e-6)  # zero Hessians: no split, no step
    assert loss(plain) < 0.9 * start_loss
    assert loss(ours) <= 1.05 * loss(ref)
    assert not np.allclose(plain.predict(dte), ours.predict(dte))
    # the metric adds what XGBoost's cached margins lack: it is the loss of the final model's predictions
    # (XGBoost reports metrics in float32 text)
    assert history["test"][name][-1] == pytest.approx(loss(ours), rel=1e-6)
    assert history["train"][name][-1] == pytest.approx(loss(ours, dtr, ytr), rel=1e-6)


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_renewed_leaves_minimise_their_samples_loss(scale):
    """One round at learning rate 1: each leaf is the start plus the weighted median of its samples'
    residuals (mae), which no nearby constant improves; also for labels in the tens of thousands
    (the solver's bracket once stopped at 1e4 and left such leaves as grown)."""
    rng = np.random.default_rng(3)
    X, w = rng.normal(size=(400, 3)), rng.uniform(0.2, 3.0, 400)
    y = (X[:, 0] * 3 + rng.standard_t(2, 400)) * scale
    d = xgb.DMatrix(X, label=y, weight=w)
    b = sx.train("mae", {**P, "eta": 1.0}, d, 1, metric=False)
    pred, leaf = b.predict(d).astype(np.float64), b.predict(d, pred_leaf=True).reshape(-1)
    assert len(np.unique(leaf)) > 2
    for k in np.unique(leaf):
        s = leaf == k
        c = pred[s][0]
        cost = lambda v: np.sum(w[s] * np.abs(y[s] - v))  # noqa: E731
        step = 1e-3 * scale
        assert cost(c) <= min(cost(c - step), cost(c + step)) + 1e-6 * scale


def test_renew_leaves_refuses_what_it_cannot_do():
    X, y = np.random.default_rng(0).normal(size=(60, 2)), np.arange(60) % 3
    d = xgb.DMatrix(X, label=y * 1.0)
    with pytest.raises(ValueError, match="elementwise"):
        sx.train("cross_entropy", {**P, "num_class": 3}, d, 1, renew_leaves=True)
    with pytest.raises(ValueError, match="gbtree"):
        sx.train("mae", {**P, "booster": "dart"}, d, 1, renew_leaves=True)
    with pytest.raises(ValueError, match="num_parallel_tree"):
        sx.train("mae", {**P, "num_parallel_tree": 2}, d, 1, renew_leaves=True)
    with pytest.raises(ValueError, match="monotone"):
        sx.train("mae", {**P, "monotone_constraints": "(1,0)"}, d, 1, renew_leaves=True)
    with pytest.raises(ValueError, match="metric other than symloss's"):
        sx.train("mae", {**P, "eval_metric": "mae"}, d, 1, renew_leaves=True, evals=[(d, "t")])
    with pytest.raises(ValueError, match="renew_leaves must be"):
        sx.train("mae", P, d, 1, renew_leaves=0)
    with pytest.raises(ValueError, match="checkpoint"):
        sx.train("mae", P, d, 1, renew_leaves=True,
                 callbacks=[xgb.callback.TrainingCheckPoint(directory=".", interval=100)])
    # an xgb_model brings its own booster: a forest per round, or dart
    for extra in ({"num_parallel_tree": 3}, {"booster": "dart"}):
        base = xgb.train({**P, **extra}, d, 2)
        with pytest.raises(ValueError, match="forest per round|gbtree booster"):
            sx.train("mae", P, d, 2, xgb_model=base, renew_leaves=True)
        assert sx.train("mae", P, d, 2, xgb_model=base).num_boosted_rounds() == 4  # "auto" steps aside
    # "auto" steps aside where it cannot: XGBoost's metric, on margins with the leaves as grown
    hist = {}
    b = sx.train("mae", {**P, "eval_metric": "mae"}, d, 2, evals=[(d, "t")], evals_result=hist, verbose_eval=False)
    assert hist["t"]["mae"][-1] == pytest.approx(np.mean(np.abs(b.predict(d) - y)), rel=1e-5)


def test_renewal_reads_parameters_as_xgboost_does():
    """None is XGBoost's "not set"; a metric parameter with no evals is never computed; evals may be
    an iterator; hinge (labels +-1) renews only on request."""
    X = np.random.default_rng(1).normal(size=(200, 3))
    y = X[:, 0] + np.random.default_rng(2).standard_t(2, 200)
    d = xgb.DMatrix(X, label=y)
    plain = sx.train("mae", P, d, 3, renew_leaves=False).predict(d)
    for params in ({"booster": None, "num_parallel_tree": None, "process_type": None}, {"eval_metric": "mae"}):
        renewed = sx.train("mae", {**P, **params}, d, 3).predict(d)
        assert not np.allclose(renewed, plain), params
    hist = {}
    sx.train("mae", P, d, 3, evals=iter([(d, "t")]), evals_result=hist)
    assert len(hist["t"]["mae"]) == 3
    yh = np.where(X[:, 0] + X[:, 1] > 0, 1.0, -1.0)
    dh = xgb.DMatrix(X, label=yh)
    np.testing.assert_array_equal(sx.train("hinge", P, dh, 3).predict(dh),
                                  sx.train("hinge", P, dh, 3, renew_leaves=False).predict(dh))
    assert not np.array_equal(sx.train("hinge", P, dh, 3, renew_leaves=True).predict(dh),
                              sx.train("hinge", P, dh, 3, renew_leaves=False).predict(dh))


def test_renewal_learning_rate_early_stopping_and_continued_training(diabetes):
    """The learning rate a tree was grown with (a scheduler's) scales its renewed leaves; the leaves
    written into the model survive early stopping's cut and keep the training configuration; with
    xgb_model training continues from that model's predictions (its base_score untouched)."""
    X, y = diabetes
    dtr, dte = xgb.DMatrix(X[:300], label=y[:300]), xgb.DMatrix(X[300:], label=y[300:])
    tiny = sx.train("mae", {**P, "eta": 1.0}, dtr, 3, start=None,
                    callbacks=[xgb.callback.LearningRateScheduler([1e-4] * 3)])
    # (the scheduler sets each rate after its round: tree 0, grown at eta 1 from a constant start, is
    # one leaf; trees 1 and 2, at 1e-4, add leaves of the median residual, ~100, times 1e-4)
    assert np.ptp(tiny.predict(dtr)) < 0.1
    L = symloss.load("mae")
    history = {}
    best = sx.train("mae", P, dtr, 200, evals=[(dte, "test")], evals_result=history, verbose_eval=False,
                    callbacks=[xgb.callback.EarlyStopping(rounds=5, save_best=True)])
    assert best.num_boosted_rounds() == best.best_iteration + 1 < 200
    assert history["test"]["mae"][best.best_iteration] == pytest.approx(
        L.value(y[300:], best.predict(dte).astype(np.float64)), rel=1e-6)
    config = json.loads(best.save_config())["learner"]["gradient_booster"]["tree_train_param"]
    assert (config["max_depth"], float(config["eta"])) == ("3", pytest.approx(0.3))
    shifted = xgb.DMatrix(X[:300], label=y[:300] + 1000.0)  # a start of its own would be ~1000 higher
    more = sx.train("mae", P, shifted, 2, xgb_model=best)
    np.testing.assert_array_equal(more[:best.num_boosted_rounds()].predict(dte), best.predict(dte))
    assert np.all(more.predict(dtr) > best.predict(dtr))
    with pytest.raises(ValueError, match="xgb_model"):
        sx.train("mae", P, dtr, 1, xgb_model=best, start=0.5)


def test_hinge_trains_close_to_binary_hinge():
    X, y01 = load_breast_cancer(return_X_y=True)
    Xtr, ytr, Xte, yte = split(X, y01)
    ref = xgb.train({**P, "objective": "binary:hinge"}, xgb.DMatrix(Xtr, label=ytr), 30)
    ours = sx.train("hinge", P, xgb.DMatrix(Xtr, label=2 * ytr - 1), 30)
    acc_ref = np.mean(ref.predict(xgb.DMatrix(Xte)) == yte)
    acc = np.mean((ours.predict(xgb.DMatrix(Xte)) > 0) == yte)
    assert acc >= 0.95 * acc_ref


# ---------------------------------------------------------------------------- losses with no built-in
@pytest.mark.parametrize("name, params", [("general_robust", {"alpha": 0.5}), ("tukey", {}), ("focal_binary", {})])
def test_losses_without_a_builtin_train(name, params):
    if name == "focal_binary":
        X, y = load_breast_cancer(return_X_y=True)
    else:
        X, y = load_diabetes(return_X_y=True)
        y = (y - y.mean()) / y.std()
    d = xgb.DMatrix(X, label=y)
    sx.train(name, P, d, 20, loss_params=params, evals=[(d, "train")], evals_result=(hist := {}))
    curve = hist["train"][name]
    assert curve[-1] < 0.8 * curve[0]


def test_poly1_cross_entropy_and_from_expr_train():
    X, y = load_wine(return_X_y=True)
    d = xgb.DMatrix(X, label=y)
    hist = {}
    sx.train("poly1_cross_entropy", {**P, "num_class": 3}, d, 10, evals=[(d, "t")], evals_result=hist)
    assert hist["t"]["poly1_cross_entropy"][-1] < 0.5 * hist["t"]["poly1_cross_entropy"][0]
    Xr, yr = load_diabetes(return_X_y=True)
    yr = (yr - yr.mean()) / yr.std()
    L = symloss.Loss.from_expr("log(cosh(yhat - y)) + (yhat - y)**2 / 10", name="gbm_logcosh_l2")
    dr = xgb.DMatrix(Xr, label=yr)
    hist = {}
    sx.train(L, P, dr, 15, evals=[(dr, "t")], evals_result=hist)
    assert hist["t"]["gbm_logcosh_l2"][-1] < 0.7 * hist["t"]["gbm_logcosh_l2"][0]


# ---------------------------------------------------------------------------- conventions
def test_objective_gives_per_sample_weighted_derivatives_in_the_margin_dtype():
    rng = np.random.default_rng(3)
    y, w = rng.normal(size=50), rng.uniform(size=50)
    m = rng.normal(size=50).astype(np.float32)
    d = xgb.DMatrix(np.zeros((50, 1)), label=y, weight=w)
    g, h = sx.objective("huber", delta=0.5, hessian="exact")(m, d)
    assert g.dtype == np.float32 and g.shape == (50,)
    r = m - y.astype(np.float32)
    np.testing.assert_allclose(g, w * np.clip(r, -0.5, 0.5), rtol=1e-5, atol=1e-6)  # not divided by n
    np.testing.assert_allclose(h, w * (np.abs(r) <= 0.5), rtol=1e-6)
    name, value = sx.metric("huber", delta=0.5)(m, d)
    assert name == "huber"
    assert value == pytest.approx(symloss.load("huber").value(y, m.astype(np.float64), sample_weight=w, delta=0.5),
                                  rel=1e-5)


def test_bce_on_probabilities_is_composed_with_the_sigmoid_link():
    rng = np.random.default_rng(4)
    y = (rng.uniform(size=40) < 0.5).astype(float)
    z = rng.normal(scale=30, size=40)
    g1, h1 = BoostLoss("bce").grad_hess(y, z)
    g2, h2 = BoostLoss("bce_logits", hessian="exact").grad_hess(y, z)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(h1, h2, rtol=1e-10, atol=1e-300)
    with pytest.raises(symloss.InputError, match="bce.*bce_logits"):
        BoostLoss("bce", link=None)
    with pytest.raises(symloss.InputError, match="categorical_cross_entropy.*cross_entropy"):
        BoostLoss("categorical_cross_entropy")


def test_boost_loss_pickles_for_workers():
    L = symloss.Loss.from_expr("(yhat - y)**4", name="gbm_quartic")
    b = BoostLoss(L, hessian="exact")
    b2 = pickle.loads(pickle.dumps(b))
    y, z = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    np.testing.assert_array_equal(b2.grad_hess(y, z)[0], b.grad_hess(y, z)[0])
    assert pickle.loads(pickle.dumps(BoostLoss("huber", delta=2.0))).params == {"delta": 2.0}


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("loss, match", [
    ("dice", "dice is a row loss without a class axis"),
    ("triplet", "triplet has 3 predictions"),
    ("gaussian_nll", "gaussian_nll has 2 predictions"),
])
def test_losses_that_cannot_be_objectives(loss, match):
    with pytest.raises(symloss.InputError, match=match):
        sx.objective(loss)


def test_bad_margins_and_labels_are_named():
    X = np.zeros((6, 1))
    with pytest.raises(symloss.InputError, match=r"huber: margins have shape \(6, 3\)"):
        sx.train("huber", {**P, "num_class": 3}, xgb.DMatrix(X, label=np.arange(6) % 3), 1, start=None)
    with pytest.raises(symloss.InputError, match=r"cross_entropy: margins have shape \(6,\)"):
        sx.train("cross_entropy", P, xgb.DMatrix(X, label=np.arange(6) % 3), 1, start=None)
    with pytest.raises(symloss.InputError, match=r"bce_logits: label 2.0 is outside .*0 <= y <= 1"):
        sx.train("bce_logits", P, xgb.DMatrix(X, label=[0, 1, 2, 0, 1, 0]), 1)
    with pytest.raises(symloss.InputError, match=r"hinge: label 0.0 .*map 0 labels to -1"):
        sx.train("hinge", P, xgb.DMatrix(X, label=[0, 1, 1, 0, 1, 0]), 1)
    with pytest.raises(symloss.InputError, match=r"cross_entropy: labels must be class indices in \[0, 3\)"):
        sx.train("cross_entropy", {**P, "num_class": 3}, xgb.DMatrix(X, label=[0, 1, 2.5, 0, 1, 0]), 1, start=None)
    with pytest.raises(symloss.InputError, match="gamma_nll: label 0.0 .*y > 0"):
        sx.base_margin("gamma_nll", np.array([0.0, 1.0]))
    with pytest.raises(symloss.InputError, match="huber: unknown parameter"):
        sx.objective("huber", dleta=1.0)
    with pytest.raises(symloss.InputError, match="hessian must be one of"):
        sx.objective("huber", hessian="approx")


def test_integrations_import_no_boosting_library():
    import subprocess
    import sys

    code = ("import sys, symloss, symloss.xgboost, symloss.lightgbm, symloss.catboost, symloss.boosting.dask; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'xgboost', 'lightgbm', 'catboost', 'dask', 'distributed', 'sklearn', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
