"""Class-axis layout changes between a booster's arrays and symloss's row kernels.

The row kernels write rows of K classes (C order, (n, K)); LightGBM keeps
multi-class scores class-major and flattens the gradients it gets back in F
order, converting them to float32: two more passes, the first a strided
transpose.  numpy's copy of a C (n, K) array into a (K, n) one runs about 3x
slower than this blocked copy for small K (each element written touches a new
cache line), which also converts the dtype in the same pass, in parallel over
row blocks.  (The other direction, LightGBM's F-ordered margins into C rows,
numpy copies at memory speed.)
"""
from __future__ import annotations

import numba
import numpy as np

_ROWS = 512  # rows per block: 512 x K values of one block stay in L1/L2 while their lines are written


@numba.njit(parallel=True, cache=True, nogil=True)
def _classes_from_rows(src, dst, floor):  # pragma: no cover - compiled
    """dst[j, i] = max(src[i, j], floor): (n, K) rows into (K, n) class-major, cast to dst's
    dtype (NaN stays NaN, as np.maximum keeps it; floor -inf: a plain copy)."""
    n, k = src.shape
    for b in numba.prange((n + _ROWS - 1) // _ROWS):
        lo = b * _ROWS
        hi = min(n, lo + _ROWS)
        for j in range(k):
            for i in range(lo, hi):
                v = src[i, j]
                dst[j, i] = floor if v < floor else v


# below this many values numpy's copy is as fast and needs no compiled function
_SMALL = 1 << 15


def class_major_into(a: np.ndarray, dst_t: np.ndarray, floor: float | None = None) -> np.ndarray:
    """Copy C-contiguous (n, K) ``a`` into the (K, n) C-contiguous ``dst_t`` (its dtype); returns
    ``dst_t.T``: ``a``'s values as an F-contiguous (n, K) array.  ``floor``: ``max(a, floor)``
    in the same pass, compared in ``a``'s dtype (the "clip" Hessian policy without its own pass
    over ``a``)."""
    if a.size >= _SMALL and a.flags.c_contiguous:
        _classes_from_rows(a, dst_t, a.dtype.type(-np.inf if floor is None else floor))
    else:
        if floor is not None:
            np.maximum(a, a.dtype.type(floor), out=a)
        np.copyto(dst_t, a.T, casting="same_kind")
    return dst_t.T
