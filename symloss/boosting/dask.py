"""The start score from Dask collections: a distributed Newton over partitions.

Each Newton iteration maps :meth:`BoostLoss.stats` (sums of the weighted
gradient and Hessian at one constant margin) over the label partitions where
they live and adds the few numbers that come back; the labels are never
gathered to one machine.  Labels and weights are persisted once first, so the
iterations do not recompute them from their sources.  Works with Dask arrays,
Series and one-column DataFrames, on whatever scheduler is active (a
``distributed.Client`` when one exists).
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from . import start as _start
from .core import BoostLoss


def _partitions(collection) -> list:
    if hasattr(collection, "to_delayed"):
        parts = collection.to_delayed()
        return list(np.ravel(parts)) if isinstance(parts, np.ndarray) else list(parts)
    raise InputError(f"expected a Dask array, Series or DataFrame, got {type(collection).__name__}")


def _stats(bl: BoostLoss, y, w, c):
    y = np.asarray(y).reshape(-1)
    w = None if w is None else np.asarray(w).reshape(-1)
    return bl.stats(y, w, c)


def _max_label(y):
    y = np.asarray(y)
    return int(y.max()) if y.size else -1


def _sum(results):
    first = results[0]
    return tuple(sum(r[i] for r in results) for i in range(len(first)))


def base_margin(bl: BoostLoss, y, sample_weight=None, num_class: int | None = None):
    """The optimal constant raw margin of ``bl`` over Dask labels ``y`` (and weights)."""
    import dask

    y, sample_weight = dask.persist(y, sample_weight)
    ys = _partitions(y)
    ws = _partitions(sample_weight) if sample_weight is not None else [None] * len(ys)
    if len(ws) != len(ys):
        raise InputError(f"labels have {len(ys)} partitions and sample weights {len(ws)}; partition them alike")
    bl_d = dask.delayed(bl)  # shipped once per iteration's graph, rebuilt (cached) on each worker
    stats_d = dask.delayed(_stats, pure=True)

    def stats(c):
        return _sum(dask.compute(*[stats_d(bl_d, yp, wp, c) for yp, wp in zip(ys, ws)]))

    if bl.row:
        k = num_class or max(dask.compute(*[dask.delayed(_max_label)(yp) for yp in ys])) + 1
        return _start.newton_nd(stats, k, bl.name)
    return _start.newton_1d(stats, bl.name)


def constant_like(y, start):
    """A Dask collection partitioned like ``y`` holding the start margin per sample ((n,) or (n, K)):
    LightGBM's ``init_score``."""
    start = np.asarray(start, dtype=np.float64)
    if hasattr(y, "map_blocks"):  # a Dask array
        if start.ndim == 0:
            return y.map_blocks(lambda b: np.full(b.shape[0], float(start)), dtype=np.float64)
        k = start.size
        return y.map_blocks(lambda b: np.tile(start, (b.shape[0], 1)), dtype=np.float64, new_axis=1,
                            chunks=(y.chunks[0], (k,)))
    import pandas as pd

    if start.ndim == 0:
        return y.map_partitions(lambda s: pd.Series(np.full(len(s), float(start)), index=s.index),
                                meta=pd.Series(dtype=np.float64))
    cols = [f"class_{j}" for j in range(start.size)]
    return y.map_partitions(lambda s: pd.DataFrame(np.tile(start, (len(s), 1)), index=s.index, columns=cols),
                            meta=pd.DataFrame({c: pd.Series(dtype=np.float64) for c in cols}))
