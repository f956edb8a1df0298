"""symloss.keras vs Keras's built-in losses on the JAX backend: loss forward + backward under jax.jit.

    KERAS_BACKEND=jax python bench/bench_keras.py [--n 10000000] [--rows 65536] [--classes 1024] [--repeat 5]

For each loss, jit(value_and_grad(loss(y_true, y_pred))) with respect to
y_pred, best of ``--repeat`` runs after a warm-up (compile excluded; the
functions compared run interleaved, so a change of machine load hits them alike), float32.
Also one epoch of a small Dense model compiled with each.  The ratio column is
symloss / Keras (the issue's target: within 1.1x).  The last two columns time
elementwise losses through the generated keras module (keras.ops in
ops.custom_gradient, the path Keras's tensorflow backend takes) on the same
JAX backend, against the same Keras number.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import symloss.keras as sk  # noqa: E402
from symloss.keras import _modules, dispatch  # noqa: E402


def best(fns, *args, repeat=5):
    """Best time of each function, runs interleaved so a load change hits all of them alike."""
    for fn in fns:
        jax.block_until_ready(fn(*args))  # compile
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, t in zip(fns, times):
            s = time.perf_counter()
            jax.block_until_ready(fn(*args))
            t.append(time.perf_counter() - s)
    return [min(t) for t in times]


def step(loss):
    return jax.jit(jax.value_and_grad(lambda a, b: loss(b, a)))


def via_keras_module(loss):
    """The same loss run through the generated keras module instead of the jax module."""
    if loss.spec.kind == "row":
        return None
    again = sk.loss(loss.source, **loss.params)
    again._fn = dispatch.keras_module_loss(again.spec, _modules.resolve(again.source)[1], again.params)
    return again


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--classes", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--samples", type=int, default=65536, help="rows of the Dense model's epoch")
    a = ap.parse_args()
    assert keras.backend.backend() == "jax"
    key = jax.random.PRNGKey(0)
    k1, k2 = jax.random.split(key)
    shape = (a.n // 1000, 1000)
    y = jax.random.normal(k1, shape, jnp.float32)
    p = jax.random.normal(k2, shape, jnp.float32)
    lab = (y > 0).astype(jnp.float32)
    cases = [
        ("mse", sk.loss("mse"), keras.losses.MeanSquaredError(), y, p),
        ("huber", sk.loss("huber", delta=1.0), keras.losses.Huber(1.0), y, p),
        ("bce_logits", sk.loss("bce_logits"), keras.losses.BinaryCrossentropy(from_logits=True), lab, p),
        ("log_cosh", sk.loss("log_cosh"), keras.losses.LogCosh(), y, p),
    ]
    z = jax.random.normal(k1, (a.rows, a.classes), jnp.float32)
    labels = jax.random.randint(k2, (a.rows,), 0, a.classes)
    onehot = jax.nn.one_hot(labels, a.classes, dtype=jnp.float32)
    cases.append((f"cross_entropy ({a.rows}x{a.classes})", sk.loss("cross_entropy"),
                  keras.losses.CategoricalCrossentropy(from_logits=True), onehot, z))
    print("| loss | symloss (ms) | Keras (ms) | ratio | keras module (ms) | ratio |\n|---|---|---|---|---|---|")
    for name, ours, theirs, yy, pp in cases:
        km = via_keras_module(ours)
        t_ours, t_theirs, *t_km = best([step(L) for L in (ours, theirs, km) if L is not None], pp, yy,
                                       repeat=a.repeat)
        t_km = t_km[0] if t_km else None
        tail = f"{1e3 * t_km:.2f} | {t_km / t_theirs:.2f}" if t_km is not None else "- | -"
        print(f"| {name} | {1e3 * t_ours:.2f} | {1e3 * t_theirs:.2f} | {t_ours / t_theirs:.2f} | {tail} |",
              flush=True)
    # one epoch of a Dense model
    x = np.random.default_rng(0).normal(size=(a.samples, 32)).astype(np.float32)
    t = x @ np.linspace(-1, 1, 32).astype(np.float32)
    for name, ours, theirs in [("Dense epoch, mse", sk.loss("mse"), keras.losses.MeanSquaredError())]:
        models = []
        for loss in (ours, theirs):
            keras.utils.set_random_seed(0)
            m = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
            m.compile(optimizer="adam", loss=loss)
            m.fit(x, t, epochs=1, batch_size=1024, verbose=0)  # compile
            models.append(m)
        res = [[], []]
        for _ in range(a.repeat):  # best epoch of each, interleaved
            for m, r in zip(models, res):
                s = time.perf_counter()
                m.fit(x, t, epochs=1, batch_size=1024, verbose=0)
                r.append(time.perf_counter() - s)
        res = [min(r) for r in res]
        print(f"| {name} | {1e3 * res[0]:.1f} | {1e3 * res[1]:.1f} | {res[0] / res[1]:.2f} | - | - |")


if __name__ == "__main__":
    main()
