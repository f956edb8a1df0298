"""Dask data for the Objective: X^T g and X^T diag(h) X reduced chunk by chunk
where each chunk lives; only (p1 * m)-sized partial sums travel to the client.

X, y and sample_weight are persisted once (as dask-glm does), so each solver
iteration sends the coefficients and the loss's spec, not the data.
"""
from __future__ import annotations

import numpy as np

from ..dask_arrays import is_dask  # noqa: F401  (re-exported for the estimators)
from ._objective import block_terms


class DaskData:
    speculative = True  # each pass is a round trip: Newton's trial step brings its Hessian along
    def __init__(self, X, Y, sw, intercept: bool):
        import dask
        import dask.array as da

        X = X if is_dask(X) else da.from_array(np.asarray(X))
        X = X.rechunk({1: -1}).astype(float)
        rows = X.chunks[0]
        Y = (Y if is_dask(Y) else da.from_array(np.asarray(Y))).rechunk({0: rows})
        sw = (sw if is_dask(sw) else da.from_array(np.asarray(sw, dtype=float))).rechunk({0: rows})
        if Y.ndim == 2:
            Y = Y.rechunk({1: -1})
        # persisted collections hold the chunks' futures: keep them, or the data is released
        self.arrays = X, Y, sw = dask.persist(X, Y, sw)
        self.blocks = list(zip(X.to_delayed().ravel(), Y.to_delayed().ravel(), sw.to_delayed().ravel()))
        self.intercept = intercept
        self.weight_sum = float(sw.sum().compute())
        self.n = X.shape[0]

    def reduce(self, head, W, order):
        import dask

        parts = [dask.delayed(block_terms, pure=False)(head, x, y, w, W, order, self.intercept)
                 for x, y, w in self.blocks]
        parts = dask.compute(*parts)  # each a few (p1 * m)-sized arrays
        return {k: sum(part[k] for part in parts) for k in parts[0]}
