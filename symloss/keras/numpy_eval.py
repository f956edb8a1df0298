"""A SymlossLoss evaluated on numpy arrays by symloss's kernels, with the loss's Keras conventions."""
from __future__ import annotations

import numpy as np

from ..errors import InputError


def _kernels(loss):
    from ..runtime.loss import Loss, load

    return load(loss.source) if loss.source is not None else Loss.from_spec(loss.spec)


def evaluate(loss, y_true, y_pred) -> float:
    """The reduced loss (Keras's reductions; no sample weights) by the Numba kernels."""
    spec = loss.spec
    row = spec.kind == "row"
    L = _kernels(loss)
    data = [i for i in spec.inputs if i.shape != "class"]
    preds = [i for i in data if i.role == "prediction"]
    targets = [i for i in data if i.role != "prediction"]

    def split(v, n):
        if isinstance(v, (list, tuple)):
            return [np.asarray(x, np.float64) for x in v]
        v = np.asarray(v)
        return [v.astype(np.float64)] if n == 1 else [np.take(v, i, axis=-2 if row else -1).astype(np.float64)
                                                      for i in range(n)]

    pv = split(y_pred, len(preds))
    tv = split(y_true, len(targets)) if targets else []
    first = pv[0]
    for k, (inp, t) in enumerate(zip(targets, tv)):
        if row and inp.indices and (t.ndim == first.ndim - 1 or (t.shape[-1] == 1 and first.shape[-1] != 1)):
            t = np.eye(first.shape[-1])[t.reshape(first.shape[:-1]).astype(np.int64)]
        elif not row and t.ndim == first.ndim - 1:
            t = t[..., None]
        elif not row and t.ndim == first.ndim + 1 and t.shape[-1] == 1:
            t = t[..., 0]
        tv[k] = np.broadcast_to(t, first.shape if not (row and inp.shape == "scalar") else first.shape[:-1])
    bound = dict(zip([i.name for i in preds] + [i.name for i in targets], pv + tv))
    values = L.value(*[bound[i.name] for i in data], reduction="none", **loss.params)
    if not row and values.ndim >= 2:
        values = values.mean(axis=-1)
    if loss.reduction in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
        return float(values.mean())
    if loss.reduction == "sum":
        return float(values.sum())
    raise InputError(f"LossMonitor: reduction {loss.reduction!r} gives no single value")
