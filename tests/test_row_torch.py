"""The row catalog against PyTorch: values, autograd gradients and Hessians, every reduction."""
import numpy as np
import pytest

import symloss

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(0)
N, K = 9, 6


def t64(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def reduce(per, reduction, w=None):
    if reduction == "none":
        return per if w is None else per * w
    if reduction == "sum":
        return per.sum() if w is None else (per * w).sum()
    return per.mean() if w is None else (per * w).sum() / w.sum()


def compare(L, arrays, torch_fn, *, grads_of, reduction="mean", params=None, rtol=1e-12):
    """L(arrays) against torch_fn(tensors): value and gradients w.r.t. the inputs at ``grads_of``."""
    params = params or {}
    tensors = [t64(a).requires_grad_(i in grads_of) for i, a in enumerate(arrays)]
    want = torch_fn(*tensors)
    v, g = L.value_and_grad(*arrays, reduction=reduction, **params)
    np.testing.assert_allclose(v, want.detach().numpy(), rtol=rtol, atol=1e-14)
    want.sum().backward()
    g = g if isinstance(g, tuple) else (g,)
    for got, i in zip(g, grads_of):
        np.testing.assert_allclose(got, tensors[i].grad.numpy(), rtol=rtol, atol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_cross_entropy_with_probabilities(reduction, smoothing):
    L = symloss.load("cross_entropy")
    z, y = RNG.normal(size=(N, K)) * 3, RNG.dirichlet(np.ones(K), N)
    w = RNG.uniform(0.5, 2, K)
    for weight in (None, w):
        compare(L, [y, z], lambda yy, zz: F.cross_entropy(
            zz, yy, weight=None if weight is None else t64(weight), reduction=reduction, label_smoothing=smoothing),
            grads_of=[1], reduction=reduction, params={"label_smoothing": smoothing, "weight": weight})


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_cross_entropy_with_class_indices_weight_and_ignore_index(reduction, smoothing):
    L = symloss.load("cross_entropy")
    z, t = RNG.normal(size=(N, K)) * 3, RNG.integers(0, K, N)
    t[[2, 5]] = -100
    w = RNG.uniform(0.5, 2, K)
    for weight in (None, w):
        zt = t64(z).requires_grad_(True)
        want = F.cross_entropy(zt, torch.tensor(t), weight=None if weight is None else t64(weight),
                               reduction=reduction, label_smoothing=smoothing)
        v, g = L.value_and_grad(t, z, reduction=reduction, label_smoothing=smoothing, weight=weight)
        np.testing.assert_allclose(v, want.detach().numpy(), rtol=1e-12, atol=1e-14)
        want.sum().backward()
        np.testing.assert_allclose(g, zt.grad.numpy(), rtol=1e-12, atol=1e-14)
    # another ignore_index, and batch dimensions before the class axis
    t2 = t.copy()
    t2[[2, 5]] = 3
    z3, t3 = z.reshape(3, 3, K), t2.reshape(3, 3)
    want = F.cross_entropy(t64(z3).permute(0, 2, 1), torch.tensor(t3), ignore_index=3, reduction="none")
    np.testing.assert_allclose(L.value(t3, z3, reduction="none", ignore_index=3), want.numpy(), rtol=1e-12)


def test_cross_entropy_hessian_matches_autograd():
    L = symloss.load("cross_entropy")
    z, t = RNG.normal(size=(4, K)), RNG.integers(0, K, 4)
    H = L.hessian(t, z, label_smoothing=0.1)
    for r in range(4):
        want = torch.autograd.functional.hessian(
            lambda zz: F.cross_entropy(zz[None], torch.tensor(t[r : r + 1]), label_smoothing=0.1), t64(z[r]))
        np.testing.assert_allclose(H[r], want.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(L.hessian_diag(t, z, label_smoothing=0.1), np.einsum("njj->nj", H), atol=1e-15)
    v = RNG.normal(size=z.shape)
    np.testing.assert_allclose(L.hvp(t, z, v=v, label_smoothing=0.1), np.einsum("njk,nk->nj", H, v), atol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_with_class_indices(reduction):
    L = symloss.load("nll")
    logp = np.log(RNG.dirichlet(np.ones(K), N))
    t = RNG.integers(0, K, N)
    t[4] = -100
    w = RNG.uniform(0.5, 2, K)
    for weight in (None, w):
        lt = t64(logp).requires_grad_(True)
        want = F.nll_loss(lt, torch.tensor(t), weight=None if weight is None else t64(weight), reduction=reduction)
        v, g = L.value_and_grad(t, logp, reduction=reduction, weight=weight)
        np.testing.assert_allclose(v, want.detach().numpy(), rtol=1e-12)
        want.sum().backward()
        np.testing.assert_allclose(g, lt.grad.numpy(), rtol=1e-12)


def test_kl_divergence_is_torch_kl_div_of_log_q():
    L = symloss.load("kl_divergence")
    p, q = RNG.dirichlet(np.ones(K), N), RNG.dirichlet(np.ones(K), N)
    p[0, 2] = 0.0  # 0 log 0 = 0
    p[0] /= p[0].sum()
    compare(L, [p, q], lambda pp, qq: F.kl_div(torch.log(qq), pp, reduction="none").sum(-1), grads_of=[1],
            reduction="none")


def test_categorical_cross_entropy_and_hinge_and_poly1_and_focal():
    y = RNG.dirichlet(np.ones(K), N)
    p = RNG.dirichlet(np.ones(K), N)
    compare(symloss.load("categorical_cross_entropy"), [y, p], lambda yy, pp: -(yy * torch.log(pp)).sum(-1),
            grads_of=[1], reduction="none")
    onehot = np.eye(K)[RNG.integers(0, K, N)]
    z = RNG.normal(size=(N, K)) * 2

    def hinge(yy, zz):
        pos = (yy * zz).sum(-1)
        neg = ((1 - yy) * zz).max(-1).values
        return torch.clamp(neg - pos + 1, min=0)

    compare(symloss.load("categorical_hinge"), [onehot, z], hinge, grads_of=[1], reduction="none")

    def poly1(yy, zz, eps=1.0):
        ce = -(yy * F.log_softmax(zz, -1)).sum(-1)
        return ce + eps * (1 - (yy * F.softmax(zz, -1)).sum(-1))

    compare(symloss.load("poly1_cross_entropy"), [y, z], poly1, grads_of=[1], reduction="none")

    def focal(yy, zz, gamma=2.0):
        logp = F.log_softmax(zz, -1)
        return -(yy * (1 - logp.exp()) ** gamma * logp).sum(-1)

    compare(symloss.load("focal"), [y, z], focal, grads_of=[1], reduction="none")
    compare(symloss.load("focal"), [y, z], lambda yy, zz: focal(yy, zz, 0.5), grads_of=[1], reduction="none",
            params={"gamma": 0.5})


def test_dice_and_tversky():
    y = RNG.integers(0, 2, (N, K)).astype(float)
    p = RNG.uniform(0.02, 0.98, (N, K))

    def dice(yy, pp, s=1.0):
        return 1 - (2 * (yy * pp).sum(-1) + s) / (yy.sum(-1) + pp.sum(-1) + s)

    def tversky(yy, pp, a=0.3, b=0.7, s=1.0):
        tp = (yy * pp).sum(-1)
        return 1 - (tp + s) / (tp + a * ((1 - yy) * pp).sum(-1) + b * (yy * (1 - pp)).sum(-1) + s)

    compare(symloss.load("dice"), [y, p], dice, grads_of=[1], reduction="none")
    compare(symloss.load("dice"), [y, p], lambda yy, pp: dice(yy, pp).mean(), grads_of=[1])
    compare(symloss.load("tversky"), [y, p], tversky, grads_of=[1], reduction="none", params={"alpha": 0.3, "beta": 0.7})
    # alpha = beta = 1/2 is Dice when nothing smooths (smooth enters Tversky at half Dice's weight)
    compare(symloss.load("tversky"), [y, p], lambda yy, pp: dice(yy, pp, 0.0), grads_of=[1], reduction="none",
            params={"smooth": 0.0})


def test_metric_learning_losses_give_gradients_for_every_input():
    a, p, n = (RNG.normal(size=(N, K)) for _ in range(3))

    def triplet(aa, pp, nn, margin=0.2):
        return torch.clamp(((aa - pp) ** 2).sum(-1) - ((aa - nn) ** 2).sum(-1) + margin, min=0)

    compare(symloss.load("triplet"), [a, p, n], triplet, grads_of=[0, 1, 2], reduction="none")
    y = RNG.integers(0, 2, N).astype(float)

    def contrastive(yy, x1, x2, margin=1.0):
        d = torch.sqrt(((x1 - x2) ** 2).sum(-1))
        return (1 - yy) * d**2 + yy * torch.clamp(margin - d, min=0) ** 2

    compare(symloss.load("contrastive"), [y, a, p * 0.3 + a * 0.7], contrastive, grads_of=[1, 2], reduction="none")
    s = RNG.choice([-1.0, 1.0], N)
    for margin in (0.0, 0.3):
        compare(symloss.load("cosine_embedding"), [a, p, s],
                lambda x1, x2, yy: F.cosine_embedding_loss(x1, x2, yy, margin=margin, reduction="none"),
                grads_of=[0, 1], reduction="none", params={"margin": margin})
    compare(symloss.load("cosine_embedding"), [a, p, s], lambda x1, x2, yy: F.cosine_embedding_loss(x1, x2, yy),
            grads_of=[0, 1])


def test_triplet_hessian_has_cross_terms():
    L = symloss.load("triplet")
    a, p, n = (RNG.normal(size=(3, 4)) for _ in range(3))
    H = L.hessian(a, p, n)
    assert H.shape == (3, 3, 3, 4, 4)
    for r in range(3):
        def f(x):
            aa, pp, nn = x[:4], x[4:8], x[8:]
            return torch.clamp(((aa - pp) ** 2).sum() - ((aa - nn) ** 2).sum() + 0.2, min=0)

        want = torch.autograd.functional.hessian(f, t64(np.concatenate([a[r], p[r], n[r]]))).numpy()
        got = np.block([[H[i, j, r] for j in range(3)] for i in range(3)])
        np.testing.assert_allclose(got, want, atol=1e-14)
