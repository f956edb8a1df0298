"""The CUDA row kernels against the CPU RowLoss, under numba's CUDA simulator (no GPU needed).

As in test_cuda_sim.py: in a normal `pytest` run one test starts a fresh
interpreter with NUMBA_ENABLE_CUDASIM=1 and runs this file's checks there.
Sizes are tiny (the simulator runs every thread as a Python thread): a few
rows of 5 or 37 classes, groups of 32 threads (one warp per row) or 8 (one
block per row), and a grid capped at 2 blocks so the kernels loop over rows
and every reduction crosses threads.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
# The default run covers each layout once per dtype pairing and a subset of the
# other losses, to keep the suite's time; SYMLOSS_SIM_FULL=1 runs the whole matrix.
FULL = os.environ.get("SYMLOSS_SIM_FULL") == "1"

if not SIMULATED:

    def test_cuda_row_kernels_under_the_simulator():
        env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", __file__]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, (proc.stdout[-6000:] + "\n" + proc.stderr[-3000:]).strip()
        summary = proc.stdout.strip().splitlines()[-1]
        if " passed" not in summary:
            pytest.skip(f"the simulator checks did not run: {summary}")

    def test_online_softmax_is_found_for_softmax_losses():
        """The max, row and sum steps of softmax losses fuse (sums independent of m or e^-m)."""
        from symloss import catalog
        from symloss.derive.row import RowDerivation
        from symloss.ir.row import build_row_ir
        from symloss.backends.numba_cuda import render_row as cuda_row
        from symloss.spec import load_spec

        for name in ("cross_entropy", "poly1_cross_entropy", "focal"):
            ir = build_row_ir(RowDerivation(load_spec(catalog.spec_path(name))), cuda_row.KERNELS)
            for kname in cuda_row.KERNELS:
                steps = ir.kernels[kname].steps
                kinds = cuda_row.online_sums(steps, 0)
                assert kinds is not None and "scaled" in kinds, (name, kname, kinds)

    def test_plan_by_k():
        from symloss.backends.numba_cuda.runtime_row import plan

        assert plan(1024, 1, 4).layout == "warp"
        assert plan(1024, 1, 4).threads == 128
        assert plan(8192, 1, 4).layout == "block"
        assert plan(131072, 1, 4).layout == "stream"
        assert plan(8192, 2, 8).layout == "stream"

else:
    pytest.importorskip("numba.cuda", reason="neither numba's built-in CUDA target nor numba-cuda is installed")

    from numba import cuda

    from cuda_sim_compare import close, f64, host

    import symloss
    from symloss.errors import InputError
    from symloss.backends.numba_cuda import runtime_row as R

    LAYOUTS = [("warp", 32), ("block", 8), ("stream", 8)]
    DTYPES = (np.float32, np.float64)
    MODULES = {}

    def device(loss, layout="block", threads=8):
        if loss.name not in MODULES:
            MODULES[loss.name] = R.load_module(loss.spec)
        return R.DeviceRowLoss(loss.spec, MODULES[loss.name], layout=layout, threads=threads, max_blocks=2)

    def check(loss, dev, arrays, dtype, cases, **kw):
        """The device kernels against the CPU kernels (in float64: cuda_sim_compare) at the same inputs."""
        d_arrays = [cuda.to_device(a) for a in arrays]
        batch = arrays[-1].shape[:-1]
        w = np.random.default_rng(9).uniform(0.2, 2.0, batch).astype(dtype)
        kw64 = {k: f64(v) for k, v in kw.items()}
        for method, reduction, weighted in cases:
            what = f"{loss.name}.{method}({reduction}, weighted={weighted}, {kw})"
            sw = dict(sample_weight=f64(w)) if weighted else {}
            dsw = dict(sample_weight=cuda.to_device(w)) if weighted else {}
            extra, dextra = {}, {}
            if method == "hvp":
                v = np.random.default_rng(8).normal(size=arrays[-1].shape).astype(dtype)
                extra, dextra = dict(v=f64(v)), dict(v=cuda.to_device(v))
            want = getattr(loss, method)(*map(f64, arrays), reduction=reduction, **sw, **extra, **kw64)
            got = getattr(dev, method)(*d_arrays, reduction=reduction, **dsw, **dextra, **kw)
            if not isinstance(want, tuple):
                want, got = (want,), (got,)
            for g, x in zip(got, want):
                close(host(g), x, dtype, what)

    def ce_inputs(n, k, dtype, seed=0):
        rng = np.random.default_rng(seed)
        z = rng.normal(scale=2.0, size=(n, k)).astype(dtype)
        y = rng.dirichlet(np.ones(k), size=n).astype(dtype)
        t = rng.integers(0, k, n)
        t[1] = -100  # ignored
        return y, t, z

    VAG = [("value_and_grad", "mean", False), ("value_and_grad", "sum", True), ("value_and_grad", "none", False)]
    EVERY = VAG + [("value", "mean", True), ("value", "none", False), ("grad", "mean", False),
                   ("hessian_diag", "none", False), ("grad_hessian_diag", "none", True), ("hvp", "none", True)]

    CE_CASES = [(layout, threads, dtype) for k, (layout, threads) in enumerate(LAYOUTS) for dtype in DTYPES
                if FULL or dtype == DTYPES[k % 2]]

    @pytest.mark.parametrize("layout,threads,dtype", CE_CASES,
                             ids=[f"{c[0]}-{np.dtype(c[2]).name}" for c in CE_CASES])
    def test_cross_entropy_matches_cpu(layout, threads, dtype):
        loss = symloss.load("cross_entropy")
        dev = device(loss, layout, threads)
        for k in (5, 37) if FULL else (5 if layout == "warp" else 37,):
            y, t, z = ce_inputs(4, k, dtype, seed=k)
            check(loss, dev, [y, z], dtype, VAG)
            check(loss, dev, [t, z], dtype, VAG, label_smoothing=0.1)
        weight = np.random.default_rng(3).uniform(0.5, 2.0, z.shape[-1]).astype(dtype)
        check(loss, dev, [t, z], dtype, [("value_and_grad", "mean", True), ("value_and_grad", "mean", False)],
              weight=weight)
        check(loss, dev, [y, z], dtype, [("value_and_grad", "mean", False)], weight=weight, label_smoothing=0.2)

    @pytest.mark.parametrize("layout,threads", LAYOUTS if FULL else LAYOUTS[1:2], ids=lambda x: str(x))
    def test_cross_entropy_every_method(layout, threads):
        loss = symloss.load("cross_entropy")
        dev = device(loss, layout, threads)
        y, t, z = ce_inputs(4, 11, np.float64, seed=4)
        check(loss, dev, [y, z], np.float64, EVERY)
        t = np.where(t == -100, 2, t)
        check(loss, dev, [t, z], np.float64, EVERY, ignore_index=2)

    def test_masked_logits_and_a_leading_batch_axis():
        """-inf logits (masked classes) anywhere in the row, before any finite one included."""
        loss = symloss.load("cross_entropy")
        dev = device(loss, "stream", 4)
        y, t, z = ce_inputs(6, 13, np.float64, seed=5)
        z[:, 0] = -np.inf
        z[2, :7] = -np.inf
        t = np.where(t == -100, 3, t)
        t[2] = 9
        check(loss, dev, [t.reshape(2, 3), z.reshape(2, 3, 13)], np.float64, VAG)

    OTHERS = ["nll", "kl_divergence", "poly1_cross_entropy", "focal", "dice", "triplet"]

    @pytest.mark.parametrize("name", OTHERS if FULL else ["kl_divergence", "focal", "triplet"])
    def test_other_row_losses_match_cpu(name):
        loss = symloss.load(name)
        rng = np.random.default_rng(6)
        arrays = []
        for inp in loss.spec_inputs:
            shape = (4, 9) if inp.shape == "vector" else (4,)
            if inp.domain == "simplex":
                a = rng.dirichlet(np.ones(9), size=4)
            elif inp.domain in ("positive", "unit"):
                a = rng.uniform(0.1, 0.9, shape)
            elif inp.domain == "log_simplex":
                a = np.log(rng.dirichlet(np.ones(9), size=4))
            else:
                a = rng.normal(size=shape)
            arrays.append(a)
        check(loss, device(loss, "block", 4), arrays, np.float64, VAG + [("hessian_diag", "none", False)])

    def test_row_loss_methods_dispatch_device_arrays():
        loss = symloss.load("cross_entropy")
        y, t, z = ce_inputs(3, 6, np.float32)
        v, g = loss.value_and_grad(cuda.to_device(t), cuda.to_device(z))
        want_v, want_g = loss.value_and_grad(t, z)
        close(v.copy_to_host(), want_v, np.float32, "value")
        close(g.copy_to_host(), want_g, np.float32, "grad")
        assert isinstance(loss.value(t, z), np.float32)  # host arrays stay on the CPU

    def test_bad_input_is_a_clear_error():
        loss = symloss.load("cross_entropy")
        dev = device(loss)
        z = cuda.to_device(np.zeros((3, 4)))
        with pytest.raises(InputError, match="shape"):
            dev.value(cuda.to_device(np.zeros((3, 5))), z)
        with pytest.raises(InputError, match="integers"):
            dev.value(cuda.to_device(np.zeros(3)), z)
        with pytest.raises(InputError, match="device array"):
            dev.value(np.zeros((3, 4)), z)
        with pytest.raises(InputError, match="no CUDA kernel"):
            dev.hessian(z, z)
        with pytest.raises(InputError, match="unknown parameter"):
            dev.value(z, z, delta=1.0)
        # a row's outputs are written before the row is read again: no overlap at all
        t = cuda.to_device(np.array([0, 2, 1]))
        zz = cuda.to_device(np.random.default_rng(0).normal(size=(3, 4)))
        with pytest.raises(InputError, match="share memory with the inputs"):
            dev.grad(t, zz, out=zz)
        big = cuda.device_array(24, np.float64)
        with pytest.raises(InputError, match="share memory with the inputs"):
            dev.hvp(t, zz, v=big[:12].reshape(3, 4), out=big[8:20].reshape(3, 4))
        with pytest.raises(InputError, match="with each other"):
            dev.grad_hessian_diag(t, zz, out=(big[:12].reshape(3, 4), big[4:16].reshape(3, 4)))
