"""Row derivation: the sum-decomposable form, the softmax shift, Hessian = diagonal + rank m, IR passes."""
import sympy as sp

from symloss.derive.row import RowDerivation
from symloss.ir.row import build_row_ir
from symloss.spec import spec_from_table

CE = {"name": "ce", "kind": "row", "inputs": {"y": {"role": "target", "domain": "simplex"}, "z": "prediction"},
      "loss": "Sum(y[k], k) * log(Sum(exp(z[k]), k)) - Sum(y[k] * z[k], k)"}


def derivation(table):
    return RowDerivation(spec_from_table(table, source="<t>"))


def test_cross_entropy_gradient_is_softmax_minus_target_with_a_shift():
    d = derivation(CE)
    assert "logsumexp_shift" in d.rewrites
    kinds = sorted(r.kind for r in d.calculus.reductions.values())
    assert kinds == ["shift", "sum", "sum", "sum"]
    shift = next(s for s, r in d.calculus.reductions.items() if r.kind == "shift")
    (g,) = d.grads
    y, z = d.spec.symbols["y"], d.spec.symbols["z"]
    # exp only of z - m: never overflows; the shift cancels symbolically
    assert all(e.args[0] - (z - shift) == 0 for e in g.atoms(sp.exp))
    # numerically: softmax(z) * sum(y) - y on one row
    zs, ys = [3.0, -1.0, 700.0], [0.2, 0.5, 0.3]
    vals = {}
    for s, r in d.calculus.reductions.items():
        if r.kind == "shift":
            vals[s] = max(zs)
    for s, r in d.calculus.reductions.items():
        if r.kind == "sum":
            vals[s] = sum(float(r.expr.subs({y: a, z: b, **vals})) for a, b in zip(ys, zs))
    got = [float(g.subs({y: a, z: b, **vals})) for a, b in zip(ys, zs)]
    import numpy as np
    p = np.exp(np.array(zs) - max(zs))
    p /= p.sum()
    np.testing.assert_allclose(got, p * sum(ys) - np.array(ys), atol=1e-15)


def test_hessian_is_diagonal_plus_rank_one_for_cross_entropy():
    d = derivation(CE)
    assert d.rank == 1
    ir = build_row_ir(d, kernels=("value_and_grad", "hvp"))
    kinds = [s.kind for s in ir.kernels["value_and_grad"].steps]
    # one max loop, one sum loop, one output loop (row steps in between)
    assert [k for k in kinds if k != "row"] == ["max", "sum", "out"]
    hvp = [k for k in (s.kind for s in ir.kernels["hvp"].steps) if k != "row"]
    assert hvp.count("sum") == 1 and hvp[-1] == "out"  # the tangent sum joins the primal sums


def test_softmax_hessian_diagonal_computes_one_exp_per_class():
    # p_k**2 arrives from SymPy as exp(2*z - 2*m): the out loop squares the stashed exp(z - m)
    ir = build_row_ir(derivation(CE), kernels=("hessian_diag", "grad_hessian_diag"))
    for kernel in ir.kernels.values():
        n_exp = [sum(len(a.expr.atoms(sp.exp)) for a in s.fn.temporaries + s.fn.outputs)
                 for s in kernel.steps if s.kind in ("sum", "out")]
        assert n_exp == [1, 0]
        (out,) = [s for s in kernel.steps if s.kind == "out"]
        assert "_st" in out.fn.args


def test_array_backends_fold_the_sums_a_row_value_is_affine_in():
    # -r0 + r2 * log(r1) (with the shift) -> sum_k y_k * (m + log r1 - z_k) after the exp sum,
    # the log-softmax form XLA runs fast; compiled loops keep the three sums in one pass
    d = derivation(CE)
    plain = build_row_ir(d, kernels=("value",)).kernels["value"]
    folded = build_row_ir(d, kernels=("value", "grad"), fold_linear_sums=True).kernels
    assert [len(s.targets) for s in plain.steps if s.kind == "sum"] == [3]
    assert [s.targets for s in folded["value"].steps if s.kind == "sum"] == [("_r1",), ("_rf",)]
    # only per-row results fold: the gradient's sums feed its class outputs
    assert [s.kind for s in folded["grad"].steps] == [s.kind for s in build_row_ir(d, kernels=("grad",))
                                                       .kernels["grad"].steps]
    # a term beside the sums (poly1's epsilon (1 - p_y)) is not folded: added to per-class terms
    # that cancel at huge logits it would be lost
    poly1 = derivation({**CE, "name": "p1", "params": {"eps": {"default": 1.0}},
                        "loss": CE["loss"] + " + eps * (1 - Sum(y[k] * exp(z[k]), k) / Sum(exp(z[k]), k))"})
    kernel = build_row_ir(poly1, kernels=("value",), fold_linear_sums=True).kernels["value"]
    assert not any("_rf" in s.targets for s in kernel.steps)
    # the values: test_jax_backend compares every row loss's jax value with the Numba kernels'


def test_nested_softmax_and_multi_input_losses():
    focal = derivation({"name": "f", "kind": "row", "inputs": {"y": "target", "z": "prediction"},
                        "let": {"p": "exp(z[k]) / Sum(exp(z[k]), k)"},
                        "loss": "-Sum(y[k] * (1 - p[k])**2 * log(p[k]), k)"})
    ir = build_row_ir(focal, kernels=("grad",))
    loops = [s.kind for s in ir.kernels["grad"].steps if s.kind != "row"]
    assert loops == ["max", "sum", "sum", "out"]  # the outer sum needs the softmax's sum first
    trip = derivation({"name": "t", "kind": "row", "inputs": {"a": "prediction", "p": "prediction", "q": "prediction"},
                       "loss": "Max(Sum((a[k] - p[k])**2, k) - Sum((a[k] - q[k])**2, k) + 1, 0)"})
    assert len(trip.grads) == 3 and trip.rank == 2


def test_max_over_classes_reads_its_argmax():
    d = derivation({"name": "h", "kind": "row", "inputs": {"y": "target", "z": "prediction"},
                    "loss": "Max(1 + Max((1 - y[k]) * z[k], k) - Sum(y[k] * z[k], k), 0)"})
    (g,) = d.grads
    assert any(s.name.startswith("_sel") for s in g.free_symbols)
    steps = build_row_ir(d, kernels=("grad",)).kernels["grad"].steps
    assert any(s.kind == "max" and any(s.argmax) for s in steps)


def test_norm_derivative_is_zero_where_the_vector_vanishes():
    d = derivation({"name": "c", "kind": "row",
                    "inputs": {"y": {"role": "target", "shape": "scalar"}, "a": "prediction", "b": "prediction"},
                    "loss": "(1 - y) * Sum((a[k] - b[k])**2, k) + y * Max(1 - sqrt(Sum((a[k] - b[k])**2, k)), 0)**2"})
    assert any(r.kind == "sqrt" for r in d.calculus.reductions.values())
    assert all("quotient0" in str(g) for g in d.grads)


def test_latex_of_loss_and_gradient():
    d = derivation(CE)
    assert "\\sum_{k}" in d.latex["loss"]
    assert "{z}_{j}" in d.latex["grad_z"] and "\\sum_{k} e^{{z}_{k}}" in d.latex["grad_z"]
