"""Where torch's autograd of the written-out formula gives NaN or inf, symloss's symbolic,
stabilised backward is finite and matches a 50-digit mpmath reference."""
import math

import mpmath
import pytest

torch = pytest.importorskip("torch")

import symloss.torch as st  # noqa: E402
from symloss.derive.primitives import barron_dalpha  # noqa: E402

D = torch.float64


def grads(loss, x, *rest):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(x, *rest), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    return g.detach(), h


def test_logcosh_at_1000():
    r = torch.tensor([-1000.0, 1000.0, 710.0], dtype=D)
    naive_x = r.clone().requires_grad_(True)
    (naive,) = torch.autograd.grad(torch.log(torch.cosh(naive_x)).sum(), naive_x)
    assert not torch.isfinite(naive).all()  # cosh overflows: inf / inf
    g, h = grads(st.loss("log_cosh", reduction="sum"), r, torch.zeros(3, dtype=D))
    with mpmath.workdps(50):
        want_g = [float(mpmath.tanh(mpmath.mpf(v))) for v in r.tolist()]
        want_h = [float(mpmath.sech(mpmath.mpf(v)) ** 2) for v in r.tolist()]
    assert g.tolist() == want_g and h.tolist() == want_h
    v = st.loss("log_cosh", reduction="none")(r, torch.zeros(3, dtype=D))
    with mpmath.workdps(50):
        assert v.tolist() == pytest.approx([float(mpmath.log(mpmath.cosh(x))) for x in r.tolist()], rel=1e-15)


def _focal_mp(z, y, gamma, alpha):
    p = 1 / (1 + mpmath.exp(-z))
    return -(alpha * y * (1 - p) ** gamma * mpmath.log(p) + (1 - alpha) * (1 - y) * p ** gamma * mpmath.log(1 - p))


def test_focal_at_logits_200():
    gamma, alpha = 0.5, 0.25
    z = torch.tensor([200.0, -200.0, 200.0, -200.0, 30.0], dtype=D)
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0], dtype=D)
    zn = z.clone().requires_grad_(True)
    p = torch.sigmoid(zn)
    naive = -(alpha * y * (1 - p) ** gamma * torch.log(p) + (1 - alpha) * (1 - y) * p ** gamma * torch.log(1 - p))
    (gn,) = torch.autograd.grad(naive.sum(), zn)
    assert not torch.isfinite(gn).all()
    g, _ = grads(st.loss("focal_binary", gamma=gamma, alpha=alpha, reduction="sum"), z, y)
    assert torch.isfinite(g).all()
    with mpmath.workdps(400):  # 1 - sigmoid(200) = e^-200 needs the digits
        for zi, yi, gi in zip(z.tolist(), y.tolist(), g.tolist()):
            want = mpmath.diff(lambda t: _focal_mp(t, mpmath.mpf(yi), mpmath.mpf(gamma), mpmath.mpf(alpha)),
                               mpmath.mpf(zi))
            assert gi == pytest.approx(float(want), rel=1e-9, abs=1e-300)


def _barron_mp(r, alpha, c=1):
    r, alpha = mpmath.mpf(r), mpmath.mpf(alpha)
    if alpha == 2:
        return r ** 2 / (2 * c ** 2)
    if alpha == 0:
        return mpmath.log(1 + r ** 2 / (2 * c ** 2))
    b = abs(alpha - 2)
    return b / alpha * ((r ** 2 / (c ** 2 * b) + 1) ** (alpha / 2) - 1)


@pytest.mark.parametrize("alpha", [0.0, 1e-9, -1e-9, 2.0 - 1e-7, 2.0, 2.0 + 1e-7])
def test_general_robust_near_alpha_0_and_2(alpha):
    r = torch.tensor([-3.0, 1e-4, 0.5, 20.0], dtype=D)
    y = torch.zeros(4, dtype=D)
    x = r.clone().requires_grad_(True)
    a = torch.tensor(alpha, dtype=D, requires_grad=True)
    v = st.loss("general_robust", alpha=a, reduction="none")(x, y)
    gx = torch.autograd.grad(v.sum(), x, retain_graph=True)[0]
    # one element at a time: at alpha = 2 the derivative is inf, and 0 * inf = NaN in a sum
    L = st.loss("general_robust", alpha=a, reduction="sum")
    ga = [torch.autograd.grad(L(x[i:i + 1], y[i:i + 1]), a)[0].item() for i in range(4)]
    # the written-out formula, differentiated by autograd
    xn, an = r.clone().requires_grad_(True), torch.tensor(alpha, dtype=D, requires_grad=True)
    b = torch.abs(an - 2)
    naive = b / an * (((xn - y) ** 2 / b + 1) ** (an / 2) - 1)
    gxn = torch.autograd.grad(naive.sum(), xn, retain_graph=True)[0]
    gan = [torch.autograd.grad(naive[i], an, retain_graph=True)[0].item() for i in range(4)]
    with mpmath.workdps(60):
        want_x = [float(mpmath.diff(lambda t: _barron_mp(t, alpha), mpmath.mpf(ri))) for ri in r.tolist()]
        assert gx.tolist() == pytest.approx(want_x, rel=1e-9, abs=1e-300)
        if alpha in (0.0, 2.0):
            # the formula is 0/0 there: autograd gives NaN (alpha = 2) or 0 (alpha = 0), both wrong
            assert not torch.allclose(gxn, torch.tensor(want_x, dtype=D))
        # the alpha-derivative's 50-digit reference (its limit at alpha = 0), as `symloss check` uses;
        # at alpha = 2 it is +inf for r != 0
        want_a = [float(barron_dalpha.mp(mpmath.mpf(ri), mpmath.mpf(alpha))) for ri in r.tolist()]
    assert ga == pytest.approx(want_a, rel=1e-8)
    # the formula's alpha-derivative at r = 1e-4 loses digits to cancellation (or is 0/0)
    assert not math.isfinite(gan[1]) or abs(gan[1] - want_a[1]) > 1e-6 * abs(want_a[1])
