"""Loss.forward's shortcuts for the training call (symloss/torch/fast.py): taken when they apply,
the same numbers as the general path or torch, every other call left to the general path."""
import pytest

torch = pytest.importorskip("torch")

import symloss.torch as st  # noqa: E402
from symloss.errors import InputError  # noqa: E402
from symloss.torch import conventions  # noqa: E402

F = torch.nn.functional
D = torch.float64


def _ce_inputs(seed=0, n=7, k=5):
    g = torch.Generator().manual_seed(seed)
    z = (3 * torch.randn(n, k, dtype=D, generator=g)).requires_grad_(True)
    return z, torch.randint(0, k, (n,), generator=g)


def _grad(out, z):
    (g,) = torch.autograd.grad(out, z)
    return g


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_row_shortcut_runs_the_kernel_and_matches_torch(reduction):
    z, t = _ce_inputs()
    loss = st.loss("cross_entropy", reduction=reduction)
    out = loss(z, t)
    assert type(out.grad_fn).__name__ == "_KernelRowTotalBackward"
    want = F.cross_entropy(z, t, reduction=reduction)
    want_grad = _grad(F.cross_entropy(z, t, reduction=reduction), z)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(_grad(out, z), want_grad, rtol=1e-12, atol=1e-14)
    # an upstream gradient other than 1 scales the kept gradient; a retained graph recomputes it
    torch.testing.assert_close(_grad(3.0 * loss(z, t), z), 3.0 * want_grad, rtol=1e-12, atol=1e-14)
    z.grad = None
    out = loss(z, t)
    out.backward(retain_graph=True)
    out.backward(torch.tensor(0.5, dtype=D))
    torch.testing.assert_close(z.grad, 1.5 * want_grad, rtol=1e-12, atol=1e-14)
    # double backward goes through the custom ops' Hessian-vector product
    assert torch.autograd.gradcheck(lambda z: loss(z, t), (z,))
    assert torch.autograd.gradgradcheck(lambda z: loss(z, t), (z,))
    # probability targets of the logits' dtype take the shortcut too; no grad: the value alone
    p = torch.softmax(torch.randn(7, 5, dtype=D), -1)
    assert type(loss(z, p).grad_fn).__name__ == "_KernelRowTotalBackward"
    torch.testing.assert_close(loss(z, p), F.cross_entropy(z, p, reduction=reduction), rtol=1e-12, atol=1e-14)
    with torch.no_grad():
        torch.testing.assert_close(loss(z, t), want.detach(), rtol=1e-12, atol=1e-14)


def test_row_calls_the_shortcut_leaves_to_the_general_path():
    z, t = _ce_inputs(1)
    loss = st.loss("cross_entropy")
    ignored = t.clone()
    ignored[2] = -100
    w = torch.rand(5, dtype=D) + 0.5
    weighted = st.loss("cross_entropy", weight=w)
    cases = [
        (loss(z, ignored), F.cross_entropy(z, ignored)),  # ignore_index rows: the general path's masking
        (weighted(z, t), F.cross_entropy(z, t, weight=w)),  # class weights: torch's weighted mean
        (loss(z.float(), t), F.cross_entropy(z.float(), t)),
        (st.loss("cross_entropy", impl="generated")(z, t), F.cross_entropy(z, t)),
    ]
    for got, want in cases[:2] + cases[3:]:
        assert type(got.grad_fn).__name__ != "_KernelRowTotalBackward"
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(cases[2][0], cases[2][1], rtol=1e-6, atol=1e-6)
    # a parameter changed after construction is read on each call, and checked
    loss.label_smoothing = 0.2
    torch.testing.assert_close(loss(z, t), F.cross_entropy(z, t, label_smoothing=0.2), rtol=1e-12, atol=1e-14)
    loss.label_smoothing = 1.5
    with pytest.raises(InputError, match="label_smoothing"):
        loss(z, t)
    with pytest.raises(InputError, match="class indices"):
        st.loss("cross_entropy")(z, torch.tensor([0, 1, 2, 3, 4, 5, 1]))


def test_elementwise_shortcut_is_the_general_path():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(50, dtype=D, generator=g).requires_grad_(True)
    y = torch.randn(50, dtype=D, generator=g)
    loss = st.loss("huber", delta=0.7)
    spec, module = loss.spec, loss.kernels
    general = conventions.call(spec, module, (x, y), {}, {"delta": 0.7}, "mean", impl="generated")
    fast = loss(x, y)
    assert torch.equal(fast, general)
    assert torch.equal(_grad(fast, x), _grad(general, x))
    loss.delta = 0.3
    torch.testing.assert_close(loss(x, y), F.huber_loss(x, y, delta=0.3), rtol=1e-12, atol=1e-14)
    loss.delta = -1.0
    with pytest.raises(InputError, match="delta"):
        loss(x, y)
    # other dtypes, shapes and devices are the general path's (casts, broadcasting, errors)
    half = st.loss("mse")(x.detach().half(), y.half())
    assert half.dtype == torch.float16
    torch.testing.assert_close(st.loss("mse")(x, y[:1]), F.mse_loss(x, y[:1].expand(50)))
    with pytest.raises(InputError, match="requires grad"):
        st.loss("mse")(x, y.clone().requires_grad_(True))


def test_attributes_changed_after_a_shortcut_call_are_honoured():
    """Found in review: the shortcuts had fixed reduction at construction, and a tensor equal
    to the last accepted number passed their parameter check; forward-mode AD lost its tangent."""
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(4, dtype=D, generator=g), torch.randn(4, dtype=D, generator=g)
    mse = st.loss("mse")
    mse(x, y)
    mse.reduction = "sum"
    torch.testing.assert_close(mse(x, y), F.mse_loss(x, y, reduction="sum"))
    mse.reduction = "none"
    torch.testing.assert_close(mse(x, y), F.mse_loss(x, y, reduction="none"))
    z, t = _ce_inputs(4)
    ce = st.loss("cross_entropy")
    ce(z, t)
    ce.reduction = "none"
    torch.testing.assert_close(ce(z, t), F.cross_entropy(z, t, reduction="none"))
    # a tensor parameter equal to the last number: the general path (gradient, or the error)
    robust = st.loss("general_robust", alpha=1.5)
    robust(x.requires_grad_(True), y)
    robust.alpha = torch.nn.Parameter(torch.tensor(1.5, dtype=D))
    robust(x, y).backward()
    assert robust.alpha.grad is not None and robust.alpha.grad != 0
    huber = st.loss("huber", delta=1.0)
    huber(x, y)
    huber.delta = torch.nn.Parameter(torch.tensor(1.0, dtype=D))
    with pytest.raises(InputError, match="no parameter of this loss can"):
        huber(x, y)
    # forward-mode AD goes through the general path (and gives torch's tangent without grad mode)
    fw = torch.autograd.forward_ad
    v = torch.randn(z.shape, dtype=D, generator=g)
    with torch.no_grad(), fw.dual_level():
        got = fw.unpack_dual(st.loss("cross_entropy")(fw.make_dual(z, v), t)).tangent
        want = fw.unpack_dual(F.cross_entropy(fw.make_dual(z, v), t)).tangent
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
