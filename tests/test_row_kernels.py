"""Every row kernel: finite differences, the Hessian's three forms, 50-digit mpmath, reductions,
float32 kept float32, NaN propagation, serial = parallel, extreme logits."""
import mpmath
import numpy as np
import pytest

import symloss
from symloss import catalog
from symloss.check.verify_row import (check_finite_differences, check_fused, check_reference,
                                      sample_class_inputs, sample_row_inputs)
from symloss.runtime import row_loss

ROW = [n for n in catalog.names() if symloss.load(n).spec.kind == "row"]


def assert_ok(results):
    bad = [str(r) for r in results if not r.ok]
    assert not bad, "\n".join(bad)


def test_the_catalog_has_the_row_losses():
    assert {"cross_entropy", "categorical_cross_entropy", "nll", "kl_divergence", "categorical_hinge", "focal",
            "poly1_cross_entropy", "dice", "tversky", "triplet", "contrastive", "cosine_embedding"} <= set(ROW)


@pytest.mark.parametrize("name", ROW)
def test_finite_differences_and_hessian_forms(name):
    assert_ok(check_finite_differences(symloss.load(name)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ROW)
def test_against_mpmath(name, dtype):
    assert_ok(check_reference(symloss.load(name), dtype))


@pytest.mark.parametrize("name", ROW)
def test_fused_reductions_and_class_indices_agree(name):
    assert_ok(check_fused(symloss.load(name)))


@pytest.mark.parametrize("name", ["cross_entropy", "triplet", "focal"])
def test_float32_stays_float32(name):
    L = symloss.load(name)
    cols = [c.astype(np.float32) for c in sample_row_inputs(L, 4, 3)]
    v, g = L.value_and_grad(*cols)
    assert v.dtype == np.float32 and all(a.dtype == np.float32 for a in (g if isinstance(g, tuple) else (g,)))
    hd = L.hessian_diag(*cols)
    assert all(a.dtype == np.float32 for a in (hd if isinstance(hd, tuple) else (hd,)))
    import numba

    for sig in L.module.value_and_grad.nopython_signatures:
        if sig.args[-1].instance_type == numba.float32:
            assert str(sig.return_type) == "float64"  # the row total accumulates in float64
    # every step function called with float32 returns float32
    for fname in dir(L.module):
        fn = getattr(L.module, fname)
        if fname.startswith("value_and_grad_s") and hasattr(fn, "nopython_signatures"):
            for sig in fn.nopython_signatures:
                if sig.args[-1].instance_type == numba.float32:
                    rt = sig.return_type
                    assert all(str(t) == "float32" for t in (rt if hasattr(rt, "__iter__") else (rt,))), (fname, rt)


@pytest.mark.parametrize("name", ["cross_entropy", "dice", "triplet", "categorical_hinge", "contrastive"])
def test_nan_in_a_row_stays_in_that_row(name):
    L = symloss.load(name)
    cols = sample_row_inputs(L, 5, 4, seed=9)
    k = [i.name for i in L.spec_inputs].index(L.predictions[0])
    cols[k][2, 1] = np.nan
    per = L.value(*cols, reduction="none")
    assert np.isnan(per[2]) and np.isfinite(np.delete(per, 2)).all()
    g = L.grad(*cols, reduction="none")
    g = g[0] if isinstance(g, tuple) else g
    assert np.isnan(g[2]).any() and np.isfinite(np.delete(g, 2, axis=0)).all()
    assert np.isnan(L.value(*cols))


@pytest.mark.parametrize("name", ["cross_entropy", "triplet"])
def test_parallel_kernels_equal_serial(name, monkeypatch):
    L = symloss.load(name)
    cols = sample_row_inputs(L, 300, 7, seed=5)
    w = np.linspace(0.5, 1.5, 300)

    def run():
        v = L.value(*cols, sample_weight=w)
        _, g = L.value_and_grad(*cols)
        g = g[0] if isinstance(g, tuple) else g
        hd = L.hessian_diag(*cols)
        hd = hd[0] if isinstance(hd, tuple) else hd
        return v, g, hd, L.value(*cols, reduction="none")

    serial = run()
    monkeypatch.setattr(row_loss, "PARALLEL_THRESHOLD", 1)
    for a, b in zip(serial, run()):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)


def mp_cross_entropy(z, t, smoothing=0.0):
    """Value and gradient of cross-entropy with class index t, 50 digits."""
    with mpmath.workdps(50):
        zs = [mpmath.mpf(float(x)) for x in z]
        k = len(zs)
        lse = mpmath.log(mpmath.fsum(mpmath.exp(x) for x in zs))
        y = [(1 - smoothing) * (j == t) + mpmath.mpf(smoothing) / k for j in range(k)]
        value = mpmath.fsum(yj * (lse - x) for yj, x in zip(y, zs))
        grad = [mpmath.exp(x - lse) - yj for yj, x in zip(y, zs)]
        return float(value), np.array([float(g) for g in grad])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale", [1.0, 1e2, 1e3, 1e4, 1e5])
def test_cross_entropy_at_extreme_logits(dtype, scale):
    L = symloss.load("cross_entropy")
    rng = np.random.default_rng(int(scale))
    z = (rng.normal(size=(6, 7)) * scale).astype(dtype)
    z[0, 3] = z[0].max() + 1e-3 * scale  # one confident row
    z[1, :] = z[1, 0]  # a row of ties
    t = rng.integers(0, 7, 6)
    t[0] = 3
    for smoothing in (0.0, 0.1):
        v, g = L.value_and_grad(t, z, reduction="none", label_smoothing=smoothing)
        assert np.isfinite(v).all() and np.isfinite(g).all()
        eps = np.finfo(dtype).eps
        for r in range(6):
            want_v, want_g = mp_cross_entropy(z[r], t[r], smoothing)
            # log-sum-exp minus a logit: O(|z|) terms cancel, so the error is relative to |z|
            atol = 8 * eps * max(1.0, float(np.abs(z[r]).max()))
            assert abs(v[r] - want_v) <= 8 * eps * abs(want_v) + atol, (r, v[r], want_v)
            np.testing.assert_allclose(g[r], want_g, rtol=16 * eps, atol=8 * eps)
    hd = L.hessian_diag(t, z)
    assert np.isfinite(hd).all() and (hd >= 0).all()


def test_class_inputs_default_and_given():
    L = symloss.load("cross_entropy")
    cols = sample_row_inputs(L, 4, 3)
    cls = sample_class_inputs(L, 3)
    ones = L.value(*cols, weight=np.ones(3), reduction="none")
    np.testing.assert_allclose(L.value(*cols, reduction="none"), ones)
    assert not np.allclose(L.value(*cols, reduction="none", **cls), ones)


FROM_EXPR = {
    "abs_sum": ("Sum(abs(yhat[k] - y[k]), k)", {}),
    "norm": ("sqrt(Sum((yhat[k] - y[k])**2, k))", {}),
    "tempered_lse": ("tau * log(Sum(exp(yhat[k] / tau), k)) - Sum(y[k] * yhat[k], k)",
                     {"tau": {"default": 0.5, "positive": True}}),
    "max_margin": ("Max(yhat[k], k) - Sum(y[k] * yhat[k], k)", {}),
    "squared_sum": ("Sum(yhat[k], k)**2", {}),
    "relu_squares": ("Sum(Piecewise((yhat[k]**2, yhat[k] > 0), (0, True)), k)", {}),
    "centered": ("Sum((yhat[k] - Max(yhat[k], k))**2, k)", {}),
    "weighted_lse": ("log(Sum(y[k] * exp(yhat[k]), k)) + Sum(exp(yhat[k]), k) / K", {}),
}


@pytest.mark.parametrize("name", sorted(FROM_EXPR))
def test_expressions_through_from_expr_pass_every_check(name):
    from symloss.check.verify_row import check_row_loss

    expr, params = FROM_EXPR[name]
    L = symloss.Loss.from_expr(expr, name=name, kind="row", params=params,
                               inputs={"y": {"role": "target", "domain": "simplex"}, "yhat": "prediction"})
    assert_ok(check_row_loss(L))


def _tuple(x):
    return x if isinstance(x, tuple) else (x,)


def _close(got, want):
    eps = np.finfo(want.dtype).eps
    np.testing.assert_allclose(got, want, rtol=16 * eps, atol=16 * eps * float(np.abs(want).max(initial=0.0)))


@pytest.mark.parametrize("name", ROW)
def test_grad_hessian_diag_is_grad_and_hessian_diag_in_one_pass(name, monkeypatch):
    """The fused kernel shares one softmax per row; its numbers are those of the two kernels (to rounding:
    the fused expressions share other common subexpressions, so a few ulp of the output's scale),
    weighted, in float32 and float64, serial and parallel, and with class indices where the loss takes them.

    Each row-kernel signature (dtype, weights or not, indices or not, prange or not) is a separate cold
    Numba compile in CI, of three kernels here: every case runs in float64, float32 on the unweighted
    case (the dtype changes the rendered body's constants, not its logic), and the prange loop (the same
    rendered body) on cross_entropy only."""
    L = symloss.load(name)
    cols = sample_row_inputs(L, 9, 5, seed=3)
    cls = sample_class_inputs(L, 5)
    w = np.linspace(0.5, 2.0, 9)
    cases = [(cols, {}), (cols, dict(sample_weight=w, **cls))]
    if any(i.indices for i in L.spec_inputs):
        k = [i.indices for i in L.spec_inputs].index(True)
        t = np.random.default_rng(4).integers(0, 5, 9)
        t[2] = -100  # ignored: gradient and diagonal 0
        cases.append(([t if j == k else c for j, c in enumerate(cols)], dict(sample_weight=w)))
    g, h = L.grad_hessian_diag(*cols, reduction="mean")  # reductions scale both, as grad's would
    _close(_tuple(g)[0], _tuple(L.grad(*cols, reduction="mean"))[0])
    _close(_tuple(h)[0], _tuple(L.hessian_diag(*cols, reduction="mean"))[0])
    runs = [(arrays, kw, np.float64, False) for arrays, kw in cases] + [(*cases[0], np.float32, False)]
    if name == "cross_entropy":
        runs.append((*cases[-1], np.float64, True))
    for arrays, kw, dtype, parallel in runs:
        if parallel:
            monkeypatch.setattr(row_loss, "PARALLEL_THRESHOLD", 1)
        arrs = [a if a.dtype.kind in "iu" else a.astype(dtype) for a in arrays]
        g, h = L.grad_hessian_diag(*arrs, **kw)
        want = _tuple(L.grad(*arrs, reduction="none", **kw)) + _tuple(L.hessian_diag(*arrs, **kw))
        for got, ref in zip(_tuple(g) + _tuple(h), want):
            assert got.dtype == dtype and got.shape == ref.shape
            _close(got, ref)


def test_grad_hessian_diag_writes_given_buffers_and_refuses_shared_ones():
    L = symloss.load("cross_entropy")
    t, z = np.array([0, 2, 1]), np.random.default_rng(1).normal(size=(3, 4))
    g, h = np.empty((3, 4)), np.empty((3, 4))
    rg, rh = L.grad_hessian_diag(t, z, out=(g, h))
    assert rg is g and rh is h
    _close(g, L.grad(t, z, reduction="none"))
    _close(h, L.hessian_diag(t, z))
    with pytest.raises(symloss.InputError, match="share memory"):
        L.grad_hessian_diag(t, z, out=(g, g))
    with pytest.raises(symloss.InputError, match="pair"):
        L.grad_hessian_diag(t, z, out=g)


ONE_PREDICTION = [n for n in ROW if len(symloss.load(n).predictions) == 1]


@pytest.mark.parametrize("name", ONE_PREDICTION)
def test_class_major_kernel_equals_the_row_kernel(name):
    """grad_hessian_diag over class-major arrays (LightGBM's layout, float32 or float64 outputs
    written in place) gives the row kernel's numbers: weighted, with class inputs, floored.
    One signature per loss (each is a cold compile in CI); cross_entropy's extra cases below."""
    L = symloss.load(name)
    cols = sample_row_inputs(L, 9, 5, seed=5)
    kw = dict(sample_weight=np.linspace(0.5, 2.0, 9), **sample_class_inputs(L, 5))
    g, h = L.grad_hessian_diag(*cols, **kw)
    out = (np.empty((9, 5), order="F"), np.empty((9, 5), order="F"))
    floor = 1e-3
    got = L.grad_hessian_diag_class_major(*(np.asfortranarray(c) for c in cols), out=out, hessian_floor=floor, **kw)
    assert got is out
    _close(out[0], g)
    _close(out[1], np.maximum(h, floor * kw["sample_weight"][:, None]))


def test_class_major_cross_entropy_layouts_indices_nan_and_errors(monkeypatch):
    L = symloss.load("cross_entropy")
    rng = np.random.default_rng(6)
    z = rng.normal(scale=4, size=(40, 6))
    z[3, 2] = np.nan  # stays in its row, no crash
    t = rng.integers(0, 6, 40)
    t[5] = -100  # ignored: gradient 0, Hessian at the floor
    g, h = L.grad_hessian_diag(t, z)
    for parallel in (False, True):
        if parallel:
            monkeypatch.setattr(row_loss, "PARALLEL_THRESHOLD", 1)
        for dtype in (np.float64, np.float32):
            out = (np.zeros((40, 6), dtype, order="F"), np.zeros((40, 6), dtype, order="F"))
            L.grad_hessian_diag_class_major(t, z, out=out, hessian_floor=1e-16)  # a C array: copied to K x N
            ok = np.ones(40, bool)
            ok[3] = False
            np.testing.assert_array_equal(np.isnan(out[0]).any(axis=1), ~ok)
            np.testing.assert_allclose(out[0][ok], g[ok].astype(dtype), rtol=4 * np.finfo(dtype).eps, atol=1e-15)
            np.testing.assert_allclose(out[1][ok], np.maximum(h[ok], 1e-16).astype(dtype),
                                       rtol=4 * np.finfo(dtype).eps, atol=1e-15)
            assert (out[0][5] == 0).all() and (out[1][5] == dtype(1e-16)).all()
    F = (np.empty((40, 6), order="F"), np.empty((40, 6), order="F"))
    with pytest.raises(symloss.InputError, match="F-contiguous"):
        L.grad_hessian_diag_class_major(t, z, out=(np.empty((40, 6)), F[1]))
    with pytest.raises(symloss.InputError, match="share memory"):
        L.grad_hessian_diag_class_major(t, z, out=(F[0], F[0]))
    zf = np.asfortranarray(z)
    with pytest.raises(symloss.InputError, match="shares memory with an input"):
        L.grad_hessian_diag_class_major(t, zf, out=(zf, F[1]))
    with pytest.raises(symloss.InputError, match="one prediction"):
        symloss.load("triplet").grad_hessian_diag_class_major(*sample_row_inputs(symloss.load("triplet"), 4, 3),
                                                                out=F)


def test_class_major_without_a_floor_keeps_negative_weights_exact():
    """No floor (the default, -inf) is no floor whatever the weight's sign (-inf * -w is +inf)."""
    L = symloss.load("cross_entropy")
    rng = np.random.default_rng(8)
    z, t = rng.normal(size=(4, 3)), np.array([0, 2, 1, 1])
    w = np.array([1.0, -1.0, 0.0, 2.0])
    out = (np.empty((4, 3), order="F"), np.empty((4, 3), order="F"))
    L.grad_hessian_diag_class_major(t, z, out=out, sample_weight=w)
    g, h = L.grad_hessian_diag(t, z, sample_weight=w)
    _close(out[0], g)
    _close(out[1], h)
