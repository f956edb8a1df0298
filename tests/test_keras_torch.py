"""symloss.keras on Keras's PyTorch backend, in a subprocess (Keras fixes its backend at import).

One child process: values and gradients equal the built-ins (MSE, Huber,
BinaryCrossentropy from logits, SparseCategoricalCrossentropy from logits),
a Masking layer's mask counts as for Keras's MSE, a Dense model trains with a
symloss loss, and the model saves and reloads.
"""
import os
import subprocess
import sys
import textwrap

import importlib.util

import pytest

# found, not imported: importing keras here would fix this process's backend
if importlib.util.find_spec("keras") is None or importlib.util.find_spec("torch") is None:
    pytest.skip("keras and torch are needed", allow_module_level=True)

CHILD = textwrap.dedent('''
    import os, tempfile
    import numpy as np
    import keras, torch
    assert keras.backend.backend() == "torch"
    import symloss.keras as sk

    rng = np.random.default_rng(0)

    def check(ours, theirs, yt, yp):
        a = torch.tensor(yp, requires_grad=True)
        b = torch.tensor(yp, requires_grad=True)
        va, vb = ours(torch.tensor(yt), a), theirs(torch.tensor(yt), b)
        va.backward(); vb.backward()
        np.testing.assert_allclose(va.item(), vb.item(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-6)

    yt, yp = rng.normal(size=(2, 16, 3)).astype(np.float32)
    check(sk.loss("mse"), keras.losses.MeanSquaredError(), yt, yp)
    check(sk.loss("huber", delta=0.7), keras.losses.Huber(delta=0.7), yt, yp)
    lab = rng.integers(0, 2, (16, 3)).astype(np.float32)
    check(sk.loss("bce_logits"), keras.losses.BinaryCrossentropy(from_logits=True), lab, yp)
    z = rng.normal(size=(16, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 16).astype(np.float32)
    check(sk.loss("cross_entropy"), keras.losses.SparseCategoricalCrossentropy(from_logits=True), labels, z)

    # a Masking layer's mask is applied as to Keras's MSE (the padded steps do not count)
    xs = rng.normal(size=(6, 5, 3)).astype(np.float32)
    xs[:, 3:] = 0.0
    ys = rng.normal(size=(6, 5, 1)).astype(np.float32)
    keras.utils.set_random_seed(0)
    inp = keras.Input((5, 3))
    seq = keras.Model(inp, keras.layers.Dense(1)(keras.layers.Masking(0.0)(inp)))
    got = []
    for loss in (sk.loss("mse"), keras.losses.MeanSquaredError()):
        seq.compile(loss=loss)
        got.append(seq.evaluate(xs, ys, batch_size=6, verbose=0))
    pred = seq.predict(xs, verbose=0)
    np.testing.assert_allclose(got[0], got[1], rtol=1e-6)
    np.testing.assert_allclose(got[0], np.mean(((pred - ys) ** 2)[:, :3]), rtol=1e-5)

    keras.utils.set_random_seed(0)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0], np.float32))[:, None]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=sk.loss("huber", delta=1.0))
    h = model.fit(x, y, epochs=4, batch_size=64, verbose=0).history["loss"]
    assert np.all(np.isfinite(h)) and h[-1] < 0.7 * h[0], h
    path = os.path.join(tempfile.mkdtemp(), "m.keras")
    model.save(path)
    again = keras.models.load_model(path)
    assert isinstance(again.loss, sk.SymlossLoss) and again.loss.params == {"delta": 1.0}
    np.testing.assert_allclose(again.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0), rtol=1e-6)
    print("OK")
''')


def test_keras_on_torch_backend():
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-4000:]
