"""Dask data for the Objective: X^T g and X^T diag(h) X reduced chunk by chunk
where each chunk lives; only (p1 * m)-sized partial sums travel to the client.

X, y and sample_weight are persisted once (as dask-glm does), so each solver
iteration sends the coefficients and the loss's spec, not the data.
"""
from __future__ import annotations

import numpy as np

from ._objective import block_terms


def is_dask(x) -> bool:
    return type(x).__module__.split(".")[0] == "dask"


def _add(a, b):
    return {k: a[k] + b[k] for k in a}


class DaskData:
    def __init__(self, X, Y, sw, intercept: bool):
        import dask
        import dask.array as da

        X = X if is_dask(X) else da.from_array(np.asarray(X))
        X = X.rechunk({1: -1}).astype(float)
        rows = X.chunks[0]
        Y = (Y if is_dask(Y) else da.from_array(np.asarray(Y))).rechunk({0: rows})
        sw = (sw if is_dask(sw) else da.from_array(np.asarray(sw, dtype=float))).rechunk({0: rows})
        X, Y, sw = dask.persist(X, Y, sw)
        self.blocks = list(zip(X.to_delayed().ravel(), Y.to_delayed().ravel() if Y.ndim == 1
                               else Y.rechunk({1: -1}).to_delayed().ravel(), sw.to_delayed().ravel()))
        self.intercept = intercept
        self.weight_sum = float(sw.sum().compute())
        self.n = X.shape[0]

    def reduce(self, head, W, order):
        import dask

        parts = [dask.delayed(block_terms, pure=False)(head, x, y, w, W, order, self.intercept)
                 for x, y, w in self.blocks]
        while len(parts) > 1:  # a tree of sums on the workers
            parts = [dask.delayed(_add)(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
                     for i in range(0, len(parts), 2)]
        return parts[0].compute()
