"""The jax backend: symloss.jax losses against symloss's Numba kernels and Optax.

jax.grad / jax.hessian of a symloss.jax loss run the generated custom_jvp
rules (symbolic gradient, symbolic Hessian / HVP); they must equal the
kernels' own gradient and Hessian in float64 for every catalog loss.
"""
import os

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

import symloss  # noqa: E402
import symloss.jax as sj  # noqa: E402
from symloss import catalog  # noqa: E402
from symloss.backends.jax import primitives as jax_primitives  # noqa: E402
from symloss.check.sampling import sample, sample_inputs  # noqa: E402
from symloss.errors import DerivationError, InputError  # noqa: E402
from symloss.spec import load_spec  # noqa: E402

SPECS = {n: load_spec(catalog.spec_path(n)) for n in catalog.names()}
ELEMENTWISE = sorted(n for n, s in SPECS.items() if s.kind == "elementwise")
ROW = sorted(n for n, s in SPECS.items() if s.kind == "row")
N = 16


def test_every_primitive_has_a_jax_implementation():
    assert jax_primitives.missing() == []


def test_import_symloss_does_not_import_jax():
    import subprocess
    import sys

    code = "import sys, symloss; symloss.load; assert 'jax' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})


def _sum_of(f, spec, data, preds):
    """The summed loss as a function of the predictions (targets closed over)."""
    names = sj.argument_names(spec)

    def total(*p):
        bound = dict(zip([i.name for i in spec.inputs], data))
        bound.update(zip(preds, p))
        return jnp.sum(f(*[bound[n] for n in names]))

    return total


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_grad_and_hessian_equal_the_kernels(name):
    spec = SPECS[name]
    L = symloss.load(name)
    data = sample_inputs(spec, N, seed=3)
    preds = [i.name for i in spec.inputs if i.role == "prediction"]
    pos = [[i.name for i in spec.inputs].index(p) for p in preds]
    f = sj.loss(name)
    total = _sum_of(f, spec, data, preds)
    args = [jnp.asarray(data[i]) for i in pos]
    argnums = tuple(range(len(preds)))
    # one compile: value, gradient and Hessian together
    values, g_jax, h_jax = jax.jit(lambda *a: (f(*[dict(zip([i.name for i in spec.inputs], data), **dict(zip(preds, a)))[n]
                                                  for n in sj.argument_names(spec)]),
                                               jax.grad(total, argnums)(*a), jax.hessian(total, argnums)(*a)))(*args)
    np.testing.assert_allclose(values, L.value(*data, reduction="none"), rtol=1e-12, atol=1e-300)
    g_ref = L.grad(*data, reduction="sum")
    g_ref = g_ref if isinstance(g_ref, tuple) else (g_ref,)
    for a, b in zip(g_jax, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    h_ref = L.hessian(*data)
    P = len(preds)
    for p in range(P):
        for q in range(P):
            block = np.asarray(h_jax[p][q])
            ref = h_ref if P == 1 else h_ref[p, q]
            np.testing.assert_allclose(np.diag(block), ref, rtol=1e-12, atol=1e-14)
            np.testing.assert_array_equal(block - np.diag(np.diag(block)), 0.0)  # elementwise: diagonal


@pytest.mark.parametrize("name", ROW)
def test_row_grad_and_hvp_equal_the_kernels(name):
    spec = SPECS[name]
    L = symloss.load(name)
    rng = np.random.default_rng(5)
    n, k = 4, 5
    data, names = [], []
    for i in spec.inputs:
        if i.shape == "class":
            continue
        shape = (n,) if i.shape == "scalar" else (n, k)
        if i.domain == "simplex":
            x = rng.dirichlet(np.ones(k), n)
        else:
            x = sample(i.domain, int(np.prod(shape)), rng).reshape(shape)
        data.append(x)
        names.append(i.name)
    preds = [i.name for i in spec.inputs if i.role == "prediction"]
    pos = [names.index(p) for p in preds]
    f = sj.loss(name)
    total = _sum_of(f, spec, data, preds)
    bound = dict(zip(names, data))
    np.testing.assert_allclose(f(*[bound[a] for a in sj.argument_names(spec)]),
                               L.value(*data, reduction="none"), rtol=1e-11, atol=1e-14)
    args = [jnp.asarray(data[i]) for i in pos]
    g_ref = L.grad(*data, reduction="sum")
    g_ref = g_ref if isinstance(g_ref, tuple) else (g_ref,)
    g_jax = jax.jit(jax.grad(total, argnums=tuple(range(len(preds)))))(*args)
    for a, b in zip(g_jax, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    v = [rng.normal(size=(n, k)) for _ in preds]
    hv_jax = jax.jit(lambda a, t: jax.jvp(jax.grad(total, argnums=tuple(range(len(preds)))), a, t)[1])(
        args, [jnp.asarray(x) for x in v])
    hv_ref = L.hvp(*data, v=v if len(preds) > 1 else v[0], reduction="sum")
    hv_ref = hv_ref if isinstance(hv_ref, tuple) else (hv_ref,)
    for a, b in zip(hv_jax, hv_ref):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_param_grad_and_mixed_derivative():
    spec = SPECS["general_robust"]
    L = symloss.load("general_robust")
    y, yhat = sample_inputs(spec, N, seed=1)
    f = sj.loss("general_robust")
    total = lambda yh, a: jnp.sum(f(yh, y, alpha=a))  # noqa: E731
    d_alpha = jax.grad(total, argnums=1)(jnp.asarray(yhat), 0.5)
    np.testing.assert_allclose(d_alpha, L.param_grad(y, yhat, alpha=0.5, reduction="sum")["alpha"], rtol=1e-11)
    # the mixed derivative d/dalpha of the gradient, against central differences of the kernels' gradient
    mixed = jax.jacfwd(jax.grad(total, argnums=0), argnums=1)(jnp.asarray(yhat), 0.5)
    e = 1e-6
    fd = (L.grad(y, yhat, alpha=0.5 + e, reduction="sum") - L.grad(y, yhat, alpha=0.5 - e, reduction="sum")) / (2 * e)
    np.testing.assert_allclose(mixed, fd, rtol=1e-6, atol=1e-8)


def test_jit_and_vmap():
    f = sj.loss("huber", delta=0.7)
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=(2, 3, 8))
    eager = f(p, t)
    np.testing.assert_allclose(jax.jit(f)(p, t), eager, rtol=1e-15)
    np.testing.assert_allclose(jax.vmap(f)(p, t), eager, rtol=1e-15)
    g = jax.jit(jax.vmap(jax.grad(lambda a, b: jnp.sum(f(a, b)))))(p, t)
    np.testing.assert_allclose(g, np.clip(p - t, -0.7, 0.7), rtol=1e-15)
    ce = sj.loss("cross_entropy")
    z = rng.normal(size=(3, 4, 5))
    lab = rng.integers(0, 5, (3, 4))
    np.testing.assert_allclose(jax.vmap(ce)(z, lab), ce(z, lab), rtol=1e-14)
    np.testing.assert_allclose(jax.jit(ce)(z, lab), ce(z, lab), rtol=1e-14)


def test_float32_stays_float32():
    f = sj.loss("log_cosh")
    p = jnp.ones(4, jnp.float32)
    assert f(p, jnp.zeros(4, jnp.float32)).dtype == jnp.float32
    assert jax.grad(lambda x: f(x, 0.0).sum())(p).dtype == jnp.float32


def test_log_cosh_matches_mpmath():
    """The branch-free expm1/log1p logcosh: a few ulp from 1e-8 to 1e4 (incl. the switch at |x| = 20)."""
    import mpmath

    mpmath.mp.dps = 80
    f = jax.jit(sj.loss("log_cosh"))
    xs = np.concatenate([[0.0, 1e-8, 1e-4, 1.0, 19.9, 20.0, 20.1, 25.0, 1e4], np.geomspace(1e-6, 1e3, 300)])
    xs = np.concatenate([xs, -xs])
    for dtype, rtol in ((np.float64, 4e-15), (np.float32, 2e-6)):
        x = xs.astype(dtype)
        got = np.asarray(f(jnp.asarray(x), jnp.zeros_like(x)))
        ref = np.array([float(mpmath.log(mpmath.cosh(mpmath.mpf(float(v))))) for v in x])
        np.testing.assert_allclose(got, ref, rtol=rtol, atol=0, err_msg=np.dtype(dtype).name)
        edge = np.asarray(f(jnp.asarray(np.array([np.inf, -np.inf, np.nan], dtype)), jnp.zeros(3, dtype)))
        assert edge[0] == np.inf and edge[1] == np.inf and np.isnan(edge[2])


def test_values_match_optax():
    rng = np.random.default_rng(7)
    p, t = rng.normal(size=(2, 64)) * 3
    lab01 = rng.integers(0, 2, 64).astype(float)
    sign = 2 * lab01 - 1
    close = dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sj.loss("huber", delta=1.5)(p, t), optax.huber_loss(p, t, delta=1.5), **close)
    np.testing.assert_allclose(sj.loss("log_cosh")(p, t), optax.log_cosh(p, t), **close)
    np.testing.assert_allclose(sj.loss("bce_logits")(p, lab01), optax.sigmoid_binary_cross_entropy(p, lab01), **close)
    np.testing.assert_allclose(sj.loss("hinge")(p, sign), optax.hinge_loss(p, sign), **close)
    np.testing.assert_allclose(sj.loss("focal_binary", gamma=2.0, alpha=0.25)(p, lab01),
                               optax.sigmoid_focal_loss(p, lab01, alpha=0.25, gamma=2.0), **close)
    z = rng.normal(size=(8, 6)) * 3
    lab = rng.integers(0, 6, 8)
    probs = rng.dirichlet(np.ones(6), 8)
    np.testing.assert_allclose(sj.loss("cross_entropy")(z, probs), optax.softmax_cross_entropy(z, probs), **close)
    np.testing.assert_allclose(sj.loss("cross_entropy")(z, lab),
                               optax.softmax_cross_entropy_with_integer_labels(z, lab), **close)
    np.testing.assert_allclose(sj.loss("poly1_cross_entropy", epsilon=2.0)(z, probs),
                               optax.losses.poly_loss_cross_entropy(z, probs, epsilon=2.0), **close)
    # gradients too (autodiff of optax's formulas vs the symbolic gradient)
    for x, ours, theirs in [(p, lambda x: sj.loss("huber")(x, t), lambda x: optax.huber_loss(x, t)),
                            (z, lambda x: sj.loss("cross_entropy")(x, lab),
                             lambda x: optax.softmax_cross_entropy_with_integer_labels(x, lab))]:
        np.testing.assert_allclose(jax.grad(lambda a: ours(a).sum())(x), jax.grad(lambda a: theirs(a).sum())(x),
                                   **close)


def test_stable_at_huge_logits():
    z = jnp.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    y = jnp.array([1.0, 1.0, 0.0, 0.0, 0.0])
    for name in ("bce_logits", "focal_binary"):
        f = sj.loss(name)
        total = lambda a: jnp.sum(f(a, y))  # noqa: E731
        v, g, h = jax.jit(lambda a: (total(a), jax.grad(total)(a), jax.hessian(total)(a)))(z)
        assert np.isfinite(v) and np.all(np.isfinite(g)) and np.all(np.isfinite(np.diag(h)))
    np.testing.assert_allclose(np.asarray(sj.loss("bce_logits")(z, y))[[0, 4]], [1e4, 1e4], rtol=1e-15)


def test_from_expr_and_spec_file(tmp_path):
    f = sj.from_expr("log(1 + (yhat - y)**2)", name="jax_cauchy_like")
    p, t = jnp.array([0.5, -2.0]), jnp.array([0.0, 1.0])
    np.testing.assert_allclose(f(p, t), np.log1p((p - t) ** 2), rtol=1e-15)
    np.testing.assert_allclose(jax.grad(lambda a: f(a, t).sum())(p), 2 * (p - t) / (1 + (p - t) ** 2), rtol=1e-15)
    path = tmp_path / "sq.toml"
    path.write_text('name = "sq"\nkind = "elementwise"\nloss = "c * (yhat - y)**2"\n[inputs]\ny = "target"\n'
                    'yhat = "prediction"\n[params]\nc = { default = 2.0, positive = true }\n')
    g = sj.loss(str(path), c=3.0)
    np.testing.assert_allclose(g(p, t), 3 * (p - t) ** 2, rtol=1e-15)
    np.testing.assert_allclose(jax.hessian(lambda a: g(a, t).sum())(p), np.diag([6.0, 6.0]), rtol=1e-15)


def test_errors():
    f = sj.loss("huber")
    p, t = jnp.zeros(3), jnp.ones(3)
    with pytest.raises(TypeError, match="not 'y'"):
        jax.grad(lambda y: f(p, y).sum())(t)
    with pytest.raises(TypeError, match="not 'delta'"):
        jax.grad(lambda d: f(p, t, delta=d).sum())(1.0)
    with pytest.raises(InputError, match="unknown parameter"):
        sj.loss("huber", dleta=1.0)
    with pytest.raises(InputError, match="delta"):
        sj.loss("huber", delta=-1.0)
    with pytest.raises(InputError, match="shapes do not match"):
        f(jnp.zeros(3), jnp.zeros(4))
    with pytest.raises(InputError, match="class indices"):
        sj.loss("cross_entropy")(jnp.zeros((2, 3)), jnp.array([0, 1, 2]))
    from symloss.backends import require
    from symloss.derive.primitives import softplus
    import sympy as sp

    require("jax", [softplus(sp.Symbol("x"))])  # implemented: no error
    with pytest.raises(DerivationError, match="jax backend"):
        from symloss.backends.jax.printer import JaxPrinter
        JaxPrinter().doprint(sp.besselj(0, sp.Symbol("x")))


def test_rendered_module_is_deterministic_and_spec_text_stays_data():
    from symloss.backends.jax.render import render_spec
    from symloss.spec import spec_from_table

    title = 'evil """ + __import__("os").system("echo pwned") + """ \u2028 # coding: latin-1'
    spec = spec_from_table({"name": "evil_title", "title": title, "kind": "elementwise",
                            "inputs": {"y": "target", "yhat": "prediction"}, "loss": "(yhat - y)**2"},
                           source="<expr>")
    a, b = render_spec(spec), render_spec(spec)
    assert a == b
    import ast

    tree = ast.parse(a)
    assert title in ast.get_docstring(tree)  # the title reads back as the text it is, inside the docstring
    assert "system" not in "".join(ast.unparse(n) for n in tree.body[1:])
    ns = {}
    exec(compile(a, "<evil>", "exec"), ns)  # and the module still works
    np.testing.assert_allclose(ns["loss"](jnp.array([1.0]), jnp.array([3.0])), [4.0])
