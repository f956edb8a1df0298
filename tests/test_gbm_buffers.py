"""The boosting libraries' fast path, grad_hess(reuse=True, layout=...): the same numbers as the plain call
(softmax formulas checked directly), kept buffers and kept checked labels that never go stale."""
import threading

import numpy as np
import pytest

import symloss
from symloss.boosting import BoostLoss

K = 4


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(0)
    n = 300  # rows x classes above the layout's compiled-copy threshold only in the large test
    return rng.integers(0, K, n).astype(np.float32), rng.normal(scale=3, size=(n, K)), rng.uniform(0.2, 2, n)


@pytest.mark.parametrize("policy", ["clip", "exact", "upper_bound", "constant", "fisher"])
def test_row_policies_match_the_softmax_formulas(rows, policy):
    y, z, w = rows
    p = softmax(z)
    onehot = np.eye(K)[y.astype(int)]
    g, h = BoostLoss("cross_entropy", hessian=policy).grad_hess(y, z, w)
    want_g = w[:, None] * (p - onehot)
    want_h = {"clip": np.maximum(w[:, None] * p * (1 - p), 1e-16 * w[:, None]),
              "exact": w[:, None] * p * (1 - p),
              "upper_bound": np.maximum(2 * w[:, None] * p * (1 - p), 1e-16 * w[:, None]),  # XGBoost's softprob
              "constant": np.broadcast_to(w[:, None], z.shape)}.get(policy)
    if policy == "fisher":  # g / kappa, max(h / kappa, w), kappa = E_w[g0^2] / E_w[L]
        values = -np.log(p[np.arange(len(y)), y.astype(int)])
        kappa = np.sum(want_g ** 2 / w[:, None]) / np.sum(w * values)
        want_g, want_h = want_g / kappa, np.maximum(w[:, None] * p * (1 - p) / kappa, w[:, None])
    np.testing.assert_allclose(g, want_g, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(h, want_h, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("policy", ["clip", "exact", "upper_bound", "constant", "fisher"])
@pytest.mark.parametrize("n", [300, 20000])  # 20000 x 4: the compiled class-major copy, parallel kernels
@pytest.mark.parametrize("weighted", [True, False])
def test_reuse_and_lightgbm_layout_equal_the_plain_call(policy, n, weighted):
    """LightGBM's layout: "clip" and "exact" run the class-major kernel (its class sums run in
    another order than the row kernel's: equal to float32 rounding, and within a few float64
    ulps of the weight where p - 1 cancels); the other policies copy the row kernel's results."""
    rng = np.random.default_rng(n)
    y = rng.integers(0, K, n).astype(np.float32)
    w = rng.uniform(0.2, 2, n).astype(np.float32) if weighted else None
    z = rng.normal(size=(n, K))
    z[::3] *= 60.0  # confident rows: Hessian entries below the 1e-16 floor
    z_f = np.asfortranarray(z)  # LightGBM's class-major margins
    bl = BoostLoss("cross_entropy", hessian=policy)
    g0, h0 = bl.grad_hess(y, z_f, w)
    g1, h1 = bl.grad_hess(y, z_f, w, reuse=True)
    np.testing.assert_array_equal(g1, g0)
    np.testing.assert_array_equal(h1, h0)
    g2, h2 = bl.grad_hess(y, z_f, w, reuse=True, layout="lightgbm")
    assert g2.dtype == h2.dtype == np.float32 and g2.flags.f_contiguous and g2.shape == (n, K)
    if policy in ("clip", "exact"):
        ulps = 8 * np.finfo(float).eps * (1.0 if w is None else w[:, None])
        np.testing.assert_array_less(np.abs(g2 - g0), 6e-8 * np.abs(g0) + ulps)
        np.testing.assert_array_less(np.abs(h2 - h0), 6e-8 * np.abs(h0) + ulps)
        if policy == "clip":
            floor = 1e-16 * (1.0 if w is None else w[:, None].astype(float))  # in float64, then stored
            assert (h2 >= floor.astype(np.float32) if w is not None else h2 >= np.float32(floor)).all()
    else:
        np.testing.assert_array_equal(g2, g0.astype(np.float32))
        np.testing.assert_array_equal(h2, h0.astype(np.float32))
    if policy == "clip":  # the floor was applied somewhere
        assert np.isclose(h0, 1e-16 * (1.0 if w is None else w[:, None]), rtol=1e-6, atol=0).any()
    # LightGBM's own flattening of it is a view, already float32
    assert np.shares_memory(g2.ravel(order="F"), g2)


def test_kept_buffers_are_reused_and_per_thread(rows):
    import numba

    y, z, _ = rows
    bl = BoostLoss("cross_entropy")
    before = numba.get_num_threads()
    g1, _ = bl.grad_hess(y, z, reuse=True)
    assert numba.get_num_threads() == before  # the call runs on one thread and restores the setting
    g2, _ = bl.grad_hess(y, z + 1.0, reuse=True)
    assert g1 is g2  # the buffer; the plain call returns new arrays
    assert bl.grad_hess(y, z)[0] is not bl.grad_hess(y, z)[0]
    other = {}
    t = threading.Thread(target=lambda: other.setdefault("g", bl.grad_hess(y, z, reuse=True)[0]))
    t.start()
    t.join()
    assert not np.shares_memory(other["g"], g2)
    np.testing.assert_array_equal(other["g"], bl.grad_hess(y, z)[0])


@pytest.mark.parametrize("loss", ["cross_entropy", "poisson_nll"])
def test_kept_labels_and_weights_follow_changes(loss):
    rng = np.random.default_rng(5)
    n = 200
    if loss == "cross_entropy":
        y = rng.integers(0, K, n).astype(np.float32)
        z = rng.normal(size=(n, K))
    else:
        y = rng.poisson(2.0, n).astype(np.float32)
        z = rng.normal(size=n)
    w = rng.uniform(0.5, 1.5, n)
    bl = BoostLoss(loss)

    def check():
        g, h = bl.grad_hess(y, z, w, reuse=True)
        g0, h0 = bl.grad_hess(y, z, w)
        np.testing.assert_array_equal(g, g0)
        np.testing.assert_array_equal(h, h0)

    check()
    y[:10] = y[10:20]  # the same array object, changed in place (LightGBM hands the same one each round)
    w[5] = 3.0
    check()
    y = y.copy()  # a new object with equal values (XGBoost copies labels out each round)
    y[-1] = 0
    check()
    y[0] = 7 if loss == "cross_entropy" else -1  # now invalid: checked again, not served from the kept copy
    with pytest.raises(symloss.InputError, match=loss):
        bl.grad_hess(y, z, w, reuse=True)


def test_elementwise_reuse_keeps_the_margin_dtype():
    rng = np.random.default_rng(6)
    y, m, w = rng.normal(size=64), rng.normal(size=64).astype(np.float32), rng.uniform(size=64)
    bl = BoostLoss("huber", delta=0.5, hessian="exact")
    for _ in range(2):
        g, h = bl.grad_hess(y, m, w, reuse=True)
        assert g.dtype == h.dtype == np.float32
        r = m - y.astype(np.float32)
        np.testing.assert_allclose(g, w * np.clip(r, -0.5, 0.5), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(h, w * (np.abs(r) <= 0.5), rtol=1e-6)
        w = w * 2


def test_lightgbm_reads_the_class_major_float32_gradients_as_the_plain_ones():
    lgb = pytest.importorskip("lightgbm")
    import symloss.lightgbm as sl
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)  # 1797 x 10 classes: the compiled copy runs
    params = {"num_class": 10, "num_leaves": 7, "learning_rate": 0.3, "num_threads": 1, "verbose": -1,
              "deterministic": True, "force_row_wise": True, "metric": "None"}
    bl = BoostLoss("cross_entropy")

    def plain(preds, data):  # new C-ordered float64 arrays: LightGBM flattens and converts them itself
        return bl.grad_hess(data.get_label(), preds)

    ref = lgb.train({**params, "objective": plain}, lgb.Dataset(X, y), 8)
    ours = lgb.train({**params, "objective": sl.objective(bl)}, lgb.Dataset(X, y), 8)
    np.testing.assert_array_equal(ours.predict(X, raw_score=True), ref.predict(X, raw_score=True))
    assert np.mean(ours.predict(X).argmax(1) == y) > 0.9
