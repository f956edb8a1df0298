"""The Python API: load, from_expr, reductions, weights, out=, several predictions, bad input."""
import os
import subprocess
import sys

import numpy as np
import pytest

import symloss
from symloss import InputError, Loss, SpecError

RNG = np.random.default_rng(0)
Y, YHAT = RNG.normal(size=(3, 5)), RNG.normal(size=(3, 5))


def test_reductions_and_gradient_of_the_reduced_loss():
    L = symloss.load("huber")
    per = L.value(Y, YHAT, reduction="none")
    assert per.shape == (3, 5)
    assert np.isclose(L.value(Y, YHAT), per.mean()) and np.isclose(L.value(Y, YHAT, reduction="sum"), per.sum())
    g_sum = L.grad(Y, YHAT, reduction="sum")
    np.testing.assert_allclose(L.grad(Y, YHAT), g_sum / Y.size)
    np.testing.assert_allclose(L.grad(Y, YHAT, reduction="none"), g_sum)
    w = RNG.uniform(0.5, 2.0, (3, 5))
    np.testing.assert_allclose(L.value(Y, YHAT, sample_weight=w), np.average(per, weights=w))
    np.testing.assert_allclose(L.grad(Y, YHAT, sample_weight=w), w * g_sum / w.sum())
    np.testing.assert_allclose(L.value(Y, YHAT, reduction="none", sample_weight=w), w * per)
    g, h = L.grad_hessian(Y, YHAT)
    np.testing.assert_allclose(g, g_sum)
    np.testing.assert_allclose(h, L.hessian(Y, YHAT))


def test_out_buffers_are_filled_in_place():
    L = symloss.load("mse")
    out = np.empty_like(YHAT)
    assert L.grad(Y, YHAT, out=out) is out
    np.testing.assert_allclose(out, 2 * (YHAT - Y) / Y.size)
    vout = np.empty_like(YHAT)
    assert L.value(Y, YHAT, reduction="none", out=vout) is vout
    with pytest.raises(InputError, match="out must have shape"):
        L.grad(Y, YHAT, out=np.empty(4))
    with pytest.raises(InputError, match="C-contiguous"):
        L.grad(Y, YHAT, out=np.empty((5, 3)).T)
    # grad_hessian's pair, for Newton and boosting loops that keep their buffers
    H = symloss.load("huber")
    g, h = np.empty_like(YHAT), np.empty_like(YHAT)
    got = H.grad_hessian(Y, YHAT, out=(g, h), delta=0.5)
    assert got[0] is g and got[1] is h
    want = H.grad_hessian(Y, YHAT, delta=0.5)
    np.testing.assert_array_equal(g, want[0])
    np.testing.assert_array_equal(h, want[1])
    with pytest.raises(InputError, match="pair"):
        H.grad_hessian(Y, YHAT, out=g)
    with pytest.raises(InputError, match="share memory with each other"):
        H.grad_hessian(Y, YHAT, out=(g, g))


def test_parameters_and_defaults():
    L = symloss.load("huber")
    assert L.params == {"delta": 1.0} and L.inputs == ("y", "yhat")
    assert not np.isclose(L.value(Y, YHAT, delta=0.1), L.value(Y, YHAT))


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda L: L.value(Y), "takes 2 arrays"),
        (lambda L: L.value(Y, YHAT[:2]), "has shape"),
        (lambda L: L.value(Y, YHAT, gamma=1.0), "unknown parameter"),
        (lambda L: L.value(Y, YHAT, delta=-1.0), "must be > 0"),
        (lambda L: L.value(Y, YHAT, delta="big"), "must be a number"),
        (lambda L: L.value(Y, YHAT, reduction="avg"), "reduction must be one of"),
        (lambda L: L.value(Y, YHAT, sample_weight=np.ones(3)), "sample_weight has shape"),
        (lambda L: L.value(Y, YHAT.astype(np.longdouble)), "predictions must be float32 or float64"),
        (lambda L: L.value(Y.astype(str), YHAT), "must be numeric"),
    ],
)
def test_bad_input_is_a_clear_error(call, needle):
    with pytest.raises(InputError, match=needle):
        call(symloss.load("huber"))


def test_integer_and_list_inputs_are_accepted():
    L = symloss.load("mae")
    assert L.value([1, 2, 3], [1, 2, 5]) == pytest.approx(2 / 3)
    assert L.grad(np.array([0, 0]), np.array([1.0, -1.0]), reduction="sum").tolist() == [1.0, -1.0]


def test_mixed_float32_target_and_float64_prediction_runs_in_float64():
    L = symloss.load("mse")
    assert L.value(Y.astype(np.float32), YHAT).dtype == np.float64
    assert L.value(Y, YHAT.astype(np.float32)).dtype == np.float32


def test_empty_input():
    L = symloss.load("mse")
    assert np.isnan(L.value(np.empty(0), np.empty(0)))
    assert L.grad(np.empty(0), np.empty(0)).shape == (0,)


def test_unknown_builtin_and_path_loading(tmp_path):
    with pytest.raises(symloss.SymlossError, match="unknown loss 'nope'"):
        symloss.load("nope")
    spec = tmp_path / "cubic.toml"
    spec.write_text('name = "cubic"\nloss = "abs(yhat - y)**3"\n[inputs]\ny = "target"\nyhat = "prediction"\n')
    L = symloss.load(spec)
    np.testing.assert_allclose(L.grad(Y, YHAT, reduction="none"), 3 * np.abs(YHAT - Y) * (YHAT - Y))


def test_from_expr_with_params_and_several_predictions():
    L = Loss.from_expr("log(var)/2 + (y - mu)**2 / (2*var) * s", name="gnll",
                       inputs={"y": "target", "mu": "prediction", "var": {"role": "prediction", "domain": "positive"}},
                       params={"s": {"default": 1.0, "positive": True}})
    y, mu, var = RNG.normal(size=7), RNG.normal(size=7), RNG.uniform(0.5, 2, size=7)
    g_mu, g_var = L.grad(y, mu, var, reduction="none")
    np.testing.assert_allclose(g_mu, (mu - y) / var)
    np.testing.assert_allclose(g_var, 0.5 / var - (y - mu) ** 2 / (2 * var**2))
    h = L.hessian(y, mu, var)
    assert h.shape == (2, 2, 7)
    np.testing.assert_allclose(h[0, 1], h[1, 0])
    np.testing.assert_allclose(h[0, 1], (y - mu) / var**2)
    np.testing.assert_allclose(h[1, 1], -0.5 / var**2 + (y - mu) ** 2 / var**3)
    v, (a, b) = L.value_and_grad(y, mu, var, s=2.0)
    assert np.isfinite(v) and a.shape == b.shape == (7,)


def test_parameters_named_like_the_kernels_locals_keep_their_values():
    """The loops' own locals start with '_' (spec names cannot): a parameter named s once took
    the value of the loop's scale after the first element."""
    L = Loss.from_expr("s * (yhat - y)**2 + k * yhat", name="named_s_k", params={"s": 3.0, "k": 0.5})
    y, yhat = RNG.normal(size=5), RNG.normal(size=5)
    np.testing.assert_allclose(L.grad(y, yhat), (6 * (yhat - y) + 0.5) / 5, rtol=1e-14)
    np.testing.assert_allclose(L.grad(y, yhat, sample_weight=np.arange(1.0, 6.0)),
                               np.arange(1.0, 6.0) * (6 * (yhat - y) + 0.5) / 15, rtol=1e-14)


def test_from_expr_errors_name_the_expression():
    with pytest.raises(SpecError, match="<expr>: field 'loss': unknown name 'q'"):
        Loss.from_expr("q * yhat")


def test_from_expr_modules_are_cached_across_processes(tmp_path):
    code = (
        "import numpy as np, symloss\n"
        "L = symloss.Loss.from_expr('abs(yhat - y)**2.5', name='p25')\n"
        "L.value_and_grad(np.ones(3), np.zeros(3))\n"
        "k = L.module.value_and_grad\n"
        "print(sum(k._cache_hits.values()), sum(k._cache_misses.values()))\n"
    )
    env = dict(os.environ, SYMLOSS_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()
            for _ in range(2)]
    assert runs[0] == ["0", "1"]  # compiled in the first process...
    assert runs[1] == ["1", "0"]  # ...and loaded from Numba's cache in the second
    assert [p.name for p in tmp_path.glob("p25_*.py")]
