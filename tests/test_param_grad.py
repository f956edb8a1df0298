"""Derivatives in a parameter (``differentiable = true``): Barron's alpha for adaptive fitting."""
import numpy as np
import pytest
import torch

import symloss
from symloss import Loss
from symloss.check.grid import check_grid
from symloss.check.sampling import sample_inputs
from symloss.check.verify import check_finite_differences, check_reference
from symloss.errors import InputError, SpecError
from symloss.spec import spec_from_table

BARRON = "Piecewise((r**2 / (2 * c**2), alpha == 2), (log(1 + r**2 / (2 * c**2)), alpha == 0), (Abs(alpha - 2) / alpha * ((r**2 / (c**2 * Abs(alpha - 2)) + 1)**(alpha / 2) - 1), True))"


def _barron_table(name, derivative=None):
    table = {
        "name": name,
        "inputs": {"y": "target", "yhat": "prediction"},
        "params": {"alpha": {"default": 1.0, "differentiable": True}, "c": {"default": 1.0, "positive": True}},
        "let": {"r": "yhat - y"},
        "loss": BARRON,
    }
    if derivative:
        table["derivatives"] = {"alpha": derivative}
    return table


def test_general_robust_on_the_grid_at_extreme_shapes():
    """Every kernel far out in alpha and a hair from alpha = 2; d/dalpha against the 50-digit
    derivative of Barron's formula, which cancels to nothing there.  At alpha = -1e6 the gradient
    needs (1 + u)^(alpha/2 - 1) as exp((alpha/2 - 1) log1p(u)) (rewrite pow1p): pow(1 + u, .)
    multiplies the rounding of 1 + u by 5e5.  Constants stay outside the ratio that collect_terms
    groups, or (alpha - 1) r^2 / c^2 overflows float32 at alpha = -30, c = 0.1, |r| = 1e18."""
    loss = symloss.load("general_robust")
    every = [{"alpha": a, "c": c} for a, c in ((-30.0, 0.1), (2 + 1e-8, 1.0))]
    bad = [str(r) for r in check_grid(loss, param_sets=every) if not r.ok]
    # float32's Hessian at alpha = -1e6 overflows in (alpha - 1) r^2 at |r| = 1e18
    bad += [str(r) for r in check_grid(loss, dtypes=(np.float64,), param_sets=[{"alpha": -1e6, "c": 0.1}]) if not r.ok]
    assert not bad, "\n".join(bad)
    # here the other kernels have known limits (float32 value at alpha = 1e-8, |r| ~ 1e-18; r^2/(c^2 |alpha - 2|)
    # overflows at |r| = 1e150 with c = 0.1, and in float32 at |r| = 1e18 with |alpha - 2| = 2^-20);
    # the alpha-derivative has none
    # (float32(2 - 1e-8) is 2: 2 + 2^-20 is a float32 a hair from 2)
    alpha_only = [{"alpha": 1e-8, "c": 1.0}, {"alpha": 2 - 1e-8, "c": 0.1}, {"alpha": 2 + 2**-20, "c": 0.1}]
    results = [r for r in check_grid(loss, param_sets=alpha_only) if "param[alpha]" in r.check]
    assert len(results) == 2 and all(r.ok for r in results), "\n".join(map(str, results))


def test_alpha_derivative_is_infinite_at_alpha_2_and_zero_at_zero_residual():
    """d rho / d alpha at alpha = 2 diverges like (r^2/4) log(1/|alpha - 2|) for r != 0."""
    loss = symloss.load("general_robust")
    y = np.zeros(4)
    yhat = np.array([0.0, 1e-3, 5.0, np.nan])
    got = loss.param_grad(y, yhat, reduction="none", alpha=2.0)["alpha"]
    assert got[0] == 0 and np.isposinf(got[1]) and np.isposinf(got[2]) and np.isnan(got[3])
    near = loss.param_grad(y, yhat, reduction="none", alpha=2 - 1e-12)["alpha"]
    assert 0 < near[1] < near[2] < np.inf  # finite and growing on either side
    for alpha in (-1.0, 1.0, 3.0):  # NaN in, NaN out, on every path
        assert np.isnan(loss.param_grad(y, yhat, reduction="none", alpha=alpha)["alpha"][3])


@pytest.mark.parametrize("alpha", [-2.0, 0.5, 1.0, 1.5, 4.0])
def test_alpha_derivative_matches_autograd_of_barrons_formula(alpha):
    loss = symloss.load("general_robust")
    y, yhat = sample_inputs(loss.spec, 64, seed=5)
    yhat = yhat + np.where(np.abs(yhat - y) < 0.1, 0.5, 0.0)  # where the formula itself keeps its digits
    a = torch.tensor(alpha, dtype=torch.float64, requires_grad=True)
    b = torch.abs(a - 2)
    r = torch.tensor(yhat - y) / 0.7
    (b / a * ((r**2 / b + 1) ** (a / 2) - 1)).mean().backward()
    got = loss.param_grad(y, yhat, alpha=alpha, c=0.7)["alpha"]
    np.testing.assert_allclose(got, a.grad.item(), rtol=1e-10)


def test_alpha_derivative_where_r_squared_overflows():
    """s = r^2/c^2 = inf: the limit, 2/alpha^2 for alpha < 0 (the loss is bounded there), else +inf."""
    loss = symloss.load("general_robust")
    for dtype, r in ((np.float64, 1e160), (np.float32, 2e19)):
        y, yhat = np.zeros(1, dtype), np.array([r], dtype)
        for alpha, want in ((-2.0, 0.5), (-0.5, 8.0), (0.0, np.inf), (1.0, np.inf)):
            got = loss.param_grad(y, yhat, reduction="none", alpha=alpha)["alpha"][0]
            assert got == pytest.approx(want, rel=1e-6), (dtype, alpha, got)


def test_param_grad_reductions_and_weights():
    loss = symloss.load("general_robust")
    y, yhat = sample_inputs(loss.spec, 50, seed=3)
    w = np.random.default_rng(0).uniform(0.1, 2.0, 50)
    per = loss.param_grad(y, yhat, reduction="none", alpha=0.5)["alpha"]
    np.testing.assert_allclose(loss.param_grad(y, yhat, reduction="sum", alpha=0.5)["alpha"], per.sum(), rtol=1e-13)
    np.testing.assert_allclose(loss.param_grad(y, yhat, alpha=0.5)["alpha"], per.mean(), rtol=1e-13)
    np.testing.assert_allclose(loss.param_grad(y, yhat, sample_weight=w, alpha=0.5)["alpha"],
                               np.sum(w * per) / np.sum(w), rtol=1e-13)
    np.testing.assert_allclose(loss.param_grad(y, yhat, reduction="none", sample_weight=w, alpha=0.5)["alpha"],
                               w * per, rtol=1e-15)
    f32 = loss.param_grad(y.astype(np.float32), yhat.astype(np.float32), reduction="none", alpha=0.5)["alpha"]
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, per, rtol=1e-5, atol=1e-30)


def test_param_grad_needs_a_differentiable_parameter():
    with pytest.raises(InputError, match="differentiable"):
        symloss.load("huber").param_grad(np.zeros(3), np.ones(3))


def test_the_grid_catches_the_textbook_alpha_derivative():
    """Without the closed form the derivative of Barron's formula is derived and rewritten like any
    other; it cancels at small residuals, and the grid says so.  A wrong closed form fails the
    finite differences, the reference and the grid."""
    derived = Loss.from_spec(spec_from_table(_barron_table("barron_derived"), source="<test>"))
    bad = [r for r in check_grid(derived, dtypes=(np.float64,), param_sets=[{"alpha": 1.0, "c": 1.0}]) if not r.ok]
    assert [r.check.split(" at ")[0] for r in bad] == ["grid param[alpha] float64"]
    # 0.1% off, and finite at alpha = 2 where the derivative is infinite (the grid requires inf
    # there: a limit it finds divergent is compared, not skipped)
    wrong_form = "Piecewise((r**2 / 4, alpha == 2), (barron_dalpha(r / c, alpha) * 1.001, True))"
    wrong = Loss.from_spec(spec_from_table(_barron_table("barron_wrong", wrong_form), source="<test>"))
    failed = {r.check for r in check_finite_differences(wrong) + check_reference(wrong) if not r.ok}
    assert failed == {"param[alpha] vs finite diff", "param[alpha] float64 vs mpmath"}
    y, yhat = np.zeros(2), np.array([0.0, 0.5])
    assert wrong.param_grad(y, yhat, reduction="none", alpha=2.0)["alpha"][1] == 0.0625  # finite: wrong
    bad = [r.check for r in check_grid(wrong, dtypes=(np.float64,), param_sets=[{"alpha": 2.0, "c": 1.0}]) if not r.ok]
    assert [b.split(" at ")[0] for b in bad] == ["grid param[alpha] float64"]


def test_a_parameter_derivative_without_a_closed_form_is_derived():
    """Any parameter may be differentiable; the derivation differentiates the stable loss in it."""
    loss = Loss.from_expr("delta**2 * (sqrt(1 + ((yhat - y) / delta)**2) - 1)", name="pseudo_huber_delta",
                          params={"delta": {"default": 1.3, "positive": True, "differentiable": True}})
    results = check_finite_differences(loss) + check_reference(loss)
    assert {r.check for r in results} >= {"param[delta] vs finite diff", "param[delta] float64 vs mpmath"}
    assert all(r.ok for r in results), "\n".join(map(str, results))


@pytest.mark.parametrize("change, field", [
    ({"loss": "barron_dalpha(r, alpha)"}, "loss"),  # a closed form of a derivative, not a loss
    ({"params": {"alpha": 1.0, "p_alpha": 1.0}}, "params.p_alpha"),  # the generated output's name
    ({"inputs": {"y": "target", "w": "prediction"}}, "inputs.w"),  # the kernels' weight argument
    ({"derivatives": {"c": "1"}}, "derivatives.c"),  # c is not differentiable
    ({"derivatives": {"beta": "1"}}, "derivatives.beta"),  # no such parameter
    ({"derivatives": {"alpha": "r +"}}, "derivatives.alpha"),
    ({"params": {"alpha": {"default": 1.0, "differentiable": "yes"}, "c": 1.0}}, "params.alpha.differentiable"),
])
def test_bad_parameter_derivatives_name_the_field(change, field):
    table = {**_barron_table("bad"), **change}
    with pytest.raises(SpecError) as err:
        spec_from_table(table, source="bad.toml")
    assert "bad.toml" in str(err.value) and field in str(err.value)


def test_row_losses_reject_differentiable_parameters():
    table = {"name": "rowp", "kind": "row", "inputs": {"y": "target", "z": "prediction"},
             "params": {"t": {"default": 1.0, "differentiable": True}}, "loss": "Sum(y[k] * z[k] * t, k)"}
    with pytest.raises(SpecError, match="elementwise"):
        spec_from_table(table, source="rowp.toml")
