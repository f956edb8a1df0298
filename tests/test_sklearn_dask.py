"""Dask: estimators and loss methods on a real 2-worker LocalCluster equal their in-memory results."""
import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import symloss  # noqa: E402
from symloss import dask_arrays as sd  # noqa: E402
from symloss.sklearn import LossClassifier, LossRegressor  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=":0", silence_logs=40)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n, p = 600, 4
    X = rng.normal(size=(n, p)) * 0.5
    w = rng.uniform(0.5, 2.0, n)
    counts = rng.poisson(np.exp(X @ [0.5, -0.3, 0.2, 0.1] + 0.5)).astype(float)
    labels = (X @ [1.0, -1.0, 0.5, 0.0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    return X, w, counts, labels


def test_dask_fit_equals_in_memory(client, data):
    X, w, counts, labels = data
    dX, dw = da.from_array(X, chunks=(150, 2)), da.from_array(w, chunks=200)
    dy = da.from_array(counts, chunks=200)
    mem = LossRegressor("poisson_nll", alpha=0.01, tol=1e-10).fit(X, counts, sample_weight=w)
    dist = LossRegressor("poisson_nll", alpha=0.01, tol=1e-10).fit(dX, dy, sample_weight=dw)
    assert dist.solver_ == "newton"
    np.testing.assert_allclose(dist.coef_, mem.coef_, rtol=1e-9)
    assert dist.intercept_ == pytest.approx(mem.intercept_, rel=1e-9)
    np.testing.assert_allclose(dist.predict(dX).compute(), mem.predict(X), rtol=1e-9)
    # a from_expr loss travels to the workers as its spec
    L = symloss.Loss.from_expr("log(1 + (yhat - y)**2)", name="cauchy_dask")
    y = X @ [1.0, 2.0, 0.0, -1.0] + 0.2 * np.sin(np.arange(len(X)))
    mem = LossRegressor(L, tol=1e-10).fit(X, y)
    dist = LossRegressor(L, tol=1e-10).fit(dX, da.from_array(y, chunks=300))
    np.testing.assert_allclose(dist.coef_, mem.coef_, rtol=1e-9)
    clf_mem = LossClassifier(alpha=0.01, tol=1e-10).fit(X, labels)
    clf = LossClassifier(alpha=0.01, tol=1e-10).fit(dX, da.from_array(labels, chunks=150))
    np.testing.assert_allclose(clf.coef_, clf_mem.coef_, rtol=1e-9)
    assert (clf.predict(dX) == clf_mem.predict(X)).all()


def test_dask_loss_methods(client, data):
    X, w, counts, labels = data
    rng = np.random.default_rng(1)
    y, z = rng.normal(size=(2, 600))
    dy, dz, dw = da.from_array(y, chunks=170), da.from_array(z, chunks=250), da.from_array(w, chunks=100)
    H = symloss.load("huber")
    for red in ("mean", "sum"):
        v = sd.value(H, dy, dz, reduction=red, sample_weight=dw, delta=0.7)
        assert float(v.compute()) == pytest.approx(H.value(y, z, reduction=red, sample_weight=w, delta=0.7), rel=1e-12)
        np.testing.assert_allclose(sd.grad(H, dy, dz, reduction=red, sample_weight=dw, delta=0.7).compute(),
                                   H.grad(y, z, reduction=red, sample_weight=w, delta=0.7), rtol=1e-12)
    np.testing.assert_allclose(sd.hessian("poisson_nll", da.from_array(counts, chunks=90), dz,
                                          reduction="mean").compute(),
                               symloss.load("poisson_nll").hessian(counts, z, reduction="mean"), rtol=1e-12)
    CE = symloss.load("cross_entropy")
    logits = rng.normal(size=(600, 3))
    idx = labels.copy()
    idx[::7] = -100  # ignored rows leave the mean, as in the numpy API
    cw = np.array([1.0, 2.0, 0.5])
    dl, di = da.from_array(logits, chunks=(130, 2)), da.from_array(idx, chunks=200)
    v, g = sd.value_and_grad(CE, di, dl, sample_weight=dw, weight=cw, label_smoothing=0.1)
    ref_v, ref_g = CE.value_and_grad(idx, logits, sample_weight=w, weight=cw, label_smoothing=0.1)
    assert float(v.compute()) == pytest.approx(ref_v, rel=1e-12)
    np.testing.assert_allclose(g.compute(), ref_g, rtol=1e-12, atol=1e-18)


def test_dispatch_routes_dask_inputs_only(client):
    """The decorator the Loss methods take for Dask support: dask in, lazy dask out; numpy unchanged."""
    L = symloss.load("poisson_nll")
    grad = sd.dispatch(type(L).grad)
    y, z = np.arange(6.0), np.linspace(-1, 1, 6)
    lazy = grad(L, da.from_array(y, chunks=4), z, sample_weight=np.arange(1.0, 7.0))
    assert sd.is_dask(lazy) and not sd.is_dask(grad(L, y, z))
    np.testing.assert_allclose(lazy.compute(), L.grad(y, z, sample_weight=np.arange(1.0, 7.0)), rtol=1e-14)
