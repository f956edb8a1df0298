"""The keras backend (generated/keras/<name>.py): keras.ops code in ops.custom_gradient.

Each elementwise catalog loss's keras module, rendered from its spec through
the verified cache, runs on Keras's jax and torch backends (tensorflow too
where it is installed), one child process per backend since Keras fixes its
backend at import.  The per-element value must equal the Numba kernels'
``value(..., reduction="none")`` and the gradient Keras's backend computes
through ``custom_gradient`` (of a randomly weighted sum, so the upstream
gradient is exercised) must equal weight * the kernels' ``grad``: float64 and
float32, default parameters and parameters away from their defaults.
"""
import ast
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from symloss import catalog
from symloss.backends.keras import primitives as keras_primitives
from symloss.backends.keras.render import render_spec
from symloss.spec import load_spec

ELEMENTWISE = sorted(n for n in catalog.names() if load_spec(catalog.spec_path(n)).kind == "elementwise")


def test_every_primitive_has_a_keras_implementation():
    assert keras_primitives.missing() == []


def test_row_losses_get_no_keras_module():
    assert render_spec(load_spec(catalog.spec_path("cross_entropy"))) is None


@pytest.mark.parametrize("name", ["general_robust", "tweedie", "huber"])
def test_module_imports_only_math_and_keras(name):
    tree = ast.parse(render_spec(load_spec(catalog.spec_path(name))))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported == {"math", "keras"}


CHILD = textwrap.dedent('''
    import sys
    import numpy as np
    import keras
    import symloss
    from symloss import catalog
    from symloss.check.sampling import sample_inputs
    from symloss.framework_modules import FrameworkModules
    from symloss.spec import load_spec

    backend = keras.backend.backend()
    names = sys.argv[1].split(",")
    modules = FrameworkModules("keras")

    if backend == "jax":
        import jax
        import jax.numpy as jnp
        assert jax.config.jax_enable_x64

        def run(fn, preds, w):
            def total(*p):
                out = fn(*p)
                return jnp.sum(out * w), out
            (_, out), g = jax.value_and_grad(total, argnums=tuple(range(len(preds))), has_aux=True)(
                *[jnp.asarray(p) for p in preds])
            return np.asarray(out), [np.asarray(x) for x in g]
    elif backend == "torch":
        import torch

        def run(fn, preds, w):
            ps = [torch.tensor(p, requires_grad=True) for p in preds]
            out = fn(*ps)
            (out * torch.tensor(w)).sum().backward()
            return out.detach().numpy(), [p.grad.numpy() for p in ps]
    else:
        import tensorflow as tf

        def run(fn, preds, w):
            ps = [tf.constant(p) for p in preds]
            with tf.GradientTape() as tape:
                for p in ps:
                    tape.watch(p)
                out = fn(*ps)
                total = tf.reduce_sum(out * w)
            return out.numpy(), [g.numpy() for g in tape.gradient(total, ps)]

    def other(p):
        # a valid value away from the default
        for v in (p.default * 1.3 + 0.1, p.default * 0.7, p.default + 0.5, p.default - 0.5, 0.5):
            if v != p.default and p.violation(v) is None:
                return v
        raise AssertionError(p)

    checked = 0
    for name in names:
        spec = load_spec(catalog.spec_path(name))
        module = modules.module_for_spec(spec)
        L = symloss.load(name)
        pred_names = [i.name for i in spec.inputs if i.role == "prediction"]
        data = [x.reshape(4, 16) for x in sample_inputs(spec, 64, seed=5)]
        w = np.random.default_rng(1).uniform(0.5, 2.0, (4, 16))
        for dtype, nondefault in ((np.float64, False), (np.float64, True), (np.float32, True)):
            params = {p.name: (other(p) if nondefault else p.default) for p in spec.params}
            x = [d.astype(dtype) for d in data]
            bound = dict(zip([i.name for i in spec.inputs], x))

            def fn(*p):
                b = {**bound, **dict(zip(pred_names, p))}
                return module.loss(*[b[n] for n in module.INPUTS], *[params[q.name] for q in spec.params])

            out, g = run(fn, [bound[n] for n in pred_names], w.astype(dtype))
            assert out.dtype == dtype and all(gi.dtype == dtype for gi in g), (name, out.dtype)
            # reference: the float64 kernels at the same (rounded) inputs
            x64 = [xi.astype(np.float64) for xi in x]
            ref = L.value(*x64, reduction="none", **params)
            gref = L.grad(*x64, reduction="sum", **params)
            gref = gref if isinstance(gref, tuple) else (gref,)
            where = f"{name} {np.dtype(dtype).name} params={params}"

            def close(a, b, what):
                # float32: a sum of terms of size ~max|b| (tweedie) rounds at 1e-7 of that size, not of the result
                tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else \
                    dict(rtol=1e-5, atol=1e-5 * max(1.0, np.max(np.abs(b))))
                np.testing.assert_allclose(a, b, **tol, err_msg=f"{where} {what}")

            close(out, ref, "value")
            for k, (a, b) in enumerate(zip(g, gref)):
                close(a, w * b, f"d/d{pred_names[k]}")
            checked += 1
    print("OK", backend, checked)
''')


def _backends():
    out = []
    for b in ("jax", "torch", "tensorflow"):
        ok = importlib.util.find_spec("keras") is not None and importlib.util.find_spec(b) is not None
        out.append(pytest.param(b, marks=pytest.mark.skipif(not ok, reason=f"keras and {b} are needed")))
    return out


@pytest.mark.parametrize("backend", _backends())
def test_keras_modules_equal_the_kernels(backend):
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_ENABLE_X64": "1", "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, "-c", CHILD, ",".join(ELEMENTWISE)], env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0 and f"OK {backend} {3 * len(ELEMENTWISE)}" in out.stdout, \
        (out.stdout[-2000:], out.stderr[-6000:])
