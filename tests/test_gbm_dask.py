"""Dask: symloss objectives on a 2-worker LocalCluster (processes, loopback), the start score by a
distributed Newton over partitions, models equal to the single-machine ones."""
import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
pd = pytest.importorskip("pandas")
xgb = pytest.importorskip("xgboost")
xgb_dask = pytest.importorskip("xgboost.dask")
lgb = pytest.importorskip("lightgbm")

import symloss.lightgbm as sl  # noqa: E402
import symloss.xgboost as sx  # noqa: E402
from symloss.boosting import BoostLoss  # noqa: E402
from symloss.boosting import dask as sdask  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 5))
    y = 3.0 + 2 * X[:, 0] - X[:, 1] ** 2 + rng.normal(size=2000)
    w = rng.uniform(0.5, 2.0, size=2000)
    return X, y, w


def test_distributed_start_score_equals_the_local_one(client, data):
    X, y, w = data
    yd, wd = da.from_array(y, chunks=500), da.from_array(w, chunks=500)
    bl = BoostLoss("mse")
    assert sdask.base_margin(bl, yd, wd) == pytest.approx(bl.start(y, w), rel=1e-12)
    labels = (np.abs(X[:, 2]) * 2).astype(int) % 3
    ce = BoostLoss("cross_entropy")
    c_dist, c_local = sdask.base_margin(ce, da.from_array(labels, chunks=700)), ce.start(labels)
    # softmax margins are fixed up to a shift of every class: compare the probabilities
    np.testing.assert_allclose(np.exp(c_dist) / np.exp(c_dist).sum(), np.bincount(labels) / len(labels), rtol=1e-9)
    np.testing.assert_allclose(np.exp(c_local) / np.exp(c_local).sum(), np.bincount(labels) / len(labels), rtol=1e-9)
    yb = pd.Series((X[:, 3] > 0.3).astype(float))
    logit = BoostLoss("bce_logits")
    assert sdask.base_margin(logit, dd.from_pandas(yb, npartitions=3)) == pytest.approx(logit.start(yb.values),
                                                                                         rel=1e-12)


def test_xgboost_dask_equals_single_machine(client, data):
    X, y, w = data
    params = {"max_depth": 3, "eta": 0.3, "nthread": 1, "tree_method": "hist"}
    Xd, yd, wd = (da.from_array(a, chunks=(500,) + a.shape[1:]) for a in (X, y, w))
    # a per-sample Hessian policy ("exact" here); "fisher" scales by each worker's own partitions
    out = sx.dask_train(client, "log_cosh", params, Xd, yd, 10, sample_weight=wd)
    local = sx.train("log_cosh", params, xgb.DMatrix(X, label=y, weight=w), 10)
    d = xgb.DMatrix(X)
    np.testing.assert_allclose(out["booster"].predict(d), local.predict(d), rtol=0, atol=1e-5)


def test_xgboost_dask_renews_leaves_from_every_worker(client, data):
    """One round at learning rate 1: each leaf of the model trained on two workers is the weighted
    median of all its samples' residuals (each worker alone would find its own); the metric of an
    evaluation set spread unevenly over the workers is its loss over all of it."""
    X, y, w = data
    y = y + np.random.default_rng(4).standard_t(2, len(y)) * 3
    Xd, yd, wd = (da.from_array(a, chunks=(500,) + a.shape[1:]) for a in (X, y, w))
    params = {"max_depth": 3, "eta": 1.0, "nthread": 1, "tree_method": "hist"}
    # an evaluation set split 1990 / 10 over the workers: the metric is the weighted mean over all of it
    Xe, ye = (da.from_array(a, chunks=(1990,) + a.shape[1:]) for a in (X, y))
    out = sx.dask_train(client, "mae", params, Xd, yd, 1, sample_weight=wd,
                        evals=[(xgb_dask.DaskDMatrix(client, Xe, ye), "all")])
    booster = out["booster"]
    assert out["history"]["all"]["mae"][-1] == pytest.approx(
        np.mean(np.abs(booster.predict(xgb.DMatrix(X)) - y)), rel=1e-6)
    plain = sx.dask_train(client, "mae", params, Xd, yd, 1, sample_weight=wd, renew_leaves=False)["booster"]
    d = xgb.DMatrix(X)
    pred, leaf = booster.predict(d).astype(np.float64), booster.predict(d, pred_leaf=True).reshape(-1)
    assert len(np.unique(leaf)) > 2 and not np.allclose(pred, plain.predict(d))
    for k in np.unique(leaf):
        s = leaf == k
        c = pred[s][0]
        cost = lambda v: np.sum(w[s] * np.abs(y[s] - v))  # noqa: E731
        assert cost(c) <= min(cost(c - 1e-3), cost(c + 1e-3)) + 1e-6


def test_lightgbm_dask_dataframe_matches_the_single_machine_model(client, data):
    X, y, _ = data
    df = dd.from_pandas(pd.DataFrame(X, columns=[f"f{i}" for i in range(5)]), npartitions=4)
    ys = dd.from_pandas(pd.Series(y), npartitions=4)
    kw = dict(n_estimators=10, num_leaves=7, learning_rate=0.3, verbose=-1, min_child_samples=10,
              deterministic=True, force_row_wise=True)
    ours = sl.dask_fit(lgb.DaskLGBMRegressor(objective=sl.sklearn_objective("mse"), client=client,
                                             tree_learner="data", **kw), df, ys)
    p_dask = ours.to_local().predict(X)
    local = sl.fit(lgb.LGBMRegressor(objective=sl.sklearn_objective("mse"), n_jobs=1, **kw), X, y)
    p_local = local.predict(X)
    # distributed LightGBM bins features from each worker's rows (which worker gets which partition
    # varies), so trees differ slightly; the tolerance is on the fit and on the predictions' spread
    mse_dask, mse_local = np.mean((p_dask - y) ** 2), np.mean((p_local - y) ** 2)
    assert mse_dask <= 1.1 * mse_local
    assert np.sqrt(np.mean((p_dask - p_local) ** 2)) < 0.2 * np.std(y)
    # the start score is folded into the model: one round from it is near the mean already
    one = sl.dask_fit(lgb.DaskLGBMRegressor(objective=sl.sklearn_objective("mse"), client=client,
                                            tree_learner="data", **{**kw, "n_estimators": 1}), df, ys)
    assert abs(one.to_local().predict(X).mean() - y.mean()) < 0.05 * np.std(y)
