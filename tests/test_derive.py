"""Derivation: gradients, subgradient policy at kinks, stability rewrites, LaTeX."""
import mpmath
import numpy as np
import pytest
import sympy as sp

from symloss.check.reference import Reference
from symloss.derive import Derivation
from symloss.derive.primitives import mpmath_namespace
from symloss.errors import DerivationError
from symloss.ir import build_ir
from symloss.spec import spec_from_table
from symloss.runtime import load
from conftest import ELEMENTWISE as CATALOG


def derivation(loss, inputs=None, params=None, let=None):
    t = {"name": "t", "inputs": inputs or {"y": "target", "yhat": "prediction"}, "loss": loss,
         "params": params or {}, "let": let or {}}
    return Derivation(spec_from_table(t, source="<test>"))


def subs_eval(expr, d, **values):
    syms = d.spec.symbols
    return float(expr.subs({syms[k]: v for k, v in values.items()}))


def test_smooth_gradient_and_hessian_match_sympy():
    d = derivation("exp(yhat) * (yhat - y)**3 + exp(-2*yhat) * y")
    y, yhat = d.spec.symbols["y"], d.spec.symbols["yhat"]
    f = sp.exp(yhat) * (yhat - y) ** 3 + sp.exp(-2 * yhat) * y
    modules = [mpmath_namespace(), "mpmath"]
    pairs = [(d.stable.grads[0], sp.diff(f, yhat)), (d.stable.hessian[(0, 0)], sp.diff(f, yhat, 2))]
    with mpmath.workdps(40):
        for mine, want in pairs:
            a = sp.lambdify([y, yhat], mine, modules=modules)
            b = sp.lambdify([y, yhat], want, modules=modules)
            for yv, xv in [(0.3, 0.1), (-1.0, 2.5), (2.0, -0.4), (0.5, 0.5)]:
                assert abs(a(mpmath.mpf(yv), mpmath.mpf(xv)) - b(mpmath.mpf(yv), mpmath.mpf(xv))) < mpmath.mpf(10) ** -30


@pytest.mark.parametrize(
    "loss, at, expected",
    [
        ("abs(yhat - y)", {"y": 1.0, "yhat": 1.0}, 0.0),  # MAE at r = 0
        ("max(0, 1 - y*yhat)", {"y": 1.0, "yhat": 1.0}, 0.0),  # hinge kink
        ("max(0.3*(y - yhat), -0.7*(y - yhat))", {"y": 2.0, "yhat": 2.0}, 0.0),  # pinball at 0
        ("max(yhat, 0)", {"y": 0.0, "yhat": 0.0}, 0.0),  # relu, as torch
        ("max(yhat, 2*yhat)", {"y": 0.0, "yhat": 0.0}, 1.0),  # same-sign: the smaller slope
        ("min(yhat, 0)", {"y": 0.0, "yhat": 0.0}, 0.0),
    ],
)
def test_subgradient_at_kinks_is_minimum_norm(loss, at, expected):
    d = derivation(loss)
    assert subs_eval(d.stable.grads[0], d, **at) == expected
    for expr in [*d.stable.grads, *d.stable.hessian.values()]:
        assert not expr.has(sp.DiracDelta) and not expr.has(sp.Heaviside)


def test_subgradient_away_from_kinks():
    d = derivation("max(0, 1 - y*yhat)")
    assert subs_eval(d.stable.grads[0], d, y=-1.0, yhat=0.5) == 1.0
    assert subs_eval(d.stable.grads[0], d, y=1.0, yhat=2.0) == 0.0


def test_sign_derivative_is_zero_not_a_delta():
    d = derivation("abs(yhat - y)")
    assert d.stable.hessian[(0, 0)] == 0


@pytest.mark.parametrize(
    "loss, rule",
    [
        ("log(1 + exp(yhat))", "softplus"),
        ("log(cosh(yhat - y))", "logcosh"),
        ("-log(1/(1 + exp(-yhat)))", "log_sigmoid"),
        ("y*log(yhat)", "xlogy"),
        ("log(1 + yhat**2)", "log1p"),
        ("exp(yhat) - 1", "expm1"),
        ("1/(1 + exp(-yhat)) - y", "sigmoid"),
        ("tanh(yhat)", "tanh"),
    ],
)
def test_rewrites_fire_and_preserve_the_function(loss, rule):
    d = derivation(loss)
    assert rule in d.rewrites
    ref = Reference(d)  # the unrewritten derivation
    modules = [mpmath_namespace(), "mpmath"]
    f = sp.lambdify(ref.args, d.stable.loss, modules=modules)
    g = sp.lambdify(ref.args, d.stable.grads[0], modules=modules)
    rng = np.random.default_rng(0)
    with mpmath.workdps(40):
        for y, yhat in rng.uniform(0.1, 2.0, (5, 2)):
            args = [mpmath.mpf(y), mpmath.mpf(yhat)]
            assert abs(f(*args) - ref.loss(*args)) < mpmath.mpf(10) ** -30
            assert abs(g(*args) - ref.grads[0](*args)) < mpmath.mpf(10) ** -30


def test_pow1p_writes_symbolic_powers_of_one_plus_u_with_log1p_and_keeps_fixed_ones():
    """(1 + u)^p for a parameter p is exp(p log1p(u)) in every final kernel expression: pow(1 + u, p)
    loses |p| ulps to the rounding of 1 + u.  Fixed powers (a square root) stay: they lose nothing."""
    d = derivation("((yhat - y)**2 / k + 1)**(a / 2)", params={"a": 1.0, "k": {"default": 1.0, "positive": True}})
    assert "pow1p" in d.rewrites and "collect_terms" in d.rewrites  # collected first, then rewritten
    outs = [d.stable.loss, *d.stable.grads, *d.stable.hessian.values()]
    one_plus = [e for o in outs for e in sp.preorder_traversal(o) if isinstance(e, sp.Pow) and e.exp.free_symbols]
    assert not one_plus and all(o.has(sp.exp) for o in outs[1:])
    assert "pow1p" not in derivation("sqrt(1 + (yhat - y)**2)").rewrites
    # a = -1e6, u = 2.25e-6: pow(1 + u, a/2 - 1) would be ~5e-11 off
    from symloss import Loss

    loss = Loss.from_expr("((yhat - y)**2 / k + 1)**(a / 2)", name="pow1p_test",
                          params={"a": -1e6, "k": {"default": 1.0, "positive": True}})
    got = loss.grad(np.array([0.0]), np.array([1.5e-3]), reduction="sum")[0]
    import mpmath

    with mpmath.workdps(40):
        want = float(-1e6 / 2 * (1 + mpmath.mpf(1.5e-3) ** 2) ** (-1e6 / 2 - 1) * 2 * mpmath.mpf(1.5e-3))
    assert got == pytest.approx(want, rel=1e-13)


def test_pow_quotient_keeps_a_power_whose_numerator_underflows():
    """d/dyhat yhat**a comes out as a yhat**a / yhat: where yhat**a underflows (yhat = 1e-300,
    a = 1.3) the quotient was 0 instead of 1.3e-90.  powdiv computes yhat**(a - 1) there; at
    yhat = 0 it keeps the quotient's convention, 0 where the numerator yhat**a is 0."""
    from symloss import Loss

    d = derivation("yhat**a - y*yhat", params={"a": 1.3})
    assert "pow_quotient" in d.rewrites
    loss = Loss.from_expr("yhat**a - y*yhat", name="powdiv_test", params={"a": 1.3},
                          inputs={"y": "target", "yhat": {"role": "prediction", "domain": "positive"}})
    for dtype, xs, rtol in ((np.float64, [1e-300, 1e-200, 1e-30, 0.5, 3.0], 1e-13),
                            (np.float32, [1e-35, 1e-30, 1e-20, 0.5, 3.0], 1e-5)):
        yhat = np.array([*xs, 0.0], dtype)
        g, h = loss.grad_hessian(np.zeros_like(yhat), yhat)
        with mpmath.workdps(30):
            x = [mpmath.mpf(float(v)) for v in yhat[:-1]]
            np.testing.assert_allclose(g[:-1], [float(1.3 * v**0.3) for v in x], rtol=rtol)
            np.testing.assert_allclose(h[:-1], [float(1.3 * 0.3 * v**-0.7) for v in x], rtol=rtol)
        assert g[-1] == 0 and h[-1] == 0


def _exponent(name, args):
    """t of the e^t inside the primitive: its rounding costs |t| ulp, as for any pow."""
    if name == "boxcox1p":
        u, a = args
        return a * np.log1p(u)
    x, b, g, k = args
    return (g - k) * np.log(abs(b)) if b else 0.0


@pytest.mark.parametrize("name", ["boxcox1p", "powdiv"])
def test_helpers_of_the_power_primitives_match_mpmath(name):
    """Both sources (the plain one the GPU compiles, the CPU's branch-free one on the math
    library) against 40-digit mpmath.  boxcox1p: where a log1p(u) is below the smallest normal,
    at a = 0, at u = inf.  powdiv: where b^g, b^k or x b^g under- or overflow,
    at b = 0, x = 0, b < 0 (real for an integer g only)."""
    import itertools
    import math

    import numba

    from symloss.derive import primitives as P
    from symloss.mathlib import kernels

    prim = getattr(P, name)
    if name == "boxcox1p":
        grid = itertools.product([1e-36, 1e-18, 1e-8, 0.3, -0.5, 7.0, 1e30, 0.0, np.inf],
                                 [1e-8, -1e-8, 9e-4, -1.1e-3, 0.5, -3.0, 0.0, 5.0])
    else:
        grid = itertools.product([1.5, -2.0, 1e-300, 0.0],
                                 [1e-300, 1e-170, 1e-36, 1e-8, 0.5, 3.0, 1e160, 0.0, -1e-100, -0.5],
                                 [1.3, 0.5, 2.0, 3.0, 4.0, 3.7, -0.5, 0.0], [1.0, 2.0])
    points = list(grid)
    library = {n: getattr(kernels, n) for n in ("fexp", "fexpm1", "flog", "flog1p")}
    from symloss.backends.numba_cpu.primitives import SOURCES

    for source in (SOURCES[name].helper, SOURCES[name].vector_helper):
        scope = {"math": math, "np": np, **library}
        exec(source, scope)
        fn = numba.njit(error_model="numpy")(scope[name])  # as in the generated modules
        for dtype, rtol in ((np.float64, 4e-16), (np.float32, 2e-7)):
            fmax, tiny = float(np.finfo(dtype).max), float(np.finfo(dtype).tiny)
            for args in points:
                if any(np.isfinite(a) and a != 0 and not tiny <= abs(a) <= fmax for a in args):
                    continue  # beyond float32's range
                xs = [float(dtype(a)) for a in args]
                got = float(fn(*(dtype(x) for x in xs), dtype))
                with mpmath.workdps(40):
                    want = prim.mp(*map(mpmath.mpf, xs))
                    if name == "powdiv" and xs[1] != 0 and abs(mpmath.mpf(xs[1]) ** (xs[2] - xs[3])) > fmax:
                        continue  # b^(g - k) alone beyond the float range: a tiny x does not bring it back
                if isinstance(want, mpmath.mpc):  # b < 0 with g not an integer
                    assert want.imag == 0 or np.isnan(got), (name, dtype, args, got)
                    if want.imag != 0:
                        continue
                    want = want.real
                if mpmath.isinf(want) or abs(want) > fmax:
                    assert np.isinf(got) and (got > 0) == (want > 0), (name, dtype, args, got)
                else:
                    allowed = rtol * (1 + abs(_exponent(name, xs))) * abs(want) + tiny
                    assert abs(got - want) <= allowed, (name, dtype, args, got, float(want))


def test_collect_terms_merges_the_chain_rule_terms_without_expanding_the_residual():
    """d2/dr2 (1 + r^2/k)^(a/2) has (a-2) r^2 + r^2 in it; in floating point that is 0 or garbage
    for large r unless (a-1) r^2 is formed symbolically, and (yhat - y)^2 must stay one square."""
    d = derivation("((yhat - y)**2 / k + 1)**(a / 2)", params={"a": 1.0, "k": {"default": 1.0, "positive": True}})
    assert "collect_terms" in d.rewrites
    h = d.stable.hessian[(0, 0)]
    y, yhat, a = (d.spec.symbols[n] for n in ("y", "yhat", "a"))
    assert not h.has(y * yhat) and not h.has(y**2)
    assert any(f == a - 1 for f in h.atoms(sp.Add))
    # a = 1, r = 1e20: 1/k (1 + r^2/k)^(-3/2) ~ 1e-60, not 0 (the naive form gives 0)
    from symloss import Loss

    loss = Loss.from_expr("((yhat - y)**2 / k + 1)**(a / 2)", params={"a": 1.0, "k": {"default": 1.0, "positive": True}})
    got = loss.hessian(np.array([0.0]), np.array([1e20]))[0]
    assert got == pytest.approx(1e-60, rel=1e-14)


def test_collect_terms_within_a_sum_and_with_float_exponents():
    """Only the terms sharing (1 + yhat^2)^0.25's powers collect (the sigmoid term stays
    apart); the target factor 1 - y stays a factor; the Hessian at yhat = 1e150 is
    -(1 - y)/4 |yhat|^-1.5, not the 0.5|yhat|^-1.5 left when the second term underflows."""
    from symloss import Loss

    loss = Loss.from_expr("y * log(1 + exp(-yhat)) + (1 - y) * (yhat**2 + 1)**0.25", name="collect_mix")
    assert "collect_terms" in loss.derivation.rewrites
    h = loss.hessian(np.array([0.0, 0.75]), np.array([1e150, -1e150]))
    np.testing.assert_allclose(h, [-0.25e-225, -0.0625e-225], rtol=1e-14)


def test_division_by_a_squared_sum_keeps_its_parentheses():
    """-2r/(r^2 + 1)^2 printed stepwise as x/(r*r + 1)/(r*r + 1): the minus sign gives the
    product an Add's precedence in SymPy, which once dropped the parentheses."""
    from symloss import Loss

    loss = Loss.from_expr("(yhat - y)**2 / (1 + (yhat - y)**2)", name="rational_bump")
    y, yhat = np.array([0.5, 1.0, -2.0]), np.array([1.5, -1.0, 3.0])
    r = yhat - y
    np.testing.assert_allclose(loss.grad(y, yhat, reduction="none"), 2 * r / (1 + r**2) ** 2, rtol=1e-15)
    np.testing.assert_allclose(loss.hessian(y, yhat), (2 - 6 * r**2) / (1 + r**2) ** 3, rtol=1e-14)


def test_piecewise_without_default_is_rejected_by_the_derivation():
    y = sp.Symbol("y", real=True)
    from symloss.derive import nonsmooth

    with pytest.raises(DerivationError, match="default branch"):
        nonsmooth.prepare(sp.Piecewise((y, y > 0)))


def test_several_predictions_give_full_hessian():
    d = derivation("log(var)/2 + (y - mu)**2/(2*var)",
                   inputs={"y": "target", "mu": "prediction", "var": {"role": "prediction", "domain": "positive"}})
    s = d.spec.symbols
    assert set(d.stable.hessian) == {(0, 0), (0, 1), (1, 1)}
    assert sp.simplify(d.stable.hessian[(0, 1)] - (s["y"] - s["mu"]) / s["var"] ** 2) == 0


@pytest.mark.parametrize("name", CATALOG)
def test_cse_is_deterministic_and_latex_complete(name):
    loss = load(name)
    a = build_ir(Derivation(loss.spec))
    b = build_ir(Derivation(loss.spec))
    assert a == b
    latex = loss.latex
    assert set(latex) == {"loss", *(f"grad_{p}" for p in loss.predictions),
                          *(f"hessian_{p}_{q}" for i, p in enumerate(loss.predictions) for q in loss.predictions[i:]),
                          *(f"param_{p.name}" for p in loss.spec.differentiable_params)}
    assert all(isinstance(v, str) and v for v in latex.values())
    assert "DiracDelta" not in "".join(latex.values())
