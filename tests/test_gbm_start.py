"""The start score's sums for a class axis: grouped by label (one row per class), equal to the sums over rows."""
import numpy as np
import pytest

from symloss.boosting import BoostLoss


@pytest.mark.parametrize("loss, params", [("cross_entropy", {"label_smoothing": 0.1}), ("focal", {}),
                                          ("poly1_cross_entropy", {})])
@pytest.mark.parametrize("weighted", [False, True])
def test_row_stats_by_class_equal_the_row_sums(loss, params, weighted):
    rng = np.random.default_rng(7)
    k, n = 5, 400
    y = rng.integers(0, k - 1, n).astype(np.float32)  # class k-1 absent: its weight is 0
    w = rng.uniform(0.1, 3.0, n) if weighted else None
    c = rng.normal(size=k)
    bl = BoostLoss(loss, **params)
    v, g, H, wsum = bl.stats(y, w, c)
    L, m, idx = bl.loss, np.tile(c, (n, 1)), y.astype(np.int64)
    kw = dict(sample_weight=w, **params)
    assert v == pytest.approx(float(L.value(idx, m, reduction="sum", **kw)), rel=1e-12)
    np.testing.assert_allclose(g, L.grad(idx, m, reduction="sum", **kw).sum(axis=0), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(H, L.hessian(idx, m, **kw).sum(axis=0), rtol=1e-11, atol=1e-12)
    assert wsum == pytest.approx(n if w is None else w.sum(), rel=1e-12)
    # and the start is the weighted class frequencies' log for cross-entropy without smoothing
    if loss == "cross_entropy":
        start = BoostLoss(loss).start(y, w, num_class=k - 1)
        freq = np.bincount(idx, weights=w, minlength=k - 1)
        np.testing.assert_allclose(np.exp(start) / np.exp(start).sum(), freq / freq.sum(), rtol=1e-8)
