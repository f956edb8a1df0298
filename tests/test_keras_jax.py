"""symloss.keras on Keras's JAX backend: built-in equivalence, serialisation, the field's workflows.

Keras reads KERAS_BACKEND once, at import: this module sets it before
importing keras and skips if keras was already imported on another backend
in this process (the torch backend is tested in a subprocess by
test_keras_torch.py).
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
import mpmath  # noqa: E402

import symloss.keras as sk  # noqa: E402

RTOL = dict(rtol=1e-5, atol=1e-6)
rng = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _fresh_data():
    # each test's data and weights independent of which tests ran before it (xdist splits them)
    global rng
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)


def f32(x):
    return np.asarray(x, np.float32)


def _check(ours, theirs, y_true, y_pred, ours_pred=None, chain=None, renormalised=False):
    """Values and gradients in y_pred equal (float32, rtol 1e-5)."""
    ours_pred = y_pred if ours_pred is None else ours_pred
    np.testing.assert_allclose(float(ours(y_true, ours_pred)), float(theirs(y_true, y_pred)), **RTOL)
    g_ours = jax.jit(jax.grad(lambda p: ours(y_true, p)))(jnp.asarray(ours_pred))
    if renormalised:  # Keras divides y_pred by its row sum: its gradient is ours through that map
        g_ours = g_ours - jnp.sum(g_ours * y_pred, -1, keepdims=True)
    g_theirs = jax.jit(jax.grad(lambda p: theirs(y_true, p)))(jnp.asarray(y_pred))
    if chain is not None:
        g_theirs = chain(g_theirs)
    np.testing.assert_allclose(g_ours, g_theirs, **RTOL)


def test_regression_builtins():
    yt, yp = f32(rng.normal(size=(2, 16, 3)))
    _check(sk.loss("mse"), keras.losses.MeanSquaredError(), yt, yp)
    _check(sk.loss("mae"), keras.losses.MeanAbsoluteError(), yt, yp)
    _check(sk.loss("huber", delta=0.8), keras.losses.Huber(delta=0.8), yt, yp)
    _check(sk.loss("log_cosh"), keras.losses.LogCosh(), yt, yp)
    # Poisson: Keras takes the rate, symloss's poisson_nll the log-rate z (chain rule: d/dz = rate * d/drate)
    counts = f32(rng.poisson(2.0, (16, 3)))
    z = f32(rng.normal(size=(16, 3)) * 0.5)
    _check(sk.loss("poisson_nll"), keras.losses.Poisson(), counts, f32(np.exp(z)), ours_pred=z,
           chain=lambda g: g * np.exp(z))


def test_classification_builtins():
    z = f32(rng.normal(size=(16, 4)) * 2)
    lab01 = f32(rng.integers(0, 2, (16, 4)))
    _check(sk.loss("bce_logits"), keras.losses.BinaryCrossentropy(from_logits=True), lab01, z)
    p = f32(rng.uniform(0.05, 0.95, (16, 4)))  # inside Keras's clip [1e-7, 1 - 1e-7]
    _check(sk.loss("bce"), keras.losses.BinaryCrossentropy(), lab01, p)
    sign = 2 * lab01 - 1
    _check(sk.loss("hinge"), keras.losses.Hinge(), sign, z)
    _check(sk.loss("squared_hinge"), keras.losses.SquaredHinge(), sign, z)
    labels = rng.integers(0, 4, 16)
    onehot = f32(np.eye(4)[labels])
    _check(sk.loss("cross_entropy", label_smoothing=0.1),
           keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), onehot, z)
    _check(sk.loss("cross_entropy"), keras.losses.SparseCategoricalCrossentropy(from_logits=True), labels, z)
    _check(sk.loss("cross_entropy"), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
           labels[:, None], z)  # Keras's (N, 1) integer labels
    probs = f32(jax.nn.softmax(z))
    _check(sk.loss("categorical_cross_entropy"), keras.losses.CategoricalCrossentropy(), onehot, probs,
           renormalised=True)
    _check(sk.loss("categorical_hinge"), keras.losses.CategoricalHinge(), onehot, z)
    target = f32(rng.dirichlet(np.ones(4), 16))
    _check(sk.loss("kl_divergence"), keras.losses.KLDivergence(), target, probs)


def test_overlap_builtins():
    y = f32(rng.integers(0, 2, (8, 10)))
    p = f32(rng.uniform(0.05, 0.95, (8, 10)))
    # Keras adds epsilon() = 1e-7 to the denominator; symloss's smooth=0 is the exact formula
    _check(sk.loss("dice", smooth=0.0), keras.losses.Dice(axis=-1), y, p)
    # Keras's tversky multiplies sum(y * (1 - p)) (false negatives) by alpha: its alpha is symloss's beta
    _check(sk.loss("tversky", alpha=0.7, beta=0.3, smooth=0.0), keras.losses.Tversky(alpha=0.3, beta=0.7, axis=-1),
           y, p)


def test_bce_where_keras_clips():
    # Keras clips probabilities to [1e-7, 1 - 1e-7]; symloss does not: check it against mpmath there
    y = f32([1.0, 0.0, 1.0])
    p = f32([1e-9, 1 - 2 ** -24, 1e-30])
    ours = sk.loss("bce", reduction=None)(y, p)
    mp = [float(-(yi * mpmath.log(mpmath.mpf(float(pi))) + (1 - yi) * mpmath.log(1 - mpmath.mpf(float(pi)))))
          for yi, pi in zip(y.astype(float), p)]
    np.testing.assert_allclose(ours, mp, rtol=1e-6)
    assert float(keras.losses.BinaryCrossentropy(reduction=None)(y[:1], p[:1])) < 16.2  # -log(1e-7), clipped


def test_reductions_sample_weight_mask_dtype():
    yt, yp = f32(rng.normal(size=(2, 6, 3)))
    w = f32(rng.uniform(0, 1, 6))
    for reduction in ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None):
        ours = sk.loss("huber", reduction=reduction)
        theirs = keras.losses.Huber(reduction=reduction)
        np.testing.assert_allclose(ours(yt, yp, sample_weight=w), theirs(yt, yp, sample_weight=w), **RTOL)
    L = sk.loss("mse", dtype="bfloat16")
    assert L(yt, yp).dtype == jnp.bfloat16 and L.get_config()["dtype"] == "bfloat16"
    np.testing.assert_allclose(float(L(yt, yp)), float(keras.losses.MeanSquaredError()(yt, yp)), rtol=2e-2)


def test_get_config_roundtrip_and_from_expr():
    L = sk.loss("huber", delta=0.5, reduction="sum")
    cfg = L.get_config()
    assert cfg["source"] == "huber" and cfg["params"] == {"delta": 0.5} and cfg["reduction"] == "sum"
    M = keras.losses.deserialize(keras.losses.serialize(L))
    assert isinstance(M, sk.SymlossLoss) and M.params == {"delta": 0.5} and M.reduction == "sum"
    yt, yp = f32(rng.normal(size=(2, 5, 2)))
    np.testing.assert_allclose(M(yt, yp), L(yt, yp), rtol=0)
    E = sk.from_expr("c * log(cosh(yhat - y))", name="scaled_logcosh", params={"c": {"default": 1.0}}, c=2.0)
    E2 = sk.SymlossLoss.from_config(E.get_config())
    np.testing.assert_allclose(E2(yt, yp), 2 * keras.losses.LogCosh()(yt, yp), **RTOL)
    with pytest.raises(Exception, match="unknown parameter"):
        sk.loss("huber", dleta=1.0)


def _dense(n_in, n_out, activation=None, hidden=16, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((n_in,)), keras.layers.Dense(hidden, activation="relu"),
                             keras.layers.Dense(n_out, activation=activation)])


def _falls(history, key="loss"):
    h = history.history[key]
    assert np.all(np.isfinite(h)), h
    assert h[-1] < h[0], h
    return h


def test_dense_regression_save_reload_and_loss_monitor(tmp_path):
    x = f32(rng.normal(size=(256, 4)))
    y = f32(x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=256))[:, None]
    for L in (sk.loss("mse"), sk.loss("huber", delta=1.0)):
        model = _dense(4, 1)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=L)
        png = tmp_path / f"{L.spec.name}.png"
        monitor = sk.LossMonitor(x[:64], y[:64], L, every=2, plot_to=png)
        hist = model.fit(x, y, epochs=4, batch_size=64, verbose=0, callbacks=[monitor])
        h = _falls(hist)
        assert len(monitor.history) == 4 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        np.testing.assert_allclose(hist.history["val_symloss"], monitor.history)
        # the monitor's Numba-kernel value equals Keras's evaluation of the same loss
        np.testing.assert_allclose(monitor.history[-1], model.evaluate(x[:64], y[:64], verbose=0), rtol=1e-4)
        assert h[-1] < 0.75 * h[0]
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path)
    assert isinstance(again.loss, sk.SymlossLoss) and again.loss.params == {"delta": 1.0}
    np.testing.assert_allclose(again.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0), rtol=1e-6)
    again.fit(x, y, epochs=1, batch_size=64, verbose=0)  # reloaded with its loss, it trains on


def test_classifiers_bce_and_categorical():
    x = f32(rng.normal(size=(256, 5)))
    yb = f32((x[:, 0] + x[:, 1] > 0))[:, None]
    model = _dense(5, 1)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=sk.loss("bce_logits"))
    _falls(model.fit(x, yb, epochs=4, batch_size=64, verbose=0))
    yc = np.argmax(x[:, :3], axis=1)
    model = _dense(5, 3)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=sk.loss("cross_entropy", label_smoothing=0.05))
    _falls(model.fit(x, yc, epochs=4, batch_size=64, verbose=0))


def test_quantile_at_0_9_sits_above_90_percent():
    x = f32(rng.uniform(-1, 1, (1024, 1)))
    y = f32(2 * x[:, 0] + rng.normal(size=1024))[:, None]
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=sk.loss("quantile", tau=0.9))
    model.fit(x[:768], y[:768], epochs=40, batch_size=128, verbose=0)
    above = np.mean(model.predict(x[768:], verbose=0) >= y[768:])
    assert 0.83 < above < 0.96, above


def test_focal_on_imbalanced_and_huge_logits():
    x = f32(rng.normal(size=(256, 3)))
    y = f32(x[:, 0] > 1.3)[:, None]  # ~10% positives
    model = _dense(3, 1)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=sk.loss("focal_binary", gamma=2.0, alpha=0.25))
    _falls(model.fit(x, y, epochs=4, batch_size=64, verbose=0))
    # logits reaching +-1e4: finite loss and gradients, training stays finite
    big = _dense(3, 1)
    big.layers[-1].kernel.assign(np.where(np.arange(16) % 2, 1e4, -1e4).astype(np.float32)[:, None])
    for L in (sk.loss("bce_logits"), sk.loss("focal_binary")):
        z = big.predict(x, verbose=0)
        assert z.max() > 1e4 and z.min() < -1e4
        g = jax.grad(lambda p: L(y, p))(jnp.asarray(z))
        assert np.all(np.isfinite(g))
        big.compile(optimizer=keras.optimizers.SGD(1e-4), loss=L)
        h = big.fit(x, y, epochs=2, batch_size=64, verbose=0).history["loss"]
        assert np.all(np.isfinite(h))
        assert all(np.all(np.isfinite(w)) for w in big.get_weights())


def test_triplet_with_shared_embedding_and_dice_conv():
    # three inputs, one shared embedding; the model stacks the embeddings on axis 1: (N, 3, D)
    keras.utils.set_random_seed(2)
    emb = keras.Sequential([keras.layers.Dense(8)])
    a, p, n = keras.Input((6,)), keras.Input((6,)), keras.Input((6,))
    out = keras.layers.Lambda(lambda t: keras.ops.stack(t, axis=1))([emb(a), emb(p), emb(n)])
    model = keras.Model([a, p, n], out)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=sk.loss("triplet", margin=10.0))
    xa = f32(rng.normal(size=(128, 6)))
    xp = xa + f32(0.1 * rng.normal(size=(128, 6)))
    xn = f32(rng.normal(size=(128, 6)))
    _falls(model.fit([xa, xp, xn], np.zeros(128, np.float32), epochs=4, batch_size=32, verbose=0))
    # Dice on a tiny conv net: masks flattened to (N, pixels) rows
    img = f32(rng.uniform(size=(64, 8, 8, 1)))
    mask = f32(img[..., 0] > 0.5).reshape(64, 64)
    keras.utils.set_random_seed(3)
    net = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                            keras.layers.Conv2D(1, 1, activation="sigmoid"), keras.layers.Reshape((64,))])
    net.compile(optimizer=keras.optimizers.Adam(0.02), loss=sk.loss("dice"))
    _falls(net.fit(img, mask, epochs=5, batch_size=16, verbose=0))


def test_two_output_model_with_loss_weights():
    keras.utils.set_random_seed(4)
    x = f32(rng.normal(size=(256, 4)))
    inp = keras.Input((4,))
    hidden = keras.layers.Dense(16, activation="relu")(inp)
    reg = keras.layers.Dense(1, name="reg")(hidden)
    cls = keras.layers.Dense(3, name="cls")(hidden)
    model = keras.Model(inp, {"reg": reg, "cls": cls})
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss={"reg": sk.loss("mse"), "cls": sk.loss("cross_entropy")},
                  loss_weights={"reg": 1.0, "cls": 0.5})
    y = {"reg": f32(x.sum(1, keepdims=True)), "cls": np.argmax(x[:, :3], 1)}
    h = _falls(model.fit(x, y, epochs=4, batch_size=64, verbose=0))
    ev = model.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(ev["loss"], ev["reg_loss"] + 0.5 * ev["cls_loss"], rtol=1e-4)
    assert h[-1] < h[0]


def test_several_predictions_stacked_or_listed():
    # gaussian_nll(y; mu, var): y_pred stacked on the last axis (N, 2) or a list [mu, var]
    y = f32(rng.normal(size=(32, 1)))
    mu = f32(rng.normal(size=(32, 1)))
    var = f32(np.exp(rng.normal(size=(32, 1))))
    L = sk.loss("gaussian_nll")
    ref = float(symloss_value("gaussian_nll", y, mu, var))  # the Numba kernels, float64
    stacked = float(L(y, np.concatenate([mu, var], axis=1)))
    listed = float(L(y, [mu, var]))
    np.testing.assert_allclose(stacked, ref, rtol=1e-5)
    np.testing.assert_allclose(listed, ref, rtol=1e-5)


def symloss_value(name, *arrays):
    import symloss

    return symloss.load(name).value(*[np.asarray(a, np.float64).ravel() for a in arrays])
