"""symloss.keras through the generated keras module, and Keras masks.

On Keras backends without a symloss framework module (tensorflow) elementwise
losses run the keras module (keras.ops in ops.custom_gradient).  Here that
path runs on Keras's jax backend (the jax entry taken out of
``dispatch.FRAMEWORK`` for the test) so CI exercises it without tensorflow:
built-in equivalence of values and gradients, reductions and sample weights,
from_expr, and a model trained, saved and reloaded.  Masks: a Masking layer's
mask reaches the loss as Keras applies it to its built-in MSE.
"""
import os
import sys

import numpy as np
import pytest

if "keras" not in sys.modules:
    os.environ["KERAS_BACKEND"] = "jax"
keras = pytest.importorskip("keras")
jax = pytest.importorskip("jax")
if keras.backend.backend() != "jax":
    pytest.skip("keras already imported on another backend in this process", allow_module_level=True)
import jax.numpy as jnp  # noqa: E402

import symloss.keras as sk  # noqa: E402
from symloss.errors import InputError  # noqa: E402
from symloss.keras import dispatch  # noqa: E402

RTOL = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture
def keras_module_path(monkeypatch):
    monkeypatch.delitem(dispatch.FRAMEWORK, "jax")


def f32(x):
    return np.asarray(x, np.float32)


def _runs_keras_module(L):
    assert L._fn.__qualname__.startswith("keras_module_loss"), L._fn


def _check(ours, theirs, y_true, y_pred, sample_weight=None):
    np.testing.assert_allclose(float(ours(y_true, y_pred, sample_weight=sample_weight)),
                               float(theirs(y_true, y_pred, sample_weight=sample_weight)), **RTOL)
    _runs_keras_module(ours)
    g = [jax.jit(jax.grad(lambda p, L=L: L(y_true, p, sample_weight=sample_weight)))(jnp.asarray(y_pred))
         for L in (ours, theirs)]
    np.testing.assert_allclose(g[0], g[1], **RTOL)


def test_builtins_through_the_keras_module(keras_module_path):
    rng = np.random.default_rng(0)
    yt, yp = f32(rng.normal(size=(2, 16, 3)))
    w = f32(rng.uniform(0.2, 1.0, 16))
    _check(sk.loss("mse"), keras.losses.MeanSquaredError(), yt, yp)
    _check(sk.loss("mae"), keras.losses.MeanAbsoluteError(), yt, yp, sample_weight=w)
    _check(sk.loss("huber", delta=0.6), keras.losses.Huber(delta=0.6), yt, yp, sample_weight=w)
    _check(sk.loss("log_cosh"), keras.losses.LogCosh(), yt, yp)
    lab = f32(rng.integers(0, 2, (16, 3)))
    _check(sk.loss("bce_logits"), keras.losses.BinaryCrossentropy(from_logits=True), lab, yp)
    _check(sk.loss("hinge"), keras.losses.Hinge(), 2 * lab - 1, yp)
    _check(sk.loss("squared_hinge", reduction="sum"), keras.losses.SquaredHinge(reduction="sum"), 2 * lab - 1, yp)
    # a target of rank one less than the prediction (broadcast inside, gradient summed back)
    y1, p1 = f32(rng.normal(size=16)), f32(rng.normal(size=(16, 1)))
    _check(sk.loss("mse"), keras.losses.MeanSquaredError(), y1, p1)
    for reduction in ("sum", None, "mean_with_sample_weight"):
        np.testing.assert_allclose(sk.loss("huber", reduction=reduction)(yt, yp, sample_weight=w),
                                   keras.losses.Huber(reduction=reduction)(yt, yp, sample_weight=w), **RTOL)


def test_from_expr_and_save_reload_through_the_keras_module(keras_module_path, tmp_path):
    rng = np.random.default_rng(1)
    E = sk.from_expr("c * log(cosh(yhat - y))", name="scaled_logcosh", params={"c": {"default": 1.0}}, c=2.0)
    yt, yp = f32(rng.normal(size=(2, 8, 3)))
    np.testing.assert_allclose(E(yt, yp), 2 * keras.losses.LogCosh()(yt, yp), **RTOL)
    _runs_keras_module(E)
    E2 = sk.SymlossLoss.from_config(E.get_config())
    np.testing.assert_allclose(E2(yt, yp), E(yt, yp), rtol=0)
    _runs_keras_module(E2)

    x = f32(rng.normal(size=(256, 4)))
    y = f32(x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=256))[:, None]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=sk.loss("huber", delta=1.0))
    h = model.fit(x, y, epochs=4, batch_size=64, verbose=0).history["loss"]
    assert np.all(np.isfinite(h)) and h[-1] < 0.75 * h[0], h
    _runs_keras_module(model.loss)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path)
    assert isinstance(again.loss, sk.SymlossLoss) and again.loss.params == {"delta": 1.0}
    np.testing.assert_allclose(again.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6)
    _runs_keras_module(again.loss)


def test_row_losses_need_a_framework_module(keras_module_path):
    z = f32(np.zeros((4, 3)))
    with pytest.raises(InputError, match="row losses"):
        sk.loss("cross_entropy")(f32(np.eye(3)[[0, 1, 2, 0]]), z)


@pytest.mark.parametrize("path", ["framework module", "keras module"])
def test_masked_timesteps_as_keras_mse(path, monkeypatch):
    if path == "keras module":
        monkeypatch.delitem(dispatch.FRAMEWORK, "jax")
    rng = np.random.default_rng(2)
    x = f32(rng.normal(size=(6, 5, 3)))
    x[:, 3:] = 0.0  # the last two steps of every sequence are padding
    x[0, 1:] = 0.0
    y = f32(rng.normal(size=(6, 5, 1)))
    keras.utils.set_random_seed(0)
    inp = keras.Input((5, 3))
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Masking(0.0)(inp)))
    values = {}
    for key, loss in (("ours", sk.loss("mse")), ("keras", keras.losses.MeanSquaredError())):
        model.compile(loss=loss)
        values[key] = model.evaluate(x, y, batch_size=6, verbose=0)
    pred = model.predict(x, verbose=0)
    keep = np.any(x != 0.0, axis=-1)
    masked = float(np.mean(((pred - y) ** 2)[..., 0][keep]))
    # the mask took effect (the plain mean over all steps is another number) and matches Keras's MSE
    assert abs(masked - float(np.mean((pred - y) ** 2))) > 1e-2 * masked
    np.testing.assert_allclose(values["ours"], values["keras"], rtol=1e-6)
    np.testing.assert_allclose(values["ours"], masked, rtol=1e-5)
