"""gradcheck and gradgradcheck (float64) of every catalog loss through symloss.torch:
the symbolic backward and its symbolic double backward against finite differences,
at the default parameters and at non-default ones."""
import pytest

torch = pytest.importorskip("torch")

import symloss.torch as st  # noqa: E402
from symloss import catalog  # noqa: E402
from symloss.spec import load_spec  # noqa: E402
from symloss.torch.conventions import argument_names  # noqa: E402

N, K = 3, 4


def _sample(inp, shape, gen):
    d = inp.domain
    if d == "simplex":
        return torch.softmax(torch.randn(shape, generator=gen, dtype=torch.float64), -1)
    if d == "binary":
        return torch.randint(0, 2, shape, generator=gen).to(torch.float64)
    if d == "sign":
        return torch.randint(0, 2, shape, generator=gen).to(torch.float64) * 2 - 1
    if d in ("unit", "unit_closed"):
        return 0.1 + 0.8 * torch.rand(shape, generator=gen, dtype=torch.float64)
    if d == "positive":
        return 0.5 + torch.rand(shape, generator=gen, dtype=torch.float64)
    return torch.randn(shape, generator=gen, dtype=torch.float64)


def inputs(spec, seed=0):
    """Tensors in torch call order, each inside its declared domain."""
    gen = torch.Generator().manual_seed(seed)
    by_name = {i.name: i for i in spec.inputs}
    out = []
    for n in argument_names(spec):
        inp = by_name[n]
        shape = (N,) if spec.kind != "row" or inp.shape == "scalar" else (N, K)
        out.append(_sample(inp, shape, gen))
    return out


def non_default(p):
    v = p.default + 0.5 if p.default != 0 else 0.3
    if p.max is not None and v > p.max:
        v = (p.default + (p.min if p.min is not None else 0.0)) / 2
    return v


PARAM_CASES = [(n, False) for n in catalog.names()] + [
    (n, True) for n in catalog.names() if load_spec(catalog.spec_path(n)).params]


@pytest.mark.parametrize("name,changed", PARAM_CASES, ids=lambda v: str(v))
def test_gradcheck_and_gradgradcheck(name, changed):
    spec = load_spec(catalog.spec_path(name))
    params = {p.name: non_default(p) for p in spec.params} if changed else {}
    loss = st.loss(name, reduction="sum", **params)
    tensors = inputs(spec, seed=1 if changed else 0)
    order = argument_names(spec)
    preds = [k for k, n in enumerate(order) if spec.input(n).role == "prediction"] if hasattr(spec, "input") else \
        [k for k, n in enumerate(order) if next(i for i in spec.inputs if i.name == n).role == "prediction"]
    for k in preds:
        tensors[k].requires_grad_(True)

    def f(*xs):
        args = list(tensors)
        for k, x in zip(preds, xs):
            args[k] = x
        return loss(*args)

    xs = tuple(tensors[k] for k in preds)
    assert torch.autograd.gradcheck(f, xs, atol=1e-6, rtol=1e-5)
    assert torch.autograd.gradgradcheck(f, xs, atol=1e-6, rtol=1e-5)
    # reduction="none" keeps one value per element (row)
    none = st.loss(name, reduction="none", **params)(*[t.detach() for t in tensors])
    assert none.shape == ((N,) if spec.kind == "row" else tensors[preds[0]].shape)
    assert torch.allclose(none.sum(), f(*xs).detach())


def test_general_robust_alpha_as_parameter_gets_its_gradient():
    alpha = torch.nn.Parameter(torch.tensor(0.7, dtype=torch.float64))
    loss = st.loss("general_robust", alpha=alpha, c=1.3)
    assert any(p is alpha for p in loss.parameters())
    gen = torch.Generator().manual_seed(3)
    yhat = torch.randn(6, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.randn(6, dtype=torch.float64, generator=gen)
    assert torch.autograd.gradcheck(lambda a, x: st.loss("general_robust", alpha=a, c=1.3)(x, y), (alpha, yhat))
    # the mixed second derivative d/dalpha dL/dyhat (symbolic) against central differences
    (g,) = torch.autograd.grad(loss(yhat, y), yhat, create_graph=True)
    (m,) = torch.autograd.grad(g.sum(), alpha)
    h = 1e-6

    def grad_at(a):
        x = yhat.detach().requires_grad_(True)
        return torch.autograd.grad(st.loss("general_robust", alpha=a, c=1.3)(x, y), x)[0].sum()

    assert m.item() == pytest.approx(((grad_at(0.7 + h) - grad_at(0.7 - h)) / (2 * h)).item(), rel=1e-6)
    # and d/dyhat dL/dalpha, the same mixed derivative from the other side
    (ga,) = torch.autograd.grad(loss(yhat, y), alpha, create_graph=True)
    (my,) = torch.autograd.grad(ga, yhat)
    assert torch.allclose(my.sum(), m, rtol=1e-10)
    alpha.grad = None
    loss(yhat, y).backward()
    assert alpha.grad is not None and torch.isfinite(alpha.grad)


def test_double_backward_is_the_symbolic_hessian():
    # elementwise: diagonal Hessian of log-cosh is sech^2; row: H v for softmax CE is p*v - p (p.v)
    r = torch.tensor([-3.0, 0.1, 2.0, 40.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(st.loss("log_cosh", reduction="sum")(r, torch.zeros(4, dtype=torch.float64)), r,
                               create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), r)
    assert torch.allclose(h, 1 / torch.cosh(r.detach()) ** 2, rtol=1e-12, atol=1e-300)
    z = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 7, (5,))
    v = torch.randn(5, 7, dtype=torch.float64)
    (g,) = torch.autograd.grad(st.loss("cross_entropy", reduction="sum")(z, y), z, create_graph=True)
    (hv,) = torch.autograd.grad((g * v).sum(), z)
    p = torch.softmax(z.detach(), -1)
    assert torch.allclose(hv, p * v - p * (p * v).sum(-1, keepdim=True), rtol=1e-10, atol=1e-12)


def test_from_expr_spec_file_and_functional(tmp_path):
    L = st.from_expr("log(1 + (yhat - y)**2 / c**2)", name="my_cauchy", params={"c": {"default": 1.0}}, c=2.0)
    y = torch.randn(8, dtype=torch.float64)
    x = torch.randn(8, dtype=torch.float64, requires_grad=True)
    want = torch.log1p((x - y) ** 2 / 4).mean()
    assert torch.allclose(L(x, y), want)
    assert torch.autograd.gradgradcheck(lambda x: L(x, y), (x,))
    path = tmp_path / "my_cauchy.toml"
    path.write_text(catalog.spec_path("cauchy").read_text().replace('name = "cauchy"', 'name = "my_cauchy"'))
    assert torch.allclose(st.loss(str(path), c=2.0)(x, y), st.loss("cauchy", c=2.0)(x, y))
    assert torch.allclose(st.functional("cauchy")(x, y, c=2.0, reduction="sum"), st.loss("cauchy", c=2.0)(x, y) * 8)


def test_errors_name_loss_argument_and_shapes():
    mse = st.loss("mse")
    x = torch.randn(4, requires_grad=True)
    with pytest.raises(ValueError, match=r"mse: input shapes do not match: yhat \(4,\), y \(3,\)"):
        mse(x, torch.randn(3))
    with pytest.raises(ValueError, match="mse: target 'y' requires grad"):
        mse(x, torch.randn(4, requires_grad=True))
    with pytest.raises(ValueError, match="mse: prediction 'yhat' must be floating point"):
        mse(torch.arange(4), torch.randn(4))
    with pytest.raises(ValueError, match="huber: parameter delta must be > 0"):
        st.loss("huber", delta=-1.0)
    with pytest.raises(ValueError, match="huber: parameter delta must be > 0"):  # a tensor: at construction
        st.loss("huber", delta=torch.tensor(-1.0))
    with pytest.raises(ValueError, match="unknown parameter"):
        st.loss("huber", gamma=1.0)
    with pytest.raises(ValueError, match="cross_entropy: class indices 'y' outside"):
        st.loss("cross_entropy")(torch.randn(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"cross_entropy: input 'y' has shape \(2, 4\), expected \(2, 3\)"):
        st.loss("cross_entropy")(torch.randn(2, 3), torch.rand(2, 4))


def test_low_precision_is_computed_in_float32_and_nan_propagates():
    x = torch.tensor([0.5, 1.0, float("nan")], dtype=torch.bfloat16)
    y = torch.zeros(3, dtype=torch.bfloat16)
    out = st.loss("log_cosh", reduction="none")(x, y)
    assert out.dtype == torch.bfloat16
    want = torch.log(torch.cosh(x.float())).to(torch.bfloat16)
    assert torch.equal(out[:2], want[:2]) and out[2].isnan()
    z = torch.tensor([[1.0, float("nan")], [0.0, 1.0]], requires_grad=True)
    ce = st.loss("cross_entropy", reduction="none")(z, torch.tensor([0, 1]))
    assert ce[0].isnan() and torch.isfinite(ce[1])
