"""Arrays as people pass them: broadcasting, views, dtypes, 0-d and empty arrays, out=,
bad dtypes, class-index widths, and loop indices past 2^31.

Uses catalog losses whose kernels generated/ already holds (Numba's disk cache)."""
import warnings

import numpy as np
import pytest

import symloss
from symloss import InputError

RNG = np.random.default_rng(7)
YHAT = RNG.normal(size=(4, 3))
Y = RNG.normal(size=(4, 3))


def huber_ref(y, yhat, delta=1.0):
    r = yhat - y
    a = np.abs(r)
    per = np.where(a <= delta, r * r / 2, delta * (a - delta / 2))
    d = np.where(a <= delta, r, delta * np.sign(r))
    return per, d


def ce_ref(t, z):
    """Per-row softmax cross-entropy with class indices, and its per-row gradient."""
    m = z.max(axis=-1, keepdims=True)
    lse = m[..., 0] + np.log(np.exp(z - m).sum(axis=-1))
    p = np.exp(z - lse[..., None])
    onehot = np.eye(z.shape[-1])[t]
    return lse - (onehot * z).sum(-1), p - onehot


@pytest.fixture(scope="module")
def huber():
    return symloss.load("huber")


@pytest.fixture(scope="module")
def mse():
    return symloss.load("mse")


@pytest.fixture(scope="module")
def ce():
    return symloss.load("cross_entropy")


# --- broadcasting ---------------------------------------------------------------------------
@pytest.mark.parametrize("y", [0.3, np.float32(0.3), np.array(0.3), Y[0], Y[:, :1], [0.1, -0.2, 0.3]],
                         ids=["float", "np-scalar", "0-d", "row", "column", "list"])
def test_targets_broadcast_to_the_predictions(huber, y):
    yb = np.broadcast_to(np.asarray(y, dtype=float), YHAT.shape)
    per, d = huber_ref(yb, YHAT, 0.5)
    v, g = huber.value_and_grad(y, YHAT, delta=0.5)
    assert g.shape == YHAT.shape
    np.testing.assert_allclose(v, per.mean(), rtol=1e-13)
    np.testing.assert_allclose(g, d / YHAT.size, rtol=1e-13)
    np.testing.assert_allclose(huber.hessian(y, YHAT, delta=0.5), (np.abs(YHAT - yb) <= 0.5) * 1.0)


def test_weights_broadcast_too(huber):
    per, d = huber_ref(Y, YHAT)
    w_col = np.array([[1.0], [2.0], [0.5], [3.0]])
    w = np.broadcast_to(w_col, YHAT.shape)
    np.testing.assert_allclose(huber.value(Y, YHAT, sample_weight=w_col), np.average(per, weights=w), rtol=1e-13)
    np.testing.assert_allclose(huber.grad(Y, YHAT, sample_weight=w_col, reduction="sum"), w * d, rtol=1e-13)
    # a scalar weight scales sums and cancels in the mean
    assert huber.value(Y, YHAT, sample_weight=2, reduction="sum") == pytest.approx(2 * per.sum(), rel=1e-13)
    assert huber.value(Y, YHAT, sample_weight=2) == pytest.approx(per.mean(), rel=1e-13)


@pytest.mark.parametrize("y_shape, yhat_shape", [((5, 1), (5,)), ((5,), (5, 1))])
def test_column_against_flat_is_refused_with_a_reshape_hint(mse, y_shape, yhat_shape):
    # numpy would broadcast these to (5, 5): 25 differences instead of 5, the classic silent bug
    y, yhat = np.zeros(y_shape), np.ones(yhat_shape)
    with pytest.raises(InputError, match="reshape") as err:
        mse.value(y, yhat)
    assert f"'y' has shape {y_shape}" in str(err.value) and str(yhat_shape) in str(err.value)
    with pytest.raises(InputError, match=r"sample_weight has shape \(5, 1\)"):
        mse.value(np.zeros(5), np.ones(5), sample_weight=np.ones((5, 1)))


def test_mismatched_lengths_name_both_shapes(mse):
    with pytest.raises(InputError, match=r"mse: 'y' has shape \(3,\), which does not broadcast to .* \(4,\)$"):
        mse.grad(np.zeros(3), np.zeros(4))
    # predictions never broadcast up to the targets: the gradient has the predictions' shape
    with pytest.raises(InputError, match=r"'y' has shape \(1, 4, 3\).*\(4, 3\)"):
        mse.grad(Y[None], YHAT)
    with pytest.raises(InputError, match=r"'y' has shape \(4,\).*\(\)"):
        mse.grad(np.zeros(4), 1.0)


# --- views, read-only arrays, dtypes ---------------------------------------------------------
def test_views_and_read_only_inputs_match_contiguous_copies(huber):
    base_y, base_yhat = RNG.normal(size=(6, 8)), RNG.normal(size=(6, 8))
    y, yhat = base_y.T[::-1, ::2], base_yhat.T[::-1, ::2]  # transposed, negative and step-2 strides
    assert not yhat.flags.c_contiguous and yhat.strides[0] < 0
    ro_y, ro_yhat = np.ascontiguousarray(y), np.ascontiguousarray(yhat)
    ro_y.flags.writeable = ro_yhat.flags.writeable = False
    want_v, want_g = huber.value_and_grad(np.ascontiguousarray(y), np.ascontiguousarray(yhat))
    kernel = huber.module.value_and_grad
    compiled = len(kernel.signatures)
    for args in [(y, yhat), (ro_y, ro_yhat), (y.tolist(), ro_yhat)]:
        v, g = huber.value_and_grad(*args)
        assert v == want_v and np.array_equal(g, want_g) and g.flags.c_contiguous
    # views and read-only arrays reach the kernels as the same writeable C arrays: no new compile
    assert len(kernel.signatures) == compiled


def test_integer_and_boolean_inputs(mse):
    y_bool = np.array([True, False, True])
    g = mse.grad(y_bool, np.array([0.5, 0.5, 0.5], dtype=np.float32), reduction="sum")
    assert g.dtype == np.float32 and g.tolist() == [-1.0, 1.0, -1.0]
    g = mse.grad(np.array([1, 2, 3], dtype=np.int8), np.array([2, 2, 2], dtype=np.uint16), reduction="none")
    assert g.dtype == np.float64 and g.tolist() == [2.0, 0.0, -2.0]
    assert mse.value([0, 0], [True, False], reduction="sum") == 1.0


def test_float16_runs_in_float32_and_returns_float16(huber):
    y16, yhat16 = Y.astype(np.float16), YHAT.astype(np.float16)
    v, g = huber.value_and_grad(y16, yhat16, reduction="sum")
    v32, g32 = huber.value_and_grad(y16.astype(np.float32), yhat16.astype(np.float32), reduction="sum")
    assert v.dtype == np.float16 and g.dtype == np.float16 and g.shape == YHAT.shape
    assert v == np.float16(v32) and np.array_equal(g, g32.astype(np.float16))
    h = huber.hessian(y16, yhat16)
    assert h.dtype == np.float16
    out = np.empty(YHAT.shape, np.float16)
    assert huber.grad(y16, yhat16, out=out) is out and np.array_equal(out, huber.grad(y16, yhat16))
    with pytest.raises(InputError, match="dtype float16"):
        huber.grad(y16, yhat16, out=np.empty(YHAT.shape, np.float32))


@pytest.mark.parametrize(
    "bad, needle",
    [
        (np.array([1 + 2j, 3]), "'y' must hold real numbers, got complex dtype complex128"),
        (np.array([1.0, None]), "'y' must be numeric .* got dtype object"),
        (["0.5", "1.5"], "'y' must be numeric .* got dtype <U3"),
        (np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]"), "'y' must be numeric .* datetime64"),
        ([[1.0], [1.0, 2.0]], "'y' is not an array of numbers"),
    ],
    ids=["complex", "object", "str", "datetime", "ragged"],
)
def test_unusable_dtypes_are_clear_errors(mse, bad, needle):
    with pytest.raises(InputError, match="mse: " + needle):
        mse.value(bad, np.zeros(2))
    with pytest.raises(InputError, match="mse: 'sample_weight' (must|is not)"):
        mse.value(np.zeros(2), np.zeros(2), sample_weight=bad)


def test_parameters_as_0d_arrays(huber):
    assert huber.value(Y, YHAT, delta=np.array(0.5)) == huber.value(Y, YHAT, delta=0.5)
    with pytest.raises(InputError, match="parameter 'delta' must be a number"):
        huber.value(Y, YHAT, delta=np.array([0.5]))


# --- 0-d and empty ----------------------------------------------------------------------------
def test_scalars_and_0d_arrays(mse):
    g = mse.grad(1.0, 3.0)
    assert isinstance(g, np.ndarray) and g.shape == () and g == 4.0
    v = mse.value(np.array(1.0), np.array(3.0), reduction="none")
    assert v.shape == () and v == 4.0
    assert mse.value(1, 3) == 4.0
    g, h = mse.grad_hessian(np.array(1.0), np.array(3.0))
    assert g.shape == h.shape == () and (g, h) == (4.0, 2.0)


def test_empty_arrays_give_nan_mean_and_empty_gradients_without_warnings(mse, ce):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e = np.empty((0, 3))
        assert np.isnan(mse.value(e, e)) and mse.value(e, e, reduction="sum") == 0.0
        assert mse.value(e, e, reduction="none").shape == (0, 3)
        v, g = mse.value_and_grad(e, e)
        assert np.isnan(v) and g.shape == (0, 3)
        assert np.isnan(mse.value(e, e, sample_weight=e))
        assert mse.grad_hessian([], [])[1].shape == (0,)
        assert np.isnan(ce.value(np.empty(0, dtype=int), np.empty((0, 4))))
        v, g = ce.value_and_grad(np.empty((0, 4)), np.empty((0, 4)), reduction="none")
        assert v.shape == (0,) and g.shape == (0, 4)


# --- out= ---------------------------------------------------------------------------------------
def test_out_may_be_an_input_exactly_but_not_overlap_it(mse):
    y = RNG.normal(size=6)
    yhat = RNG.normal(size=6)
    want = 2 * (yhat - y)
    buf = yhat.copy()
    assert mse.grad(y, buf, reduction="sum", out=buf) is buf  # in place
    np.testing.assert_allclose(buf, want, rtol=1e-15)
    big = np.concatenate([yhat, [0.0]])
    with pytest.raises(InputError, match="out must not share memory with the inputs"):
        mse.grad(y, big[:6], out=big[1:])  # shifted by one element: would read what it wrote
    ro = np.empty(6)
    ro.flags.writeable = False
    for bad, needle in [(ro, "writeable C-contiguous"), ([0.0] * 6, "out must be a numpy array"),
                        (np.empty(6, np.float32), "dtype float64")]:
        with pytest.raises(InputError, match=needle):
            mse.grad(y, yhat, out=bad)


# --- row losses ---------------------------------------------------------------------------------
Z = RNG.normal(size=(5, 4))
T = np.array([0, 3, 1, 2, 3])


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.uint64, np.int64])
def test_class_indices_of_any_integer_width(ce, dtype):
    per, d = ce_ref(T, Z)
    v, g = ce.value_and_grad(T.astype(dtype), Z, reduction="none")
    np.testing.assert_allclose(v, per, rtol=1e-13)
    np.testing.assert_allclose(g, d, rtol=1e-12, atol=1e-15)


def test_class_indices_never_wrap(ce):
    # 2^64 - 100 as int64 is -100, the default ignore_index: it must be out of range, not ignored
    t = T.astype(np.uint64)
    t[0] = np.uint64(2**64 - 100)
    with pytest.raises(InputError, match="class index 18446744073709551516 out of range for 4 classes"):
        ce.value(t, Z)
    # 2^32 as int32 is 0, a valid class
    t = T.copy()
    t[1] = 2**32
    with pytest.raises(InputError, match="class index 4294967296 out of range"):
        ce.grad(t, Z)
    with pytest.raises(InputError, match="ignore_index must be an integer"):
        ce.value(T, Z, ignore_index=-100.0)


def test_row_broadcasting(ce):
    p = np.array([0.1, 0.2, 0.3, 0.4])
    want = ce.value_and_grad(np.tile(p, (5, 1)), Z, sample_weight=np.full(5, 2.0), reduction="sum")
    got = ce.value_and_grad(p, Z, sample_weight=2.0, reduction="sum")  # one distribution for every row
    np.testing.assert_allclose(got[0], want[0], rtol=1e-14)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-14)
    with pytest.raises(InputError, match=r"'y' of shape \(5, 1\) looks like class indices with an extra axis"):
        ce.value(T[:, None], Z)
    with pytest.raises(InputError, match=r"'y' has shape \(5, 1\).*class axis does not broadcast"):
        ce.value(np.ones((5, 1)) / 4, Z)
    with pytest.raises(InputError, match=r"sample_weight has shape \(5, 1\).*\(5,\) \(one per row\)"):
        ce.value(T, Z, sample_weight=np.ones((5, 1)))
    # a single row: 0-d class index against (K,) logits
    assert ce.value(np.int64(3), Z[1]) == pytest.approx(ce.value(T[1:2], Z[1:2]), rel=1e-14)


def test_row_views_dtypes_and_out(ce):
    zt = np.ascontiguousarray(Z.T)[:, ::-1].T[::-1]  # (5, 4) with negative strides
    assert not zt.flags.c_contiguous
    np.testing.assert_allclose(ce.grad(T[::-1], zt), ce.grad(T[::-1], np.ascontiguousarray(zt)), rtol=0)
    v, g = ce.value_and_grad(T, Z.astype(np.float16))
    assert v.dtype == np.float16 and g.dtype == np.float16
    np.testing.assert_allclose(g, ce.grad(T, Z.astype(np.float16).astype(np.float32)), rtol=1e-3, atol=1e-4)
    h = ce.hvp(T, Z.astype(np.float16), v=Z.tolist())
    assert h.dtype == np.float16 and h.shape == Z.shape
    zz = Z.copy()
    with pytest.raises(InputError, match="share memory"):
        ce.grad(T, zz, out=zz)
    with pytest.raises(InputError, match="no classes"):
        ce.value(np.empty(3, int), np.empty((3, 0)))
    with pytest.raises(InputError, match="cross_entropy: 'z' must hold real numbers"):
        ce.value(T, Z + 0j)


# --- more than 2^31 elements ---------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["value", "value_parallel"])
def test_loop_index_passes_2_to_the_31(mse, variant):
    """The generated loops count with 64-bit indices: a zero-stride view of 2^31 + 5 elements
    (no memory) through the value kernel sums exactly 2^31 + 5 ones; a 32-bit index would wrap
    negative and run no iteration (or stop early)."""
    n = 2**31 + 5
    y = np.broadcast_to(np.float64(0.0), (n,))
    yhat = np.broadcast_to(np.float64(1.0), (n,))
    assert getattr(mse.module, variant)(y, yhat, None, None, np.float64) == float(n)
