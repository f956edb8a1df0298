"""The CUDA kernels against the CPU kernels, under numba's CUDA simulator (no GPU needed).

numba reads NUMBA_ENABLE_CUDASIM when it is first imported, so in a normal
`pytest` run the single test below starts a fresh interpreter with the
simulator switched on and runs this file's checks there; numba in the main
process (and the CPU tests) never see the setting.  With the variable already
set (`NUMBA_ENABLE_CUDASIM=1 pytest tests/test_cuda_sim.py`) the checks run
directly.

The simulator runs every thread as a Python thread, so sizes stay tiny: 37
elements and blocks of 4 threads, so each thread loops over several elements
and every block reduction takes two steps.  The sweep over the catalog uses
one block per grid (the simulator's cost is per block); the reductions across
blocks are checked on a few losses with every case.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
# The default run checks every loss in one dtype (alternating), to keep the
# suite's time; SYMLOSS_SIM_FULL=1 checks every loss in both.
FULL = os.environ.get("SYMLOSS_SIM_FULL") == "1"
N = 37

if not SIMULATED:

    def test_device_helpers_return_what_the_primitives_helpers_return():
        """The GPU's branch-free helper sources, compiled for the CPU, agree bit for bit."""
        import math

        import numba

        from symloss.derive import primitives as P
        from symloss.backends.numba_cuda.render import DEVICE_HELPERS
        from symloss.backends.numba_cpu.printer import SIGN_HELPER

        from symloss.backends.numba_cpu.primitives import SOURCES

        generic = {p.__name__: SOURCES[p.__name__].helper for p in P.ALL if SOURCES[p.__name__].helper}
        generic["sign"] = SIGN_HELPER
        specials = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 1e-30, -1e-30, 88.0, -88.0, 800.0, -800.0]
        for dtype in (np.float32, np.float64):
            x = np.concatenate([np.linspace(-40, 40, 2001), specials]).astype(dtype)
            ks = np.array([-1.0, -0.5, 0.0, 0.3, 2.0], dtype=dtype)
            for name, source in DEVICE_HELPERS.items():
                assert name in generic, f"{name} is no longer a helper"
                fns = []
                for text in (generic[name], source):
                    # the module's fexp/fdiv outside FAST_F32: math.exp and /
                    scope = {"math": math, "fexp": numba.njit(lambda x, T: math.exp(x)),
                             "fdiv": numba.njit(lambda a, b, T: a / b)}
                    exec(text, scope)
                    fns.append(numba.njit(scope[name]))
                nargs = fns[0].py_func.__code__.co_argcount - 1
                for k in (ks if nargs == 2 else [None]):
                    args = (x,) if k is None else (x, np.full_like(x, k))
                    got = [np.array([f(*(a[i] for a in args), dtype) for i in range(x.size)]) for f in fns]
                    nan = np.isnan(got[0]) & np.isnan(got[1])
                    same = nan | ((got[0] == got[1]) & (np.signbit(got[0]) == np.signbit(got[1])))
                    assert same.all(), (name, dtype, k, x[~same], got[0][~same], got[1][~same])

    def test_cuda_kernels_under_the_simulator():
        env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", __file__]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, (proc.stdout[-6000:] + "\n" + proc.stderr[-3000:]).strip()
        summary = proc.stdout.strip().splitlines()[-1]
        if " passed" not in summary:
            pytest.skip(f"the simulator checks did not run: {summary}")

else:
    pytest.importorskip("numba.cuda", reason="neither numba's built-in CUDA target nor numba-cuda is installed")

    from numba import cuda

    from cuda_sim_compare import close, f64, host

    import symloss
    from symloss import catalog
    from symloss.errors import InputError
    from symloss.backends.numba_cuda import render as backend
    from symloss.backends.numba_cuda import runtime as C
    from symloss.spec import load_spec

    ONE_BLOCK = C.Launch(threads=4, max_blocks=1)
    BLOCKS = C.Launch(threads=4, max_blocks=3)
    DTYPES = (np.float32, np.float64)

    def sample(domain: str, rng, dtype):
        draws = {
            "real": lambda: rng.uniform(-3, 3, N),
            "positive": lambda: rng.uniform(0.1, 3, N),
            "unit": lambda: rng.uniform(0.05, 0.95, N),
            "unit_closed": lambda: np.where(rng.random(N) < 0.3, rng.integers(0, 2, N), rng.uniform(0, 1, N)),
            "binary": lambda: rng.integers(0, 2, N).astype(float),
            "sign": lambda: rng.choice([-1.0, 1.0], N),
        }
        return draws[domain]().astype(dtype)

    def device_loss(loss, launch=BLOCKS) -> "C.DeviceLoss":
        return C.DeviceLoss(loss.spec, C.load_module(loss.spec, loss.module), launch)

    def inputs(loss, dtype, seed=0):
        rng = np.random.default_rng(seed)
        arrays = [sample(i.domain, rng, dtype) for i in loss.spec.inputs]
        weights = rng.uniform(0.2, 2.0, N).astype(dtype)
        return arrays, weights

    # (method, reduction, weighted): every reduction and weighting each method takes
    ALL_CASES = [
        ("value", "mean", False), ("value", "sum", True), ("value", "none", True), ("value", "mean", True),
        ("grad", "mean", True), ("grad", "sum", False), ("grad", "none", False),
        ("value_and_grad", "mean", False), ("value_and_grad", "mean", True),
        ("value_and_grad", "sum", True), ("value_and_grad", "none", False),
        ("hessian", "none", False), ("hessian", "mean", True),
        ("grad_hessian", "none", False), ("grad_hessian", "sum", True),
    ]
    # every kernel (its printed body is the loss's own) once, weighted: the weighting flag and the
    # reductions are the template's, the same for every loss, and ALL_CASES sweeps them on two losses.
    # One weighting keeps the CPU reference to one Numba signature per method (compiled cold in CI).
    CASES = [
        ("value", "mean", True), ("grad", "none", True), ("value_and_grad", "mean", True),
        ("hessian", "mean", True), ("grad_hessian", "none", True),
    ]

    def check_against_cpu(loss, dev, dtype, cases):
        arrays, weights = inputs(loss, dtype)
        d_arrays = [cuda.to_device(a) for a in arrays]
        d_weights = cuda.to_device(weights)
        for method, reduction, weighted in cases:
            what = f"{loss.name}.{method}({reduction}, weighted={weighted})"
            want = getattr(loss, method)(*map(f64, arrays), reduction=reduction,
                                         sample_weight=f64(weights) if weighted else None)
            got = getattr(dev, method)(*d_arrays, reduction=reduction, sample_weight=d_weights if weighted else None)
            if not isinstance(want, tuple):
                want, got = (want,), (got,)
            assert len(got) == len(want), what
            for g, w in zip(got, want):
                close(host(g), w, dtype, what)

    # the kinds the CUDA backend emits kernels for (row losses have no CUDA kernels yet)
    CUDA_CATALOG = [n for n in catalog.names() if backend.supports(load_spec(catalog.spec_path(n)))]

    CATALOG_CASES = [(name, dtype) for k, name in enumerate(CUDA_CATALOG) for dtype in DTYPES
                     if FULL or dtype == DTYPES[k % 2]]

    @pytest.mark.parametrize("name,dtype", CATALOG_CASES, ids=[f"{n}-{np.dtype(d).name}" for n, d in CATALOG_CASES])
    def test_every_catalog_loss_matches_cpu(name, dtype):
        loss = symloss.load(name)
        check_against_cpu(loss, device_loss(loss, ONE_BLOCK), dtype, CASES)

    @pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
    @pytest.mark.parametrize("name", ["huber", "bce_logits"])
    def test_sums_across_blocks_match_cpu(name, dtype):
        loss = symloss.load(name)
        check_against_cpu(loss, device_loss(loss, BLOCKS), dtype, ALL_CASES)

    @pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
    def test_parameter_derivatives_match_cpu(dtype):
        """Barron's d/dalpha per element and summed across blocks, weighted and not, both sides of alpha = 2."""
        loss = symloss.load("general_robust")
        dev = device_loss(loss, BLOCKS)
        arrays, weights = inputs(loss, dtype, seed=4)
        d_arrays = [cuda.to_device(a) for a in arrays]
        for alpha, reduction, weighted in ((0.5, "none", True), (0.5, "mean", True), (3.0, "sum", False),
                                           (-2.0, "mean", False)):
            w = weights if weighted else None
            want = loss.param_grad(*arrays, reduction=reduction, sample_weight=w, alpha=alpha)
            got = dev.param_grad(*d_arrays, reduction=reduction, sample_weight=cuda.to_device(w) if weighted else None,
                                 alpha=alpha)
            assert list(got) == ["alpha"]
            close(host(got["alpha"]), want["alpha"], dtype, f"param_grad(alpha={alpha}, {reduction}, {weighted})")

    def test_parameters_named_like_loop_variables():
        """A parameter named k or j (the kernels' loop variables are _k, _j) keeps its value."""
        loss = symloss.Loss.from_expr("k * (yhat - y)**2 + j * yhat", name="named_k_j_sim", params={"k": 3.0, "j": 0.5})
        (y, yhat), w = inputs(loss, np.float64, seed=6)
        got = device_loss(loss, BLOCKS).grad(cuda.to_device(y), cuda.to_device(yhat), sample_weight=cuda.to_device(w))
        close(got.copy_to_host(), loss.grad(y, yhat, sample_weight=w), np.float64, "grad with params k, j")

    def test_parameters_and_out_buffers():
        loss = symloss.load("huber")
        dev = device_loss(loss)
        (y, yhat), _ = inputs(loss, np.float64, seed=1)
        dy, dyhat = cuda.to_device(y), cuda.to_device(yhat)
        out = cuda.device_array(N, np.float64)
        got = dev.grad(dy, dyhat, delta=0.3, out=out)
        assert got is out
        close(out.copy_to_host(), loss.grad(y, yhat, delta=0.3), np.float64, "grad(out=)")
        gh = (cuda.device_array(N, np.float64), cuda.device_array(N, np.float64))
        got = dev.grad_hessian(dy, dyhat, delta=0.3, out=gh)
        assert got[0] is gh[0] and got[1] is gh[1]
        want_g, want_h = loss.grad_hessian(y, yhat, delta=0.3)
        close(gh[0].copy_to_host(), want_g, np.float64, "grad_hessian(out=) g")
        close(gh[1].copy_to_host(), want_h, np.float64, "grad_hessian(out=) h")
        v, g = dev.value_and_grad(dy, dyhat, reduction="sum", delta=2.5)
        want_v, want_g = loss.value_and_grad(y, yhat, reduction="sum", delta=2.5)
        close(v.copy_to_host(), want_v, np.float64, "value")
        close(g.copy_to_host(), want_g, np.float64, "grad")

    def test_out_buffers_that_overlap_are_refused():
        """out may be an input exactly (elementwise: read before written), never a part of one or
        of another output."""
        loss = symloss.load("huber")
        dev = device_loss(loss)
        (y, yhat), _ = inputs(loss, np.float64, seed=1)
        dy, dyhat = cuda.to_device(y), cuda.to_device(yhat)
        got = dev.grad(dy, dyhat, out=dyhat)  # in place
        close(got.copy_to_host(), loss.grad(y, yhat), np.float64, "grad(out=yhat)")
        big = cuda.device_array(2 * N, np.float64)
        big[:N].copy_to_device(y)
        with pytest.raises(InputError, match="share memory with the inputs"):
            dev.grad(big[:N], dyhat, out=big[1:N + 1])
        with pytest.raises(InputError, match="with each other"):
            dev.grad_hessian(dy, cuda.to_device(yhat), out=(big[:N], big[N // 2:N // 2 + N]))

    def test_shapes_are_kept_and_targets_are_cast():
        loss = symloss.load("mse")
        dev = device_loss(loss)
        rng = np.random.default_rng(2)
        yhat = rng.normal(size=(3, 5)).astype(np.float32)
        y = rng.integers(-2, 3, size=(3, 5))  # integer targets become float32
        v, g = dev.value_and_grad(cuda.to_device(y), cuda.to_device(yhat), reduction="none")
        want_v, want_g = loss.value_and_grad(y, yhat, reduction="none")
        close(v.copy_to_host(), want_v, np.float32, "value")
        close(g.copy_to_host(), want_g, np.float32, "grad")

    def test_several_predictions_fill_the_symmetric_hessian():
        loss = symloss.Loss.from_expr(
            "(y - mu)**2 / (2 * v) + log(v) / 2",
            name="gaussian_nll_sim",
            inputs={"y": "target", "mu": "prediction", "v": {"role": "prediction", "domain": "positive"}},
        )
        dev = device_loss(loss)
        rng = np.random.default_rng(3)
        y, mu = rng.normal(size=N), rng.normal(size=N)
        v = rng.uniform(0.5, 2.0, N)
        w = rng.uniform(0.2, 2.0, N)
        d = [cuda.to_device(a) for a in (y, mu, v)]
        g, h = dev.grad_hessian(*d, reduction="mean", sample_weight=cuda.to_device(w))
        want_g, want_h = loss.grad_hessian(y, mu, v, reduction="mean", sample_weight=w)
        for a, b in zip(host(g), want_g):
            close(a, b, np.float64, "grad")
        close(host(h), want_h, np.float64, "hessian")
        assert host(h).shape == (2, 2, N)

    def test_generated_catalog_modules_are_used():
        loss = symloss.load("huber")
        path = C.module_path_for(loss.spec, loss.module)
        assert path.parent.name == "cuda" and path.name == "huber.py"

    def test_dispatch_sends_device_arrays_to_the_kernels():
        loss = symloss.load("mse")

        class Host:
            spec, module, name = loss.spec, loss.module, loss.name

            @C.dispatch
            def value(self, *arrays, **kwargs):
                return "cpu"

        h = Host()
        h._device_loss = device_loss(loss)
        y, yhat = np.zeros(N), np.ones(N)
        assert h.value(y, yhat) == "cpu"
        got = h.value(cuda.to_device(y), cuda.to_device(yhat))
        assert float(got.copy_to_host()) == 1.0
        assert C.is_device_array(cuda.to_device(y)) and not C.is_device_array(y)

    def test_bad_input_is_a_clear_error():
        loss = symloss.load("mse")
        dev = device_loss(loss)
        y = cuda.to_device(np.zeros(N))
        with pytest.raises(InputError, match="shape"):
            dev.value(y, cuda.to_device(np.zeros(N + 1)))
        with pytest.raises(InputError, match="device array"):
            dev.value(np.zeros(N), y)
        with pytest.raises(InputError, match="takes 2 arrays"):
            dev.value(y)
        with pytest.raises(InputError, match="unknown parameter"):
            dev.value(y, y, delta=1.0)
