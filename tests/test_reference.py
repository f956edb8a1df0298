"""The catalog against PyTorch and scikit-learn: values, autograd gradients, Hessians."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import hinge_loss, mean_pinball_loss

import symloss
from symloss.check.sampling import sample_inputs

N = 257


def torch_grad_hess(fn, target, pred):
    """Value, autograd gradient and per-element second derivative of a mean loss."""
    t = torch.tensor(target)
    p = torch.tensor(pred, requires_grad=True)
    value = fn(p, t)
    (g,) = torch.autograd.grad(value, p, create_graph=True)
    if g.requires_grad:
        (h,) = torch.autograd.grad(g.sum(), p, allow_unused=True)
    else:  # piecewise-linear: autograd's second derivative is identically 0
        h = None
    h = torch.zeros_like(p) if h is None else h
    return value.item(), g.detach().numpy(), h.detach().numpy(force=True)


TORCH = {
    "mse": lambda p, t: F.mse_loss(p, t),
    "mae": lambda p, t: F.l1_loss(p, t),
    "huber": lambda p, t: F.huber_loss(p, t, delta=1.0),
    "log_cosh": lambda p, t: torch.log(torch.cosh(p - t)).mean(),
    "bce": lambda p, t: F.binary_cross_entropy(p, t),
    "bce_logits": lambda p, t: F.binary_cross_entropy_with_logits(p, t),
    "hinge": lambda p, t: torch.clamp(1 - t * p, min=0).mean(),
    "quantile": lambda p, t: torch.maximum(0.5 * (t - p), (0.5 - 1) * (t - p)).mean(),
}


@pytest.mark.parametrize("name", sorted(TORCH))
def test_matches_pytorch_value_gradient_and_hessian(name):
    L = symloss.load(name)
    y, pred = sample_inputs(L.spec, N, seed=11)
    v, g, h = torch_grad_hess(TORCH[name], y, pred)
    mine_v, mine_g = L.value_and_grad(y, pred)
    np.testing.assert_allclose(mine_v, v, rtol=1e-12)
    np.testing.assert_allclose(mine_g, g, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(L.hessian(y, pred, reduction="mean"), h, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("delta", [0.3, 2.5])
def test_huber_delta_matches_pytorch(delta):
    L = symloss.load("huber")
    y, yhat = sample_inputs(L.spec, N, seed=3)
    v, g, _ = torch_grad_hess(lambda p, t: F.huber_loss(p, t, delta=delta), y, yhat)
    mine_v, mine_g = L.value_and_grad(y, yhat, delta=delta)
    np.testing.assert_allclose(mine_v, v, rtol=1e-12)
    np.testing.assert_allclose(mine_g, g, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("tau", [0.1, 0.5, 0.9])
def test_quantile_matches_sklearn_pinball(tau):
    L = symloss.load("quantile")
    y, yhat = sample_inputs(L.spec, N, seed=4)
    w = np.random.default_rng(4).uniform(0.5, 2, N)
    np.testing.assert_allclose(L.value(y, yhat, tau=tau), mean_pinball_loss(y, yhat, alpha=tau), rtol=1e-12)
    np.testing.assert_allclose(L.value(y, yhat, tau=tau, sample_weight=w),
                               mean_pinball_loss(y, yhat, alpha=tau, sample_weight=w), rtol=1e-12)


def test_hinge_matches_sklearn():
    L = symloss.load("hinge")
    y, yhat = sample_inputs(L.spec, N, seed=5)
    np.testing.assert_allclose(L.value(y, yhat), hinge_loss(y, yhat), rtol=1e-12)


def test_bce_logits_matches_pytorch_at_extreme_logits():
    L = symloss.load("bce_logits")
    z = np.array([-1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4])
    y = np.array([0.0, 1.0, 0.5, 1.0, 0.0, 0.2, 1.0])
    want = F.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(y), reduction="none").numpy()
    np.testing.assert_allclose(L.value(y, z, reduction="none"), want, rtol=1e-12, atol=1e-300)


def test_weighted_mean_matches_numpy_average_and_sklearn_loss():
    from sklearn._loss.loss import HalfSquaredError

    L = symloss.load("mse")
    y, yhat = sample_inputs(L.spec, N, seed=6)
    w = np.random.default_rng(6).uniform(0, 3, N)
    np.testing.assert_allclose(L.value(y, yhat, sample_weight=w), np.average((yhat - y) ** 2, weights=w), rtol=1e-12)
    # scikit-learn's half squared error: gradient w*(yhat - y), i.e. half of ours per element
    sk = HalfSquaredError()
    loss, grad = sk.loss_gradient(y_true=y, raw_prediction=yhat, sample_weight=w)
    per, g = L.value_and_grad(y, yhat, sample_weight=w, reduction="none")
    np.testing.assert_allclose(per, 2 * loss, rtol=1e-12)
    np.testing.assert_allclose(g, 2 * grad, rtol=1e-12)


def _barron_torch(alpha, c):
    """Barron's general loss written out directly (alpha not 0 or 2), for autograd."""
    b = abs(alpha - 2)
    return lambda p, t: (b / alpha * (((p - t) / c) ** 2 / b + 1) ** (alpha / 2) - b / alpha).mean()


@pytest.mark.parametrize("alpha", [-2.0, 0.5, 1.0, 1.5, 4.0])
def test_general_robust_matches_autograd_of_barrons_formula(alpha):
    L = symloss.load("general_robust")
    y, yhat = sample_inputs(L.spec, N, seed=5)
    v, g, h = torch_grad_hess(_barron_torch(alpha, 0.7), y, yhat)
    mine_v, mine_g = L.value_and_grad(y, yhat, alpha=alpha, c=0.7)
    np.testing.assert_allclose(mine_v, v, rtol=1e-12)
    np.testing.assert_allclose(mine_g, g, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(L.hessian(y, yhat, reduction="mean", alpha=alpha, c=0.7), h, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("alpha, other, scale", [
    (2.0, ("mse", {}), 0.5),                     # (r/c)^2 / 2 with c = 1
    (1.0, ("pseudo_huber", {"delta": 0.7}), 1 / 0.49),  # c^2 rho = pseudo-Huber with delta = c
    (0.0, ("cauchy", {"c": 0.7 * 2**0.5}), 1 / 0.49),   # c^2 rho = Cauchy with c' = sqrt(2) c
])
def test_general_robust_special_cases_are_the_named_losses(alpha, other, scale):
    """Barron's alpha = 2, 1, 0 are L2, pseudo-Huber and Cauchy up to a scale (alpha = 2 and 0 are limits)."""
    L = symloss.load("general_robust")
    name, params = other
    y, yhat = sample_inputs(L.spec, N, seed=9)
    c = 1.0 if alpha == 2.0 else 0.7
    got = L.value_and_grad(y, yhat, reduction="none", alpha=alpha, c=c)
    want = symloss.load(name).value_and_grad(y, yhat, reduction="none", **params)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, scale * b, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(L.hessian(y, yhat, alpha=alpha, c=c),
                               scale * symloss.load(name).hessian(y, yhat, **params), rtol=1e-12, atol=1e-300)


def _focal_torch(gamma, alpha):
    """torchvision.ops.sigmoid_focal_loss, written out (torchvision is not a dependency), mean."""
    def fn(z, y):
        p = torch.sigmoid(z)
        ce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
        p_t = p * y + (1 - p) * (1 - y)
        return ((alpha * y + (1 - alpha) * (1 - y)) * ce * (1 - p_t) ** gamma).mean()
    return fn


@pytest.mark.parametrize("gamma, alpha", [(2.0, 0.25), (0.5, 0.6), (0.0, 0.25)])
def test_focal_binary_matches_torchvision_formula_with_hard_and_soft_labels(gamma, alpha):
    """Labels 0 and 1 take the spec's specialised branches, soft labels (allowed by torchvision) the general one."""
    L = symloss.load("focal_binary")
    rng = np.random.default_rng(4)
    z = rng.normal(0, 3, N)
    y = rng.choice([0.0, 1.0, 0.3, 0.85], N)
    v, g, h = torch_grad_hess(_focal_torch(gamma, alpha), y, z)
    mine_v, mine_g = L.value_and_grad(y, z, gamma=gamma, alpha=alpha)
    np.testing.assert_allclose(mine_v, v, rtol=1e-12)
    np.testing.assert_allclose(mine_g, g, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(L.hessian(y, z, reduction="mean", gamma=gamma, alpha=alpha), h, rtol=1e-9, atol=1e-15)
