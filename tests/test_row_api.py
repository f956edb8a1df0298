"""The RowLoss API: reductions, row weights, shapes, out=, class indices, from_expr(kind="row"), bad input."""
import numpy as np
import pytest

import symloss
from symloss import InputError, Loss, SpecError
from symloss.runtime.row_loss import RowLoss

RNG = np.random.default_rng(0)
Z = RNG.normal(size=(5, 4))
Y = RNG.dirichlet(np.ones(4), 5)
T = RNG.integers(0, 4, 5)


def test_load_gives_a_row_loss_with_its_signature():
    L = symloss.load("cross_entropy")
    assert isinstance(L, RowLoss) and L.kind == "row"
    assert L.inputs == ("y", "z") and L.predictions == ("z",)
    assert L.params == {"label_smoothing": 0.0} and L.class_inputs == {"weight": 1.0}
    assert "cross_entropy(y, z" in repr(L)
    assert "\\sum_{k}" in L.latex["loss"]


def test_reductions_row_weights_and_gradients_of_the_reduced_loss():
    L = symloss.load("cross_entropy")
    per = L.value(Y, Z, reduction="none")
    assert per.shape == (5,)
    assert np.isclose(L.value(Y, Z), per.mean()) and np.isclose(L.value(Y, Z, reduction="sum"), per.sum())
    g_none = L.grad(Y, Z, reduction="none")
    np.testing.assert_allclose(L.grad(Y, Z), g_none / 5)
    np.testing.assert_allclose(L.grad(Y, Z, reduction="sum"), g_none)
    w = RNG.uniform(0.5, 2.0, 5)
    np.testing.assert_allclose(L.value(Y, Z, sample_weight=w), np.average(per, weights=w))
    np.testing.assert_allclose(L.value(Y, Z, sample_weight=w, reduction="none"), w * per)
    np.testing.assert_allclose(L.grad(Y, Z, sample_weight=w), w[:, None] * g_none / w.sum())
    v, g = L.value_and_grad(Y, Z, reduction="none")
    np.testing.assert_allclose(v, per)
    np.testing.assert_allclose(g, g_none)
    # Hessians default to each row's own; "mean" scales them like the gradient
    np.testing.assert_allclose(L.hessian_diag(Y, Z, reduction="mean"), L.hessian_diag(Y, Z) / 5)


def test_class_indices_mean_over_kept_rows_weighted_by_their_class():
    L = symloss.load("cross_entropy")
    t = T.copy()
    t[1] = -100
    w = np.array([1.0, 2.0, 3.0, 4.0])
    per = L.value(t, Z, reduction="none", weight=w)
    assert per[1] == 0.0
    keep = t != -100
    assert np.isclose(L.value(t, Z, weight=w), per.sum() / w[t[keep]].sum())
    g = L.grad(t, Z, weight=w)
    assert (g[1] == 0).all()
    # all rows ignored: the mean is NaN, as in PyTorch
    assert np.isnan(L.value(np.full(5, -100), Z))


def test_batch_dimensions_and_a_single_row():
    L = symloss.load("cross_entropy")
    z3 = RNG.normal(size=(2, 3, 4))
    t3 = RNG.integers(0, 4, (2, 3))
    per = L.value(t3, z3, reduction="none")
    assert per.shape == (2, 3)
    np.testing.assert_allclose(per.reshape(-1), L.value(t3.reshape(-1), z3.reshape(6, 4), reduction="none"))
    assert L.grad(t3, z3).shape == (2, 3, 4) and L.hessian(t3, z3).shape == (2, 3, 4, 4)
    one = L.value(Y[0], Z[0], reduction="none")
    assert one.shape == () and np.isclose(one, L.value(Y, Z, reduction="none")[0])


def test_several_predictions_return_tuples():
    L = symloss.load("triplet")
    a, p, n = (RNG.normal(size=(5, 3)) for _ in range(3))
    g = L.grad(a, p, n)
    assert isinstance(g, tuple) and len(g) == 3 and all(x.shape == (5, 3) for x in g)
    hv = L.hvp(a, p, n, v=(a, p, n))
    assert isinstance(hv, tuple) and len(hv) == 3
    assert L.hessian(a, p, n).shape == (3, 3, 5, 3, 3)


def test_out_buffers_are_filled_in_place():
    L = symloss.load("cross_entropy")
    out = np.empty_like(Z)
    assert L.grad(Y, Z, out=out) is out
    np.testing.assert_allclose(out, L.grad(Y, Z))
    v, g = L.value_and_grad(Y, Z, out=out)
    assert g is out
    vout = np.empty(5)
    assert L.value(Y, Z, reduction="none", out=vout) is vout
    zz = Z.copy()
    with pytest.raises(InputError, match="share memory"):
        L.grad(Y, zz, out=zz)
    with pytest.raises(InputError, match="out must have shape"):
        L.grad(Y, Z, out=np.empty(4))


def test_float32_and_mixed_dtypes():
    L = symloss.load("cross_entropy")
    v, g = L.value_and_grad(T, Z.astype(np.float32))
    assert v.dtype == np.float32 and g.dtype == np.float32
    assert L.value(Y, Z.astype(np.float32)).dtype == np.float32
    assert L.value(Y.astype(np.float32), Z).dtype == np.float64
    assert L.value(T, Z.astype(int)).dtype == np.float64


def test_empty_input():
    L = symloss.load("cross_entropy")
    assert np.isnan(L.value(np.empty((0, 4)), np.empty((0, 4))))
    assert L.grad(np.empty(0, dtype=int), np.empty((0, 4))).shape == (0, 4)


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda L: L.value(Z), "takes 2 arrays"),
        (lambda L: L.value(Y[:3], Z), "has shape"),
        (lambda L: L.value(T.astype(float), Z), "must be integers"),
        (lambda L: L.value(np.array([0, 1, 2, 3, 4]), Z), "class index 4 out of range"),
        (lambda L: L.value(np.array([0, 1, 2, 3, -1]), Z), "class index -1 out of range"),
        (lambda L: L.value(T, Z, weight=np.ones(3)), "one per class"),
        (lambda L: L.value(T, Z, gamma=1.0), "unknown parameter"),
        (lambda L: L.value(T, Z, label_smoothing=1.5), "must be <= 1"),
        (lambda L: L.value(T, Z, reduction="avg"), "reduction must be one of"),
        (lambda L: L.value(T, Z, sample_weight=np.ones((5, 4))), "one per row"),
        (lambda L: L.value(T, Z.astype(np.longdouble)), "float32 or float64"),
        (lambda L: L.value(T, np.float64(1.0)), "class axis"),
        (lambda L: L.hvp(T, Z, v=np.ones(3)), "v must be numeric of shape"),
        (lambda L: L.hessian(np.zeros(3000, int), np.zeros((3000, 200))), "too large"),
    ],
)
def test_bad_input_is_a_clear_error(call, needle):
    with pytest.raises(InputError, match=needle):
        call(symloss.load("cross_entropy"))


def test_scalar_inputs_must_have_the_row_shape():
    L = symloss.load("contrastive")
    with pytest.raises(InputError, match="one per row"):
        L.value(np.ones((5, 4)), Z, Z)


def test_from_expr_row_kind():
    L = Loss.from_expr("Sum((yhat[k] - y[k])**2, k) / K", name="row_mse", kind="row")
    assert isinstance(L, RowLoss)
    y, yhat = RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))
    np.testing.assert_allclose(L.value(y, yhat, reduction="none"), ((yhat - y) ** 2).mean(-1))
    np.testing.assert_allclose(L.grad(y, yhat, reduction="none"), 2 * (yhat - y) / 4)
    np.testing.assert_allclose(L.hessian_diag(y, yhat), np.full((3, 4), 0.5))
    lse = Loss.from_expr("log(Sum(exp(z[k]), k)) - Sum(y[k] * z[k], k)", name="my_ce", kind="row",
                         inputs={"y": {"role": "target", "indices": True}, "z": "prediction"})
    ce = symloss.load("cross_entropy")
    np.testing.assert_allclose(lse.value_and_grad(T, Z)[1], ce.value_and_grad(T, Z)[1], rtol=1e-14)
    with pytest.raises(SpecError, match="outside a reduction"):
        Loss.from_expr("yhat[k] - y[k]", kind="row")


def test_load_a_row_spec_file(tmp_path):
    spec = tmp_path / "sq.toml"
    spec.write_text('name = "sq"\nkind = "row"\nloss = "Sum(z[k]**4, k)"\n[inputs]\nz = "prediction"\n')
    L = symloss.load(spec)
    np.testing.assert_allclose(L.grad(Z, reduction="none"), 4 * Z**3)
    np.testing.assert_allclose(L.hessian_diag(Z), 12 * Z**2)
