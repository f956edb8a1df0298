"""torch.func transforms and forward-mode AD through every catalog loss (generated path):
grad, jvp, vmap of per-sample gradients and hessian (jacfwd of jacrev, so the jvp of the
symbolic gradient) against reverse-mode autograd, whose first and second derivatives
test_torch_losses checks against finite differences."""
import pytest

torch = pytest.importorskip("torch")

import torch.autograd.forward_ad as fwAD  # noqa: E402
from torch.func import grad, hessian, jvp, vmap  # noqa: E402

import symloss.torch as st  # noqa: E402
from symloss import catalog  # noqa: E402
from symloss.spec import load_spec  # noqa: E402
from symloss.torch.conventions import argument_names  # noqa: E402
from symloss.torch.kernels import AUTO_KERNEL_MIN  # noqa: E402
from test_torch_losses import inputs  # noqa: E402

TOL = dict(rtol=1e-9, atol=1e-11)


def _setup(name):
    spec = load_spec(catalog.spec_path(name))
    order = argument_names(spec)
    roles = {i.name: i.role for i in spec.inputs}
    preds = [k for k, n in enumerate(order) if roles[n] == "prediction"]
    return spec, inputs(spec), preds


def _call(loss, tensors, preds, xs):
    args = list(tensors)
    for k, x in zip(preds, xs):
        args[k] = x
    return loss(*args)


@pytest.mark.parametrize("name", catalog.names())
def test_transforms_match_reverse_mode(name):
    spec, tensors, preds = _setup(name)
    loss = st.loss(name, reduction="sum")
    xs = tuple(tensors[k] for k in preds)

    def f(*p):
        return _call(loss, tensors, preds, p)

    live = tuple(x.detach().requires_grad_(True) for x in xs)
    ref = torch.autograd.grad(f(*live), live, create_graph=True)
    got = grad(f, argnums=tuple(range(len(xs))))(*xs)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b.detach(), **TOL)

    # forward mode: the tangent is <gradient, v>, by torch.func.jvp and by a dual_level
    gen = torch.Generator().manual_seed(5)
    vs = tuple(torch.randn(x.shape, dtype=x.dtype, generator=gen) for x in xs)
    want = sum((g.detach() * v).sum() for g, v in zip(ref, vs))
    value, tangent = jvp(f, xs, vs)
    torch.testing.assert_close(value, f(*xs), **TOL)
    torch.testing.assert_close(tangent, want, **TOL)
    with fwAD.dual_level():
        dual = f(*(fwAD.make_dual(x, v) for x, v in zip(xs, vs)))
        torch.testing.assert_close(fwAD.unpack_dual(dual).tangent, want, **TOL)

    # hessian (forward over reverse: Grad's jvp) against double backward (Grad's backward)
    h = hessian(f, argnums=0)(*xs)
    rows = [torch.autograd.grad(ref[0].reshape(-1)[i], live[0], retain_graph=True)[0]
            for i in range(xs[0].numel())]
    torch.testing.assert_close(h.reshape(xs[0].numel(), -1), torch.stack(rows).reshape(xs[0].numel(), -1), **TOL)

    # per-sample gradients: vmap over the batch of grad of a one-sample loss equals the
    # gradient of the summed loss (the samples do not interact)
    def one(*sample):
        return _call(loss, [s.unsqueeze(0) for s in sample], preds,
                     [sample[k].unsqueeze(0) for k in preds])

    per = vmap(grad(one, argnums=tuple(preds)))(*tensors)
    for a, b in zip(per, ref):
        torch.testing.assert_close(a, b.detach(), **TOL)


def test_differentiable_parameter_under_grad_and_jvp():
    gen = torch.Generator().manual_seed(2)
    yhat, y = (torch.randn(6, dtype=torch.float64, generator=gen) for _ in range(2))

    def f(alpha, x):
        return st.loss("general_robust", alpha=alpha, c=1.3)(x, y)

    alpha = torch.tensor(0.7, dtype=torch.float64)
    a_live, x_live = alpha.clone().requires_grad_(True), yhat.clone().requires_grad_(True)
    ga, gx = torch.autograd.grad(f(a_live, x_live), (a_live, x_live), create_graph=True)
    got_a, got_x = grad(f, argnums=(0, 1))(alpha, yhat)
    torch.testing.assert_close(got_a, ga.detach(), **TOL)
    torch.testing.assert_close(got_x, gx.detach(), **TOL)
    # the mixed derivative d/dalpha dL/dyhat, forward over reverse against reverse over reverse
    (mixed,) = torch.autograd.grad(gx.sum(), a_live)
    _, t = jvp(lambda a: grad(f, argnums=1)(a, yhat).sum(), (alpha,), (torch.ones_like(alpha),))
    torch.testing.assert_close(t, mixed, **TOL)
    # the second derivative in alpha itself is not derived: a clear error, not a wrong zero, in
    # forward over reverse and in reverse over either (reverse gave 0 until ParamGrad's backward
    # asked the engine whether alpha's slot is used)
    from torch.func import jacfwd, jacrev

    for second in (hessian(f, argnums=0), jacrev(jacrev(f, argnums=0), argnums=0),
                   jacrev(jacfwd(f, argnums=0), argnums=0)):
        with pytest.raises(RuntimeError, match="general_robust.*'alpha'"):
            second(alpha, yhat)
    with pytest.raises(RuntimeError, match="general_robust.*'alpha'"):
        ga.backward()
    # ... while the mixed block is there, by reverse over reverse too
    torch.testing.assert_close(jacrev(jacrev(f, argnums=0), argnums=1)(alpha, yhat).sum(), mixed, **TOL)


def test_hessian_stays_finite_where_autograd_of_the_formula_fails():
    r = torch.tensor([-1000.0, -30.0, 0.5, 1000.0], dtype=torch.float64)
    zero = torch.zeros(4, dtype=torch.float64)
    h = hessian(lambda x: st.loss("log_cosh", reduction="sum")(x, zero))(r)
    torch.testing.assert_close(h, torch.diag(1 / torch.cosh(r) ** 2), rtol=1e-12, atol=1e-300)
    naive = hessian(lambda x: torch.log(torch.cosh(x - zero)).sum())(r)
    assert not torch.isfinite(naive).all()


def test_targets_kernels_and_auto_under_transforms():
    y = torch.randn(4, dtype=torch.float64)
    x = torch.randn(4, dtype=torch.float64)
    # a tangent in the target is refused by name
    with pytest.raises(RuntimeError, match="huber.*'y'"):
        jvp(lambda t: st.loss("huber")(x, t), (y,), (torch.ones_like(y),))
    # the Numba kernels cannot be seen through: forced, a clear error ...
    with pytest.raises(ValueError, match="impl='kernel'.*torch.func"):
        grad(lambda p: st.loss("huber", impl="kernel")(p, y))(x)
    # ... and auto takes the generated path even at the kernels' sizes
    n = AUTO_KERNEL_MIN
    big_x, big_y = torch.randn(n, dtype=torch.float64), torch.randn(n, dtype=torch.float64)
    live = big_x.clone().requires_grad_(True)
    for loss in (st.loss("huber"), st.loss("bce_logits")):
        ref = torch.autograd.grad(loss(live, big_y.sigmoid()), live)[0]
        torch.testing.assert_close(grad(lambda p: loss(p, big_y.sigmoid()))(big_x), ref, **TOL)
    z = torch.randn(n // 64, 64, dtype=torch.float64)
    k = torch.randint(0, 64, (n // 64,))
    ce = st.loss("cross_entropy")
    live = z.clone().requires_grad_(True)
    ref = torch.autograd.grad(ce(live, k), live)[0]
    torch.testing.assert_close(grad(lambda p: ce(p, k))(z), ref, **TOL)


def test_transforms_after_one_another_and_class_indices_under_vmap():
    gen = torch.Generator().manual_seed(7)
    x, y = (torch.randn(5, dtype=torch.float64, generator=gen) for _ in range(2))
    f = lambda p: st.loss("huber", reduction="sum", delta=0.7)(p, y)  # noqa: E731
    h = hessian(f)(x)
    # a parameter tensor made under one transform must not be reused by the next
    live = x.clone().requires_grad_(True)
    ref = torch.autograd.grad(f(live), live)[0]
    torch.testing.assert_close(grad(f)(x), ref, **TOL)
    torch.testing.assert_close(hessian(f)(x), h, **TOL)
    # per-sample gradients of a classifier: class indices batched by vmap
    z = torch.randn(6, 4, dtype=torch.float64, generator=gen)
    k = torch.randint(0, 4, (6,), generator=gen)
    w = torch.rand(4, dtype=torch.float64, generator=gen) + 0.5
    ce = st.loss("cross_entropy", reduction="sum", weight=w, label_smoothing=0.1)
    per = vmap(grad(lambda zi, ki: ce(zi[None], ki[None])))(z, k)
    live = z.clone().requires_grad_(True)
    torch.testing.assert_close(per, torch.autograd.grad(ce(live, k), live)[0], **TOL)


def test_nested_forward_mode():
    """Forward under forward is refused (torch runs a custom Function's jvp rule with forward AD
    off: zeros); reverse over forward goes through Grad, so it is the symbolic Hessian, where
    autograd of the gradient formulas was 0.8% off for focal at logits +-200."""
    from torch.func import jacfwd, jacrev

    from symloss.errors import InputError

    x, y = torch.randn(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    f = lambda p: st.loss("mse", reduction="sum")(p, y)  # noqa: E731
    with pytest.raises(InputError, match="mse: forward mode .* under another forward transform"):
        jacfwd(jacfwd(f))(x)
    torch.testing.assert_close(jacrev(jacrev(f))(x), 2 * torch.eye(3, dtype=torch.float64), **TOL)
    torch.testing.assert_close(jacrev(jacfwd(f))(x), 2 * torch.eye(3, dtype=torch.float64), **TOL)
    z, t = torch.tensor([200.0, -200.0, 30.0], dtype=torch.float64), torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    focal = lambda p: st.loss("focal_binary", reduction="sum", gamma=2.0)(p, t)  # noqa: E731
    torch.testing.assert_close(jacrev(jacfwd(focal))(z), hessian(focal)(z), rtol=1e-12, atol=0)
    g = torch.Generator().manual_seed(3)
    logits, k = torch.randn(3, 4, dtype=torch.float64, generator=g) * 30, torch.tensor([0, 3, 1])
    ce = lambda q: st.loss("cross_entropy", reduction="sum", label_smoothing=0.1)(q, k)  # noqa: E731
    torch.testing.assert_close(jacrev(jacfwd(ce))(logits), hessian(ce)(logits), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name,reduction", [("huber", "mean"), ("log_cosh", "none"), ("cross_entropy", "mean")])
def test_forward_mode_over_a_backward(name, reduction):
    """A dual tensor through autograd.grad (forward over reverse, as a Hessian-vector
    product by dual numbers): the gradient's tangent is the symbolic Hessian times it."""
    from torch.autograd.functional import hessian as full_hessian

    g = torch.Generator().manual_seed(1)
    if name == "cross_entropy":
        x, y = torch.randn(4, 3, dtype=torch.float64, generator=g), torch.randint(0, 3, (4,), generator=g)
    else:
        x, y = torch.randn(6, dtype=torch.float64, generator=g), torch.randn(6, dtype=torch.float64, generator=g)
    t = torch.randn(x.shape, dtype=torch.float64, generator=g)
    loss = st.loss(name, reduction=reduction)
    with fwAD.dual_level():
        xd = fwAD.make_dual(x.clone().requires_grad_(True), t)
        (gx,) = torch.autograd.grad(loss(xd, y).sum(), xd)
        tangent = fwAD.unpack_dual(gx).tangent
    H = full_hessian(lambda a: loss(a, y).sum(), x).reshape(x.numel(), x.numel())
    torch.testing.assert_close(tangent, (H @ t.reshape(-1)).reshape(x.shape), **TOL)
