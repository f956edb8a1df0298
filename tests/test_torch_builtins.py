"""Same value and gradient as torch's built-in losses (float64 rtol 1e-6, float32 1e-5)."""
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import symloss.torch as st  # noqa: E402

TOL = {torch.float64: 1e-6, torch.float32: 1e-5}


def check(ours, theirs, preds, dtype):
    """Values and gradients w.r.t. every prediction agree."""
    a, b = ours(), theirs()
    rtol = TOL[dtype]
    assert a.dtype == b.dtype == dtype
    torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * 1e-2)
    ga = torch.autograd.grad(a.sum(), preds)
    gb = torch.autograd.grad(b.sum(), preds)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=rtol, atol=rtol * 1e-3)


def rand(*shape, dtype, grad=False, low=None, high=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(*shape, generator=g, dtype=dtype) if low is None else \
        low + (high - low) * torch.rand(*shape, generator=g, dtype=dtype)
    return t.requires_grad_(grad)


DTYPES = [torch.float64, torch.float32]
REDS = ["mean", "sum", "none"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDS)
def test_regression_losses(dtype, reduction):
    x, y = rand(7, 5, dtype=dtype, grad=True), rand(7, 5, dtype=dtype, seed=1) * 2
    cases = [
        (st.loss("mse", reduction=reduction), torch.nn.MSELoss(reduction=reduction)),
        (st.loss("mae", reduction=reduction), torch.nn.L1Loss(reduction=reduction)),
        (st.loss("huber", delta=0.7, reduction=reduction), torch.nn.HuberLoss(delta=0.7, reduction=reduction)),
        (st.loss("smooth_l1", beta=0.6, reduction=reduction), torch.nn.SmoothL1Loss(beta=0.6, reduction=reduction)),
    ]
    for ours, theirs in cases:
        check(lambda: ours(x, y), lambda: theirs(x, y), (x,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_and_margin_losses(dtype):
    p = rand(6, 3, dtype=dtype, grad=True, low=0.05, high=0.95)
    z = rand(6, 3, dtype=dtype, grad=True) * 3
    y = rand(6, 3, dtype=dtype, low=0.0, high=1.0, seed=2)
    s = torch.sign(rand(6, 3, dtype=dtype, seed=3))
    check(lambda: st.loss("bce")(p, y), lambda: F.binary_cross_entropy(p, y), (p,), dtype)
    check(lambda: st.loss("bce_logits")(z, y), lambda: F.binary_cross_entropy_with_logits(z, y), (z,), dtype)
    check(lambda: st.loss("soft_margin")(z, s), lambda: F.soft_margin_loss(z, s), (z,), dtype)
    check(lambda: st.loss("poisson_nll")(z, y * 4), lambda: F.poisson_nll_loss(z, y * 4, log_input=True), (z,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_nll(dtype):
    mu = rand(8, dtype=dtype, grad=True)
    var = rand(8, dtype=dtype, grad=True, low=0.2, high=2.0, seed=1)
    y = rand(8, dtype=dtype, seed=2)
    # symloss's call order is predictions then targets: (mu, var, y); torch's is (input, target, var)
    check(lambda: st.loss("gaussian_nll")(mu, var, y), lambda: F.gaussian_nll_loss(mu, y, var), (mu, var), dtype)


def test_sigmoid_focal_loss_formula():
    # torchvision.ops.sigmoid_focal_loss, written out (torchvision is not a dependency)
    dtype = torch.float64
    z = rand(20, dtype=dtype, grad=True) * 3
    y = (rand(20, dtype=dtype, seed=4) > 0).to(dtype)

    def torchvision_focal(inputs, targets, alpha=0.25, gamma=2.0):
        p = torch.sigmoid(inputs)
        ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
        p_t = p * targets + (1 - p) * (1 - targets)
        loss = ce * ((1 - p_t) ** gamma)
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        return (alpha_t * loss).mean()

    check(lambda: st.loss("focal_binary", gamma=2.0, alpha=0.25)(z, y), lambda: torchvision_focal(z, y), (z,), dtype)
    check(lambda: st.loss("focal_binary", gamma=1.5, alpha=0.6)(z, y),
          lambda: torchvision_focal(z, y, 0.6, 1.5), (z,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDS)
def test_cross_entropy(dtype, reduction):
    N, C = 9, 5
    z = rand(N, C, dtype=dtype, grad=True) * 2
    idx = torch.randint(0, C, (N,), generator=torch.Generator().manual_seed(5))
    idx[2] = -100
    probs = torch.softmax(rand(N, C, dtype=dtype, seed=6), -1)
    w = rand(C, dtype=dtype, low=0.5, high=2.0, seed=7)
    for kw in ({}, {"weight": w}, {"label_smoothing": 0.15}, {"weight": w, "label_smoothing": 0.1}):
        ours = st.loss("cross_entropy", reduction=reduction, **kw)
        check(lambda: ours(z, idx), lambda: F.cross_entropy(z, idx, reduction=reduction, **kw), (z,), dtype)
        check(lambda: ours(z, probs), lambda: F.cross_entropy(z, probs, reduction=reduction, **kw), (z,), dtype)
    ours = st.loss("cross_entropy", reduction=reduction, ignore_index=3)
    check(lambda: ours(z, idx.clamp(min=0)), lambda: F.cross_entropy(z, idx.clamp(min=0), reduction=reduction,
                                                                    ignore_index=3), (z,), dtype)


def test_cross_entropy_spatial_and_unbatched():
    dtype = torch.float64
    z = rand(3, 4, 2, 5, dtype=dtype, grad=True)
    idx = torch.randint(0, 4, (3, 2, 5), generator=torch.Generator().manual_seed(8))
    probs = torch.softmax(rand(3, 4, 2, 5, dtype=dtype, seed=9), 1)
    for red in REDS:
        check(lambda: st.loss("cross_entropy", reduction=red, label_smoothing=0.05)(z, idx),
              lambda: F.cross_entropy(z, idx, reduction=red, label_smoothing=0.05), (z,), dtype)
        check(lambda: st.loss("cross_entropy", reduction=red)(z, probs),
              lambda: F.cross_entropy(z, probs, reduction=red), (z,), dtype)
    v = rand(4, dtype=dtype, grad=True)
    check(lambda: st.loss("cross_entropy")(v, torch.tensor(2)), lambda: F.cross_entropy(v, torch.tensor(2)), (v,),
          dtype)


@pytest.mark.parametrize("impl", ["generated", "kernel"])
def test_a_minus_inf_logit_masks_its_class(impl):
    # the masking idiom: a class no target weighs adds nothing (0 * -inf is not NaN), as in torch
    dtype = torch.float64
    z = rand(5, 4, dtype=dtype, seed=11).detach()
    z[:, 3] = -float("inf")
    z[1, 0] = -float("inf")
    z.requires_grad_(True)
    idx = torch.tensor([0, 1, 2, 1, 0])
    w = rand(4, dtype=dtype, low=0.5, high=2.0, seed=12)
    for red in REDS if impl == "generated" else ("mean", "sum"):  # the kernels serve the reductions
        check(lambda: st.loss("cross_entropy", reduction=red, weight=w, impl=impl)(z, idx),
              lambda: F.cross_entropy(z, idx, weight=w, reduction=red), (z,), dtype)
        check(lambda: st.loss("nll", reduction=red, impl=impl)(torch.log_softmax(z, 1), idx),
              lambda: F.nll_loss(torch.log_softmax(z, 1), idx, reduction=red), (z,), dtype)
    # the numpy API the same (its kernels are the kernel path's)
    import symloss
    ours = symloss.load("cross_entropy").value(idx.numpy(), z.detach().numpy(), reduction="none")
    torch.testing.assert_close(torch.from_numpy(ours), F.cross_entropy(z, idx, reduction="none").detach())
    # a NaN is not masked: it still makes its row NaN, where torch's nll_loss skips it
    import numpy as np
    lp = np.log(np.full((3, 4), 0.25))
    lp[0, 2] = np.nan
    per = symloss.load("nll").value(np.array([0, 1, 2]), lp, reduction="none")
    assert np.isnan(per[0]) and np.isfinite(per[1:]).all()
    zn = np.zeros((3, 4))
    zn[0, 2] = np.nan  # cross_entropy: through its sum of exponentials
    per = symloss.load("cross_entropy").value(np.array([0, 1, 2]), zn, reduction="none")
    assert np.isnan(per[0]) and np.isfinite(per[1:]).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_nll_and_kl_div(dtype):
    N, C = 6, 4
    logp = torch.log_softmax(rand(N, C, dtype=dtype, seed=1), -1).detach().requires_grad_(True)
    idx = torch.randint(0, C, (N,), generator=torch.Generator().manual_seed(2))
    idx[0] = -100
    w = rand(C, dtype=dtype, low=0.5, high=2.0, seed=3)
    for red in REDS:
        check(lambda: st.loss("nll", reduction=red, weight=w)(logp, idx),
              lambda: F.nll_loss(logp, idx, weight=w, reduction=red), (logp,), dtype)
    q = torch.softmax(rand(N, C, dtype=dtype, seed=4), -1).detach().requires_grad_(True)
    p = torch.softmax(rand(N, C, dtype=dtype, seed=5), -1)
    # symloss's kl_divergence takes probabilities q; torch's kl_div takes log q. Row mean = "batchmean"
    check(lambda: st.loss("kl_divergence")(q, p), lambda: F.kl_div(q.log(), p, reduction="batchmean"), (q,), dtype)
    check(lambda: st.loss("kl_divergence", reduction="none")(q, p),
          lambda: F.kl_div(q.log(), p, reduction="none").sum(-1), (q,), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_embedding_and_triplet(dtype):
    x1, x2 = rand(6, 5, dtype=dtype, grad=True), rand(6, 5, dtype=dtype, grad=True, seed=1)
    y = torch.tensor([1, -1, 1, -1, -1, 1], dtype=dtype)
    for margin in (0.0, 0.3):
        check(lambda: st.loss("cosine_embedding", margin=margin)(x1, x2, y),
              lambda: F.cosine_embedding_loss(x1, x2, y, margin=margin), (x1, x2), dtype)
    # symloss's triplet uses squared distances: max(|a-p|^2 - |a-n|^2 + margin, 0), not torch's
    # TripletMarginLoss (plain distances, eps inside the norm), so it is tested against its formula
    a, p, n = (rand(6, 5, dtype=dtype, grad=True, seed=s) for s in (2, 3, 4))
    check(lambda: st.loss("triplet", margin=0.5)(a, p, n),
          lambda: torch.clamp(((a - p) ** 2).sum(-1) - ((a - n) ** 2).sum(-1) + 0.5, min=0).mean(), (a, p, n), dtype)


def test_hand_written_huber_module_example():
    # the seed's PyTorch example: a HuberLoss(nn.Module) built with torch.where
    class HuberLoss(torch.nn.Module):
        def __init__(self, delta=1.0):
            super().__init__()
            self.delta = delta

        def forward(self, y_pred, y_true):
            r = torch.abs(y_true - y_pred)
            return torch.where(r <= self.delta, 0.5 * r ** 2, self.delta * (r - 0.5 * self.delta)).mean()

    y_true = torch.tensor([3.0, -0.5, 2.0, 7.0])
    y_pred = torch.tensor([2.5, 0.0, 2.0, 8.0], requires_grad=True)
    ours, theirs = st.loss("huber", delta=1.0), HuberLoss(1.0)
    a, b = ours(y_pred, y_true), theirs(y_pred, y_true)
    assert a.item() == b.item() == pytest.approx(0.1875)
    (ga,) = torch.autograd.grad(a, y_pred)
    (gb,) = torch.autograd.grad(b, y_pred)
    assert ga.tolist() == gb.tolist() == [-0.125, 0.125, 0.0, 0.25]
