"""The fused-kernel path (Numba CPU kernels as torch custom ops): same numbers as the
generated torch code, gradcheck/gradgradcheck, opcheck, torch.compile, impl choice.
A handful of losses only: each compiles Numba kernels (cached across runs)."""
import pytest

torch = pytest.importorskip("torch")

import symloss.torch as st  # noqa: E402
from symloss.torch import kernels as K  # noqa: E402

D = torch.float64


def _args(name, n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dtype=D, generator=g).requires_grad_(True)
    y = torch.randn(n, dtype=D, generator=g)
    if name == "gaussian_nll":
        var = (0.5 + torch.rand(n, dtype=D, generator=g)).requires_grad_(True)
        return (x, var, y), (0, 1)
    return (x, y), (0,)


@pytest.mark.parametrize("name,params", [("mse", {}), ("huber", {"delta": 0.7}), ("log_cosh", {}),
                                         ("gaussian_nll", {}), ("general_robust", {"alpha": -0.5, "c": 1.5})])
def test_kernel_path_matches_generated_and_passes_gradgradcheck(name, params):
    args, preds = _args(name)
    ker = st.loss(name, impl="kernel", reduction="sum", **params)
    gen = st.loss(name, impl="generated", reduction="sum", **params)
    xs = [args[i] for i in preds]
    a, b = ker(*args), gen(*args)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    ga = torch.autograd.grad(a, xs, create_graph=True)
    gb = torch.autograd.grad(b, xs, create_graph=True)
    torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-14)
    ha = torch.autograd.grad(sum(g.sum() for g in ga), xs)
    hb = torch.autograd.grad(sum(g.sum() for g in gb), xs)
    torch.testing.assert_close(ha, hb, rtol=1e-12, atol=1e-14)

    def f(*ps):
        full = list(args)
        for i, p in zip(preds, ps):
            full[i] = p
        return ker(*full)

    assert torch.autograd.gradcheck(f, tuple(xs))
    assert torch.autograd.gradgradcheck(f, tuple(xs))
    # reduction="none" runs the per-element ops; the weighted mean too
    w = torch.rand(args[0].shape, dtype=D)
    for kw in ({"reduction": "none"}, {"sample_weight": w}):
        ker_n = st.loss(name, impl="kernel", **{**params, **{k: v for k, v in kw.items() if k == "reduction"}})
        gen_n = st.loss(name, impl="generated", **{**params, **{k: v for k, v in kw.items() if k == "reduction"}})
        sw = kw.get("sample_weight")
        torch.testing.assert_close(ker_n(*args, sample_weight=sw), gen_n(*args, sample_weight=sw), rtol=1e-12,
                                   atol=1e-14)
        assert torch.autograd.gradgradcheck(lambda *ps: ker_n(*[
            ps[preds.index(i)] if i in preds else a for i, a in enumerate(args)], sample_weight=sw).sum(), tuple(xs))


def test_kernel_path_parameter_gradient_and_opcheck():
    (x, y), _ = _args("general_robust")
    alpha = torch.nn.Parameter(torch.tensor(0.7, dtype=D))
    for red in ("sum", "none"):  # the one-pass sum and the per-element ops
        assert torch.autograd.gradcheck(
            lambda a, x: st.loss("general_robust", alpha=a, impl="kernel", reduction=red)(x, y).sum(), (alpha, x))
    ops = st.loss("general_robust", impl="kernel")._kernels()
    p = torch.tensor([0.7, 1.3], dtype=D)
    xs = [y, x.detach()]
    for op, args in ((ops.value_op, (xs, p)), (ops.grad_op, (torch.rand(12, dtype=D), xs, p)),
                     (ops.hessian_op, (xs, p)), (ops.param_grad_op, (xs, p)), (ops.sum_op, (xs, p)),
                     (ops.grad_scaled_op, (torch.tensor(0.5, dtype=D), xs, p))):
        torch.library.opcheck(op, args)



@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_kernel_path_gradient_penalty_reaches_a_learned_parameter(reduction):
    # d/dalpha of ||dL/dx||^2: the mixed derivative d2L/dx dalpha, which the Numba modules lack
    # (the kernel path once returned no gradient for alpha here, silently)
    (x, y), _ = _args("general_robust")

    def penalty(a, impl):
        x_ = x.detach().clone().requires_grad_()
        v = st.loss("general_robust", alpha=a, impl=impl, reduction=reduction)(x_, y).sum()
        (gx,) = torch.autograd.grad(v, x_, create_graph=True)
        return (gx ** 2).sum()

    alpha = torch.nn.Parameter(torch.tensor(0.7, dtype=D))
    (kernel,) = torch.autograd.grad(penalty(alpha, "kernel"), alpha)
    (generated,) = torch.autograd.grad(penalty(alpha, "generated"), alpha)
    h = 1e-6
    fd = (penalty(torch.tensor(0.7 + h, dtype=D), "generated")
          - penalty(torch.tensor(0.7 - h, dtype=D), "generated")).item() / (2 * h)
    assert kernel.item() == pytest.approx(generated.item(), rel=1e-12)
    assert kernel.item() == pytest.approx(fd, rel=1e-6)
    assert abs(fd) > 1e-6

def test_kernel_path_compiles_fullgraph():
    torch.manual_seed(0)
    m = torch.nn.Linear(4, 1).double()
    X, T = torch.randn(64, 4, dtype=D), torch.randn(64, dtype=D)
    H = st.loss("huber", impl="kernel")
    step = torch.compile(lambda X, T: H(m(X).squeeze(-1), T), fullgraph=True, backend="aot_eager")
    loss = step(X, T)
    loss.backward()
    g = m.weight.grad.clone()
    m.zero_grad()
    ref = st.loss("huber", impl="generated")(m(X).squeeze(-1), T)
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(g, m.weight.grad)


def test_auto_choice():
    big = torch.zeros(K.AUTO_KERNEL_MIN)
    small = torch.zeros(8)
    from symloss import catalog
    from symloss.spec import load_spec

    huber, ce = (load_spec(catalog.spec_path(n)) for n in ("huber", "cross_entropy"))
    assert K.choose("auto", huber, [big]) == "kernel"
    assert K.choose("auto", huber, [small]) == "generated"
    assert K.choose("auto", ce, [big]) == "generated"
    assert K.choose("auto", ce, [big], row_ok=K.row_kernel_ok(ce, "mean", None)) == "kernel"
    assert not K.row_kernel_ok(ce, "none", None) and not K.row_kernel_ok(ce, "mean", big)
    assert K.choose("generated", huber, [big]) == "generated"
    with pytest.raises(ValueError, match="impl='kernel' takes elementwise losses"):
        st.loss("cross_entropy", impl="kernel", reduction="none")
    with pytest.raises(ValueError, match="impl='kernel' takes elementwise losses"):
        st.loss("triplet", impl="kernel")
    with pytest.raises(ValueError, match="impl must be"):
        st.loss("huber", impl="fast")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_row_kernel_path_cross_entropy(reduction):
    F = torch.nn.functional
    g = torch.Generator().manual_seed(4)
    z = torch.randn(6, 5, dtype=D, generator=g).requires_grad_(True)
    t = torch.tensor([0, 4, -100, 2, 1, 3])
    w = torch.rand(5, dtype=D, generator=g) + 0.5
    ker = st.loss("cross_entropy", impl="kernel", reduction=reduction, weight=w, label_smoothing=0.1)
    gen = st.loss("cross_entropy", impl="generated", reduction=reduction, weight=w, label_smoothing=0.1)
    torch.testing.assert_close(ker(z, t), F.cross_entropy(z, t, weight=w, label_smoothing=0.1, reduction=reduction))
    ga, = torch.autograd.grad(ker(z, t), z, create_graph=True)
    gb, = torch.autograd.grad(gen(z, t), z, create_graph=True)
    v = torch.randn(6, 5, dtype=D, generator=g)
    torch.testing.assert_close(ga, gb)
    torch.testing.assert_close(torch.autograd.grad((ga * v).sum(), z)[0], torch.autograd.grad((gb * v).sum(), z)[0])
    assert torch.autograd.gradcheck(lambda z: ker(z, t), (z,))
    assert torch.autograd.gradgradcheck(lambda z: ker(z, t), (z,))
    # (N, C, d) and probability targets
    zz = torch.randn(3, 5, 2, dtype=D, generator=g)
    tt = torch.randint(0, 5, (3, 2), generator=g)
    torch.testing.assert_close(st.loss("cross_entropy", impl="kernel", reduction=reduction)(zz, tt),
                               F.cross_entropy(zz, tt, reduction=reduction))
    p = torch.softmax(torch.randn(6, 5, dtype=D, generator=g), -1)
    torch.testing.assert_close(st.loss("cross_entropy", impl="kernel", reduction=reduction)(z, p),
                               F.cross_entropy(z, p, reduction=reduction))
    if reduction == "mean":
        ops = ker._kernels()
        pv = torch.tensor([0.1], dtype=D)
        torch.library.opcheck(ops.value_and_grad_op, ([t, z.detach()], [w], pv, "mean", -100))
        torch.library.opcheck(ops.hvp_op, ([t, z.detach()], [w], pv, v, "mean", -100))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_eager_kernel_total_keeps_the_gradient(reduction):
    """The eager mean/sum over the kernels (the 10M-element training call): one fused pass
    forward keeps the gradient; an upstream other than 1 scales it; a retained graph's second
    backward gives the same bits; create_graph goes through the ops whose backward is the
    Hessian; a parameter that requires grad, or no grad at all, takes the one-pass sum op."""
    g = torch.Generator().manual_seed(3)
    n = K.AUTO_KERNEL_MIN + 17
    x = (3 * torch.randn(n, dtype=D, generator=g)).requires_grad_(True)
    y = torch.randn(n, dtype=D, generator=g)
    ker = st.loss("huber", delta=0.7, reduction=reduction)  # auto: the kernels at this size
    gen = st.loss("huber", delta=0.7, reduction=reduction, impl="generated")
    out = ker(x, y)
    assert type(out.grad_fn).__name__ == "_KeptTotalBackward"
    torch.testing.assert_close(out, gen(x, y), rtol=1e-12, atol=0)
    (want,) = torch.autograd.grad(gen(x, y), x)
    (got,) = torch.autograd.grad(2.5 * ker(x, y), x)
    torch.testing.assert_close(got, 2.5 * want, rtol=1e-12, atol=0)
    out = ker(x, y)
    out.backward(torch.tensor(0.5, dtype=D), retain_graph=True)
    first = x.grad.clone()
    x.grad = None
    out.backward(torch.tensor(0.5, dtype=D))
    assert torch.equal(x.grad, first)
    torch.testing.assert_close(first, 0.5 * want, rtol=1e-12, atol=0)
    (d1,) = torch.autograd.grad(ker(x, y), x, create_graph=True)
    (h,) = torch.autograd.grad(d1.sum(), x)
    (d2,) = torch.autograd.grad(gen(x, y), x, create_graph=True)
    (h2,) = torch.autograd.grad(d2.sum(), x)
    torch.testing.assert_close(h, h2, rtol=1e-12, atol=0)
    with torch.no_grad():
        assert ker(x, y).grad_fn is None
    alpha = torch.nn.Parameter(torch.tensor(0.5, dtype=D))
    robust = st.loss("general_robust", alpha=alpha, reduction=reduction)
    out = robust(x, y)
    assert type(out.grad_fn).__name__ != "_KeptTotalBackward"
    out.backward()
    assert alpha.grad is not None and torch.isfinite(alpha.grad)


def test_kernel_total_on_empty_input_and_under_jit_trace():
    """Cases the eager kept-gradient pass leaves to the sum op: an empty input's mean is
    NaN (as torch's), and torch.jit.trace records the registered op (a trace that saves)."""
    import io

    loss = st.loss("huber", impl="kernel")
    x = torch.randn(0, dtype=D, requires_grad=True)
    assert torch.isnan(loss(x, torch.randn(0, dtype=D)))
    x = torch.randn(100, dtype=D, requires_grad=True)
    y = torch.randn(100, dtype=D)
    traced = torch.jit.trace(lambda a, b: loss(a, b), (x, y), check_trace=False)
    torch.jit.save(traced, io.BytesIO())
    torch.testing.assert_close(traced(x, y), st.loss("huber", impl="generated")(x, y), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name,reduction,params", [
    ("huber", "none", {"delta": 0.7}), ("huber", "mean", {"delta": 0.7}), ("huber", "sum", {}),
    ("gaussian_nll", "mean", {}), ("general_robust", "sum", {"alpha": 0.5}), ("cross_entropy", "mean", {}),
    ("cross_entropy", "sum", {})])
def test_kernel_path_batched_upstream(name, reduction, params):
    """autograd.grad(..., is_grads_batched=True) through the kernels' nodes (legacy vmap, which
    runs no custom op with list arguments), as functional.jacobian/hessian(vectorize=True) do:
    the same numbers as one upstream at a time."""
    from torch.autograd.functional import hessian, jacobian

    g = torch.Generator().manual_seed(3)
    if name == "cross_entropy":
        xs, y = (torch.randn(5, 4, dtype=D, generator=g),), torch.randint(0, 4, (5,), generator=g)
    else:
        args, _ = _args(name, n=6)
        xs, y = tuple(a.detach() for a in args[:-1]), args[-1]
    loss = st.loss(name, reduction=reduction, impl="kernel", **params)
    if name == "general_robust":  # a parameter that receives its gradient: the sum op's path
        loss.alpha = torch.nn.Parameter(torch.tensor(0.5, dtype=D))

    def f(*a):
        return loss(*a, y)

    torch.testing.assert_close(jacobian(f, xs, vectorize=True), jacobian(f, xs), rtol=1e-12, atol=1e-14)
    if reduction != "none":
        torch.testing.assert_close(hessian(f, xs, vectorize=True), hessian(f, xs), rtol=1e-12, atol=1e-14)
    # a batch of upstreams on one graph, against one at a time
    x = xs[0].clone().requires_grad_(True)
    out = loss(x, *xs[1:], y)
    V = torch.randn((3,) + out.shape, dtype=D, generator=g)
    (batch,) = torch.autograd.grad(out, x, V, is_grads_batched=True, retain_graph=True)
    one = torch.stack([torch.autograd.grad(out, x, v, retain_graph=True)[0] for v in V])
    torch.testing.assert_close(batch, one, rtol=1e-12, atol=0)


def test_kept_gradient_stands_aside_under_saved_tensor_hooks():
    """save_on_cpu and non-reentrant checkpointing manage what a node saves through hooks,
    which never see a gradient kept on ctx: under them the kernels' custom ops run instead,
    with the same gradients."""
    from torch.utils.checkpoint import checkpoint

    g = torch.Generator().manual_seed(4)
    n = K.AUTO_KERNEL_MIN + 5
    x = torch.randn(n, dtype=D, generator=g).requires_grad_(True)
    y = torch.randn(n, dtype=D, generator=g)
    z = torch.randn(64, 5, dtype=D, generator=g).requires_grad_(True)
    c = torch.randint(0, 5, (64,), generator=g)
    for loss, a, b, kept in ((st.loss("huber"), x, y, "_KeptTotalBackward"),
                             (st.loss("cross_entropy"), z, c, "_KernelRowTotalBackward")):
        out = loss(a, b)
        assert type(out.grad_fn).__name__ == kept
        (want,) = torch.autograd.grad(out, a)
        packed = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t, lambda t: t):
            out = loss(a, b)
        assert type(out.grad_fn).__name__ != kept and packed
        torch.testing.assert_close(torch.autograd.grad(out, a)[0], want, rtol=1e-12, atol=0)
        with torch.autograd.graph.save_on_cpu():
            out = loss(a, b)
        torch.testing.assert_close(torch.autograd.grad(out, a)[0], want, rtol=1e-12, atol=0)
        out = checkpoint(lambda u: loss(u * 1.0, b), a, use_reentrant=False)
        torch.testing.assert_close(torch.autograd.grad(out, a)[0], want, rtol=1e-12, atol=0)


def test_custom_ops_under_torch_func_vmap():
    """The kernels' custom ops loop over a vmapped batch (their vmap rule); an op returning a
    tuple (the row value-and-gradient) gives its out_dims as a tuple too."""
    from symloss import catalog
    from symloss.spec import load_spec

    g = torch.Generator().manual_seed(9)
    rops = K.kernel_ops(load_spec(catalog.spec_path("cross_entropy")), "cross_entropy")
    t = torch.randint(0, 4, (5,), generator=g)
    Z = torch.randn(3, 5, 4, dtype=D, generator=g)
    cls, p = [torch.ones(4, dtype=D)], torch.zeros(1, dtype=D)
    v, G = torch.func.vmap(lambda z: rops.value_and_grad_op([t, z], cls, p, "mean", -100))(Z)
    for b in range(3):
        vb, Gb = rops.value_and_grad_op([t, Z[b]], cls, p, "mean", -100)
        torch.testing.assert_close(v[b], vb, rtol=0, atol=0)
        torch.testing.assert_close(G[b], Gb, rtol=0, atol=0)
    eops = K.kernel_ops(load_spec(catalog.spec_path("huber")), "huber")
    x, y = torch.randn(3, 6, dtype=D, generator=g), torch.randn(6, dtype=D, generator=g)
    got = torch.func.vmap(lambda a: eops.value_op([a, y], torch.tensor([1.0], dtype=D)), in_dims=1)(x.T)
    torch.testing.assert_close(got, torch.stack([eops.value_op([x[b], y], torch.tensor([1.0], dtype=D))
                                                 for b in range(3)]), rtol=0, atol=0)
