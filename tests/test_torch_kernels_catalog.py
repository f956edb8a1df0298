"""The fused-kernel path (Numba kernels as torch custom ops) for every catalog loss it
serves: gradcheck and gradgradcheck in float64 at the default and at non-default
parameters, and the same value and gradient as the generated torch code.

Elementwise losses run the one-pass sum op, its scaled-gradient backward and the
Hessian op; row losses with one prediction the fused value_and_grad op and its
Hessian-vector product.  Row losses with several predictions (contrastive,
cosine_embedding, triplet) have no kernel path (impl="kernel" refuses them,
tested in test_torch_kernels.py).  Numba caches the compiled kernels on disk, so
only a cold run pays for the compiles."""
import pytest

torch = pytest.importorskip("torch")

import symloss.torch as st  # noqa: E402
from symloss import catalog  # noqa: E402
from symloss.spec import load_spec  # noqa: E402
from symloss.torch.conventions import argument_names  # noqa: E402
from test_torch_losses import PARAM_CASES, inputs, non_default  # noqa: E402


def _served(name):
    spec = load_spec(catalog.spec_path(name))
    return spec.kind == "elementwise" or len(spec.predictions) == 1


CASES = [c for c in PARAM_CASES if _served(c[0])]


def test_every_one_prediction_loss_is_covered():
    served = {n for n, _ in CASES}
    assert served == {n for n in catalog.names() if _served(n)}
    assert {"cross_entropy", "focal", "tversky", "mse", "general_robust", "gaussian_nll"} <= served
    assert len(served) >= len(catalog.names()) - 3


@pytest.mark.parametrize("name,changed", CASES, ids=lambda v: str(v))
def test_kernel_path_gradcheck_and_gradgradcheck(name, changed):
    spec = load_spec(catalog.spec_path(name))
    params = {p.name: non_default(p) for p in spec.params} if changed else {}
    ker = st.loss(name, impl="kernel", reduction="sum", **params)
    gen = st.loss(name, impl="generated", reduction="sum", **params)
    tensors = inputs(spec, seed=1 if changed else 0)
    order = argument_names(spec)
    roles = {i.name: i.role for i in spec.inputs}
    preds = [k for k, n in enumerate(order) if roles[n] == "prediction"]
    for k in preds:
        tensors[k].requires_grad_(True)

    def f(loss):
        def run(*xs):
            args = list(tensors)
            for k, x in zip(preds, xs):
                args[k] = x
            return loss(*args)
        return run

    xs = tuple(tensors[k] for k in preds)
    a, b = f(ker)(*xs), f(gen)(*xs)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    ga = torch.autograd.grad(a, xs)
    gb = torch.autograd.grad(b, xs)
    torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(f(ker), xs, atol=1e-6, rtol=1e-5)
    assert torch.autograd.gradgradcheck(f(ker), xs, atol=1e-6, rtol=1e-5)
