"""Comparisons shared by the CUDA simulator tests (test_cuda_sim.py, test_cuda_row_sim.py).

The CPU reference runs in float64 at the device's inputs: float32 device results are
compared against the exact-to-rounding value, and the CPU kernels compile one Numba
signature per method whatever the device dtype (cold compiles are CI's cost)."""
import numpy as np


def f64(a):
    return a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a


def host(x):
    if isinstance(x, tuple):
        return tuple(host(a) for a in x)
    return x.copy_to_host()


def close(got, want, dtype, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert got.dtype == dtype, (what, got.dtype)
    if dtype == np.float32:  # against float64: the device's float32 rounding (the simulator's math runs in double)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=what)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=what)
