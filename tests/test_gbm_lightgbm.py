"""symloss losses as LightGBM objectives: built-ins reproduced, the start score folded into the model,
leaf renewal."""
import pickle

import numpy as np
import pytest

lgb = pytest.importorskip("lightgbm")
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine  # noqa: E402

import symloss  # noqa: E402
import symloss.lightgbm as sl  # noqa: E402

P = {"num_leaves": 7, "learning_rate": 0.3, "num_threads": 1, "verbose": -1, "min_data_in_leaf": 10,
     "deterministic": True, "force_row_wise": True}


@pytest.fixture(scope="module")
def diabetes():
    return load_diabetes(return_X_y=True)


def test_custom_l2_with_the_start_score_is_the_boost_from_average_model(diabetes):
    X, y = diabetes
    w = np.random.default_rng(0).uniform(0.2, 2.0, size=len(y))
    builtin = lgb.train({**P, "objective": "l2"}, lgb.Dataset(X, y, weight=w), 20)
    ours = sl.train("mse", P, lgb.Dataset(X, y, weight=w), 20)
    # the start is folded into the first trees: a plain predict() reproduces the built-in
    np.testing.assert_allclose(ours.predict(X), builtin.predict(X), rtol=0, atol=1e-6)
    # the well-known mismatch: a custom objective left to start from 0
    plain = lgb.train({**P, "objective": sl.objective("mse")}, lgb.Dataset(X, y, weight=w), 20)
    assert np.abs(plain.predict(X) - builtin.predict(X)).max() > 1e-2


def test_sklearn_form_applies_weights_and_the_start(diabetes):
    X, y = diabetes
    w = np.random.default_rng(1).uniform(0.2, 2.0, size=len(y))
    kw = dict(n_estimators=20, num_leaves=7, learning_rate=0.3, n_jobs=1, verbose=-1, min_child_samples=10,
              deterministic=True, force_row_wise=True)
    builtin = lgb.LGBMRegressor(objective="l2", **kw).fit(X, y, sample_weight=w)
    model = lgb.LGBMRegressor(objective=sl.sklearn_objective("mse"), **kw)
    Xv, yv = X[::3], y[::3]
    sl.fit(model, X, y, sample_weight=w, eval_X=(Xv,), eval_y=(yv,), eval_metric=sl.sklearn_metric("mse"))
    np.testing.assert_allclose(model.predict(X), builtin.predict(X), rtol=1e-8, atol=1e-6)
    # the eval set starts from the same constant: the metric is the model's at every round
    curve = model.evals_result_["valid_0"]["mse"]
    assert curve[-1] == pytest.approx(symloss.load("mse").value(yv, model.predict(Xv)), rel=1e-9)
    start = sl.base_margin("mse", y, w)
    assert curve[0] < symloss.load("mse").value(yv, np.full(len(yv), start))  # from 0 it would be ~3x that


def test_bce_logits_reproduces_binary():
    X, y = load_breast_cancer(return_X_y=True)
    builtin = lgb.train({**P, "objective": "binary"}, lgb.Dataset(X, y), 15)
    ours = sl.train("bce_logits", P, lgb.Dataset(X, y), 15)
    np.testing.assert_allclose(ours.predict(X), builtin.predict(X, raw_score=True), rtol=0, atol=1e-6)


def test_cross_entropy_exact_is_close_to_multiclass():
    X, y = load_wine(return_X_y=True)
    params = {**P, "num_class": 3}
    builtin = lgb.train({**params, "objective": "multiclass"}, lgb.Dataset(X, y), 10)
    ours = sl.train("cross_entropy", params, lgb.Dataset(X, y), 10, hessian="exact")
    pb = builtin.predict(X)
    z = ours.predict(X)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    # LightGBM's multiclass scales its Hessian by K / (K - 1) (1.5 here): smaller steps, same
    # classifier; stated tolerance: probabilities within 0.1, the same predicted classes
    assert np.abs(p - pb).max() < 0.1
    assert np.mean(p.argmax(1) == pb.argmax(1)) >= 0.99


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name, builtin, params", [
    ("mae", {"objective": "l1"}, {}),
    ("quantile", {"objective": "quantile", "alpha": 0.9}, {"tau": 0.9}),
])
def test_nonsmooth_losses_train_close_to_the_builtin(diabetes, name, builtin, params, seed):
    """Within 5% of the built-in on held-out data, with leaves renewed as the built-ins renew
    theirs (the default for these losses); the metric of the renewed model, which adds what
    LightGBM's cached scores lack, equals the loss of its own predictions."""
    X, y = diabetes
    idx = np.random.default_rng(seed).permutation(len(y))
    tr, te = idx[:300], idx[300:]
    p = {**P, "learning_rate": 0.1}
    ref = lgb.train({**p, **builtin}, lgb.Dataset(X[tr], y[tr]), 60)
    history = {}
    train_set = lgb.Dataset(X[tr], y[tr])  # also a validation set: the training scores are evaluated after the tree
    ours = sl.train(name, p, train_set, 60, loss_params=params, valid_sets=[train_set, lgb.Dataset(X[te], y[te])],
                    callbacks=[lgb.record_evaluation(history)])
    L = symloss.load(name)
    start = L.value(y[te], np.full(len(te), sl.base_margin(name, y[tr], **params)), **params)
    ours_loss = L.value(y[te], ours.predict(X[te]), **params)
    assert ours_loss < 0.9 * start
    assert ours_loss <= 1.05 * L.value(y[te], ref.predict(X[te]), **params)
    (curve,) = history["valid_1"].values()
    assert curve[-1] == pytest.approx(ours_loss, rel=1e-9)
    (curve,) = history["training"].values()  # the training set as a validation set: its scores once corrected
    assert curve[-1] == pytest.approx(L.value(y[tr], ours.predict(X[tr]), **params), rel=1e-9)
    plain = sl.train(name, p, lgb.Dataset(X[tr], y[tr]), 60, loss_params=params, renew_leaves=False)
    assert not np.allclose(plain.predict(X[te]), ours.predict(X[te]))


def test_fit_renews_leaves_too(diabetes):
    """The scikit-learn wrapper renews as train() does: within 5% of the built-in; its symloss metric
    sees each evaluation set's renewed scores (the training set itself among them); the estimator
    keeps the caller's objective, and clones and pickles as before."""
    X, y = diabetes
    idx = np.random.default_rng(0).permutation(len(y))
    Xtr, ytr, Xte, yte = X[idx[:300]], y[idx[:300]], X[idx[300:]], y[idx[300:]]
    kw = dict(n_estimators=60, num_leaves=7, learning_rate=0.1, min_child_samples=10, verbose=-1)
    obj = sl.sklearn_objective("quantile", tau=0.9)
    ref = lgb.LGBMRegressor(objective="quantile", alpha=0.9, **kw).fit(Xtr, ytr)
    model = sl.fit(lgb.LGBMRegressor(objective=obj, metric="None", **kw), Xtr, ytr, eval_X=(Xtr, Xte),
                   eval_y=(ytr, yte), eval_metric=sl.sklearn_metric("quantile", tau=0.9))
    plain = sl.fit(lgb.LGBMRegressor(objective=obj, **kw), Xtr, ytr, renew_leaves=False)
    L = symloss.load("quantile")

    def loss(m, X=Xte, y=yte):
        return L.value(y, m.predict(X), tau=0.9)

    assert loss(model) <= 1.05 * loss(ref) < loss(plain)
    curves = model.evals_result_
    assert curves["training"]["quantile"][-1] == pytest.approx(loss(model, Xtr, ytr), rel=1e-9)
    assert curves["valid_1"]["quantile"][-1] == pytest.approx(loss(model), rel=1e-9)
    assert model.get_params()["objective"] is obj
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(Xte), model.predict(Xte))
    assert clone(model).get_params()["objective"].loss.params == {"tau": 0.9}
    # an LGBMRegressor evaluates l2 on an eval set unless told otherwise: "auto" steps aside, True says why
    with pytest.raises(ValueError, match="metric='None'"):
        sl.fit(lgb.LGBMRegressor(objective=obj, **kw), Xtr, ytr, eval_X=(Xte,), eval_y=(yte,), renew_leaves=True)
    aside = sl.fit(lgb.LGBMRegressor(objective=obj, **kw), Xtr, ytr, eval_X=(Xte,), eval_y=(yte,))
    np.testing.assert_allclose(aside.predict(Xte), plain.predict(Xte), rtol=1e-12)


def test_fit_renewal_edge_cases(diabetes):
    """A classifier (which encodes y, so LightGBM builds a Dataset of its own for the training pair)
    pairs every evaluation set with its features; a round whose tree has no split is skipped; one
    (X, y) tuple as eval_set; init_model continues from that model (no second start score)."""
    X, y = load_breast_cancer(return_X_y=True)
    obj, met = sl.sklearn_objective("bce_logits"), sl.sklearn_metric("bce_logits")
    Xa, ya, Xb, yb = X[:250], y[:250], X[250:500], y[250:500]
    m = sl.fit(lgb.LGBMClassifier(objective=obj, metric="None", n_estimators=10, num_leaves=7, verbose=-1), Xa, ya,
               renew_leaves=True, eval_X=(Xa, Xb), eval_y=(ya, yb), eval_metric=met)
    for name, (Xe, ye) in zip(["valid_0", "valid_1"], [(Xa, ya), (Xb, yb)]):
        assert m.evals_result_[name]["bce_logits"][-1] == pytest.approx(
            met(ye, m.predict(Xe, raw_score=True), None)[1], rel=1e-9)
    X, y = diabetes
    L = symloss.load("quantile")
    q = sl.sklearn_objective("quantile", tau=0.9)
    kw = dict(n_estimators=10, num_leaves=7, min_child_samples=10, verbose=-1)
    sl.fit(lgb.LGBMRegressor(objective=q, **kw), X, y, start=None)  # all gradients equal: no split in round 1
    b = sl.train("quantile", {**P, "min_split_gain": 1e4}, lgb.Dataset(X, y), 5, loss_params={"tau": 0.9})
    assert b.num_trees() >= 1
    qm = sl.sklearn_metric("quantile", tau=0.9)
    one = sl.fit(lgb.LGBMRegressor(objective=q, metric="None", **kw), X[:300], y[:300], eval_set=(X[300:], y[300:]),
                 eval_metric=qm)
    listed = sl.fit(lgb.LGBMRegressor(objective=q, metric="None", **kw), X[:300], y[:300],
                    eval_set=[(X[300:], y[300:])], eval_metric=qm)
    np.testing.assert_array_equal(one.predict(X[300:]), listed.predict(X[300:]))
    as_lists = sl.fit(lgb.LGBMRegressor(objective=q, metric="None", **kw), X[:300], y[:300],
                      eval_X=X[300:], eval_y=list(y[300:]), eval_metric=qm)  # a list is one set
    assert as_lists.evals_result_["valid_0"]["quantile"][-1] == pytest.approx(
        L.value(y[300:], as_lists.predict(X[300:]), tau=0.9), rel=1e-9)
    more = sl.fit(lgb.LGBMRegressor(objective=q, **kw), X[:300], y[:300] + 1000.0, init_model=one)
    np.testing.assert_allclose(more.predict(X[300:], num_iteration=10), one.predict(X[300:]), rtol=1e-12)
    with pytest.raises(ValueError, match="init_model"):
        sl.fit(lgb.LGBMRegressor(objective=q, **kw), X, y, init_model=one, start=1.0)


def test_renewal_goes_on_after_a_round_without_a_tree():
    """Under bagging some rounds find no split and LightGBM adds no tree; the trees after them are
    still renewed (the renewal once looked the tree up by the round's number, and stopped)."""
    from symloss.boosting import BoostLoss
    from symloss.boosting.refresh import leaf_constants

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    y = 2 * X[:, 0] + rng.standard_t(2, 400) * 2
    params = {"learning_rate": 0.5, "num_leaves": 4, "min_data_in_leaf": 95, "bagging_fraction": 0.5,
              "bagging_freq": 1, "bagging_seed": 0, "verbose": -1, "num_threads": 1}
    trees = []
    b = sl.train("mae", params, lgb.Dataset(X, y), 30, callbacks=[lambda env: trees.append(env.model.current_iteration())])
    assert len(set(trees)) < len(trees)  # some rounds added no tree
    bl = BoostLoss("mae")
    start = bl.start(y)
    for t in range(b.num_trees()):
        m = np.full(len(y), start) if t == 0 else b.predict(X, num_iteration=t, raw_score=True)
        leaf = b.predict(X, start_iteration=t, num_iteration=1, pred_leaf=True).reshape(-1).astype(int)
        rate = b.dump_model(start_iteration=t, num_iteration=1)["tree_info"][0]["shrinkage"]
        for k, c in leaf_constants(bl, y, None, m, leaf).items():
            assert b.get_leaf_output(t, k) - (start if t == 0 else 0) == pytest.approx(rate * c, abs=1e-6), t


def test_renewed_leaves_minimise_their_samples_loss():
    """One round at learning rate 1 from the start score: each leaf is the weighted median of
    its samples' labels (mae), which no nearby constant improves."""
    rng = np.random.default_rng(3)
    X, w = rng.normal(size=(400, 3)), rng.uniform(0.2, 3.0, 400)
    y = X[:, 0] * 3 + rng.standard_t(2, 400)
    b = sl.train("mae", {**P, "learning_rate": 1.0}, lgb.Dataset(X, y, weight=w), 1, metric=False)
    pred, leaf = b.predict(X), b.predict(X, pred_leaf=True).reshape(-1)
    assert len(np.unique(leaf)) > 2
    for k in np.unique(leaf):
        s = leaf == k
        c = pred[s][0]
        cost = lambda v: np.sum(w[s] * np.abs(y[s] - v))  # noqa: E731
        assert cost(c) <= min(cost(c - 1e-3), cost(c + 1e-3)) + 1e-9


def test_renew_leaves_refuses_what_it_cannot_do():
    X, y = np.random.default_rng(0).normal(size=(60, 2)), np.arange(60) % 3
    with pytest.raises(ValueError, match="elementwise"):
        sl.train("cross_entropy", {**P, "num_class": 3}, lgb.Dataset(X, y), 1, renew_leaves=True)
    with pytest.raises(ValueError, match="gbdt"):
        sl.train("mae", {**P, "boosting": "dart"}, lgb.Dataset(X, y * 1.0), 1, renew_leaves=True)
    with pytest.raises(ValueError, match="metric other than symloss's"):
        sl.train("mae", {**P, "metric": "l1"}, lgb.Dataset(X, y * 1.0), 1, renew_leaves=True,
                 valid_sets=[lgb.Dataset(X, y * 1.0)])
    with pytest.raises(ValueError, match="in-memory features"):
        ds = lgb.Dataset(X, y * 1.0)
        ds.data = "train.bin"  # as a Dataset loaded from a file holds it
        sl.train("mae", P, ds, 1, renew_leaves=True)
    with pytest.raises(ValueError, match="monotone"):
        sl.train("mae", {**P, "monotone_constraints": [1, 0]}, lgb.Dataset(X, y * 1.0), 1, renew_leaves=True)
    with pytest.raises(ValueError, match="kept training booster"):
        sl.train("mae", P, lgb.Dataset(X, y * 1.0), 1, renew_leaves=True, keep_training_booster=True)
    with pytest.raises(ValueError, match="renew_leaves must be"):
        sl.train("mae", P, lgb.Dataset(X, y * 1.0), 1, renew_leaves=0)
    # "auto" steps aside where it cannot (a LightGBM metric on a validation set)
    b = sl.train("mae", {**P, "metric": "l1"}, lgb.Dataset(X, y * 1.0), 2, valid_sets=[lgb.Dataset(X, y * 1.0)])
    assert b.num_trees() == 2


@pytest.mark.parametrize("name, params", [("general_robust", {"alpha": -1.0}), ("tukey", {}),
                                          ("focal_binary", {}), ("poly1_cross_entropy", {})])
def test_losses_without_a_builtin_train(name, params):
    if name == "focal_binary":
        X, y = load_breast_cancer(return_X_y=True)
        extra = {}
    elif name == "poly1_cross_entropy":
        X, y = load_wine(return_X_y=True)
        extra = {"num_class": 3}
    else:
        X, y = load_diabetes(return_X_y=True)
        y = (y - y.mean()) / y.std()
        extra = {}
    hist = {}
    ds = lgb.Dataset(X, y, free_raw_data=False)
    sl.train(name, {**P, **extra}, ds, 15, loss_params=params, valid_sets=[ds], valid_names=["t"],
             callbacks=[lgb.record_evaluation(hist)])
    curve = hist["t"][name]
    assert curve[-1] < 0.9 * curve[0]


def test_from_expr_loss_trains():
    X, y = load_diabetes(return_X_y=True)
    y = (y - y.mean()) / y.std()
    L = symloss.Loss.from_expr("log(cosh(yhat - y)) + (yhat - y)**2 / 10", name="gbm_logcosh_l2")
    booster = sl.train(L, P, lgb.Dataset(X, y), 15)
    assert L.value(y, booster.predict(X)) < 0.6 * L.value(y, np.full(len(y), sl.base_margin(L, y)))


def test_objective_and_metric_conventions():
    rng = np.random.default_rng(2)
    y, w, m = rng.poisson(3.0, size=40).astype(float), rng.uniform(size=40), rng.normal(size=40)
    ds = lgb.Dataset(np.zeros((40, 1)), y, weight=w).construct()
    g, h = sl.objective("poisson_nll")(m, ds)
    w = ds.get_weight().astype(np.float64)  # LightGBM keeps weights in float32
    np.testing.assert_allclose(g, w * (np.exp(m) - y), rtol=1e-12)  # per sample, weighted, not / n
    np.testing.assert_allclose(h, w * np.exp(m), rtol=1e-12)
    name, value, higher = sl.metric("poisson_nll")(m, ds)
    assert (name, higher) == ("poisson_nll", False)
    assert value == pytest.approx(float(np.average(np.exp(m) - y * m, weights=w)), rel=1e-12)


def test_margin_shape_mismatch_names_the_loss():
    X, y = load_wine(return_X_y=True)
    with pytest.raises(symloss.InputError, match=r"mse: margins have shape"):
        sl.train("mse", {**P, "num_class": 3}, lgb.Dataset(X, y), 1, start=None)


def test_renewal_reads_each_tree_shrinkage_and_continued_training_starts_once():
    """The learning rate a tree was grown with (reset_parameter) scales its renewed leaves; with
    init_model training continues from that model's predictions (no second start score)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 3))
    y = X[:, 0] + rng.standard_t(3, 300)
    tiny = sl.train("mae", {**P, "learning_rate": 1.0}, lgb.Dataset(X, y), 3, start=None,
                    callbacks=[lgb.reset_parameter(learning_rate=[1e-4] * 3)])
    assert np.ptp(tiny.predict(X)) < 1e-2
    first = sl.train("mae", P, lgb.Dataset(X, y), 5, metric=False)
    history = {}
    more = sl.train("mae", P, lgb.Dataset(X, y, free_raw_data=False), 5, init_model=first,
                    valid_sets=[lgb.Dataset(X, y)], callbacks=[lgb.record_evaluation(history)])
    (curve,) = history["valid_0"].values()
    L = symloss.load("mae")
    assert curve[-1] == pytest.approx(L.value(y, more.predict(X)), rel=1e-7)  # (the init model's scores
    assert curve[-1] < L.value(y, first.predict(X))                           # pass through its text form)
    with pytest.raises(ValueError, match="init_model"):
        sl.train("mae", P, lgb.Dataset(X, y), 1, init_model=first, start=0.5)
    with pytest.raises(ValueError, match="linear trees"):
        sl.train("mae", {**P, "linear_tree": True}, lgb.Dataset(X, y), 1)
    with pytest.raises(ValueError, match="linear trees"):
        sl.fit(lgb.LGBMRegressor(objective=sl.sklearn_objective("mae"), linear_tree=True, verbose=-1), X, y)


def test_train_leaves_the_callers_datasets_as_they_came():
    """The start is the Datasets' init_score only while training: a Dataset (and a validation set)
    reused by a second train() gets the start again, and a plain lgb.train sees no init_score."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = X[:, 0] + 10 + rng.normal(size=400)
    L = symloss.load("mse")
    for free in (False, True):  # (constructed with the raw data kept, or freed)
        ds, dv = lgb.Dataset(X[:300], y[:300], free_raw_data=free), lgb.Dataset(X[300:], y[300:], free_raw_data=free)
        models, curves = [], []
        for _ in range(3):
            history = {}
            models.append(sl.train("mse", P, ds, 5, valid_sets=[dv], callbacks=[lgb.record_evaluation(history)]))
            curves.append(history["valid_0"]["mse"])
            for d in (ds, dv):
                assert d.init_score is None and d.get_field("init_score") is None
        for b, curve in zip(models, curves):
            np.testing.assert_array_equal(b.predict(X), models[0].predict(X))
            # (LightGBM's metric sees float32 labels)
            assert curve[-1] == pytest.approx(L.value(np.float32(y[300:]), b.predict(X[300:])), rel=1e-9)
        assert models[0].predict(X).mean() == pytest.approx(y.mean(), abs=0.5)  # (without the start: ~0)
        plain = lgb.train({**P, "objective": "l2"}, ds, 5)
        assert plain.predict(X).mean() == pytest.approx(y.mean(), abs=0.5)  # boost_from_average, no leftover
    # an init_score of the caller's wins: it is not folded, and it stays theirs
    mine = np.full(300, 10.0)
    ds = lgb.Dataset(X[:300], y[:300], init_score=mine)
    b = sl.train("mse", P, ds, 5)
    assert b.predict(X).mean() == pytest.approx(y.mean() - 10.0, abs=0.5)
    np.testing.assert_array_equal(ds.get_field("init_score"), mine)
    with pytest.raises(ValueError, match="init_score of their own"):
        sl.train("mse", P, ds, 1, start=1.0)


def test_fit_starts_a_classifier_from_its_encoded_classes():
    """LGBMClassifier hands the objective classes 0..K-1 (sorted): the start comes from those, so
    relabelled classes give the same model, and one round at a tiny rate predicts the class shares."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    lab = rng.choice(3, size=300, p=[0.5, 0.3, 0.2])
    kw = dict(n_estimators=3, num_leaves=7, n_jobs=1, verbose=-1, deterministic=True, force_row_wise=True)

    def fitted(labels, loss, **extra):
        return sl.fit(lgb.LGBMClassifier(objective=sl.sklearn_objective(loss), **{**kw, **extra}), X, labels)

    ref = fitted(lab, "cross_entropy").predict(X, raw_score=True)
    for labels in (np.where(lab == 2, 3, lab), lab + 1, np.array(["ant", "bee", "cat"])[lab]):
        m = fitted(labels, "cross_entropy")
        np.testing.assert_array_equal(m.predict(X, raw_score=True), ref)
        assert list(m.classes_) == sorted(set(labels.tolist()))
    z = fitted(lab + 1, "cross_entropy", learning_rate=1e-9).predict(X, raw_score=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p.mean(axis=0), np.bincount(lab) / len(lab), atol=1e-6)
    yb = 1 + (lab > 0)  # binary {1, 2}: the objective sees {0, 1}
    z = fitted(yb, "bce_logits", learning_rate=1e-9).predict(X, raw_score=True)
    np.testing.assert_allclose(1 / (1 + np.exp(-z)), np.mean(yb == 2), atol=1e-6)
    # LightGBM multiplies class_weight into the weights the objective sees: balanced classes start at 1/2
    z = fitted(yb, "bce_logits", learning_rate=1e-9, class_weight="balanced").predict(X, raw_score=True)
    np.testing.assert_allclose(z, 0.0, atol=1e-6)
    # a regressor keeps its labels
    r = sl.fit(lgb.LGBMRegressor(objective=sl.sklearn_objective("mse"), learning_rate=1e-9, **kw), X, lab + 1.0)
    assert r.predict(X).mean() == pytest.approx(np.mean(lab + 1.0), rel=1e-6)
