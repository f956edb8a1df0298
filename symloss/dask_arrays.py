"""Loss methods on Dask arrays: lazy, chunk by chunk, with exact means.

    from symloss import dask_arrays as sd
    v = sd.value(L, y, yhat, sample_weight=w)      # a lazy 0-d dask array
    g = sd.grad(L, y, yhat)                        # lazy, chunked like yhat

Each chunk runs the numpy kernels where it lives, with reduction "sum" (or
"none"); a mean divides the chunks' total by the total weight (sum of
``sample_weight``, or the element count; for row losses the rows that count,
as the numpy API's mean), so means and weighted means are exact across chunks,
never a mean of chunk means.  The loss travels to workers as its spec
(``LossRef``), not as its compiled module.

Elementwise losses take arrays of one shape (chunks are unified); row losses
take 2-D predictions (n, K) chunked by rows only, targets of shape (n,)
(class indices) or (n, K).  Only ``import dask`` is needed, and only here.
"""
from __future__ import annotations

import functools
import pickle
import sys

import numpy as np

from . import catalog


def load(name):  # imported on use: runtime/loss.py may import this module (see dispatch)
    from .runtime import load as _load

    return _load(name)


def is_dask(x) -> bool:
    """A Dask collection, recognised without importing dask."""
    return type(x).__module__.split(".")[0] == "dask"


def dispatch(method):
    """Decorator for the Loss/RowLoss methods (value, grad, value_and_grad, hessian,
    grad_hessian): Dask arrays (any positional array or sample_weight) go to this
    module's function of the same name; everything else to the method."""
    name = method.__name__

    @functools.wraps(method)
    def wrapper(self, *arrays, **kwargs):
        if any(is_dask(a) for a in arrays) or is_dask(kwargs.get("sample_weight")):
            return getattr(sys.modules[__name__], name)(self, *arrays, **kwargs)
        return method(self, *arrays, **kwargs)

    return wrapper


_FROM_SPEC: dict = {}  # per process: a spec's loss is derived and compiled once, not per task


class LossRef:
    """A loss that pickles as its catalog name or its spec, rebuilt on the other side."""

    def __init__(self, loss):
        self.loss = load(loss) if isinstance(loss, str) else loss

    def __getstate__(self):
        name = self.loss.name
        if (catalog.specs_dir() / f"{name}.toml").is_file() and load(name) is self.loss:
            return {"name": name}
        return {"spec": self.loss.spec}

    def __setstate__(self, state):
        if "name" in state:
            self.loss = load(state["name"])
            return
        from .runtime import Loss

        spec = state["spec"]
        key = pickle.dumps(spec)
        if key not in _FROM_SPEC:
            _FROM_SPEC[key] = Loss.from_spec(spec)
        self.loss = _FROM_SPEC[key]


def restore(ref: LossRef):
    """The loss a LossRef carried (for ``Loss.__reduce__``: losses pickle by spec)."""
    return ref.loss


def _is_row(loss) -> bool:
    return getattr(loss, "kind", None) == "row"


def _dtype(arrays):
    """The float type the kernels compute in (integer targets such as class indices do not count)."""
    floats = [a.dtype for a in arrays if a.dtype.kind == "f"]
    return np.result_type(*floats) if floats else np.dtype(np.float64)


# ---- chunk functions (module level: pickled by reference) ------------------------
def _chunk(ref, method, reduction, has_w, params, *blocks):
    arrays, w = (blocks[:-1], blocks[-1]) if has_w else (blocks, None)
    return getattr(ref.loss, method)(*arrays, reduction=reduction, sample_weight=w, **params)


def _chunk_sum(ref, has_w, params, *blocks):
    return np.asarray(_chunk(ref, "value", "sum", has_w, params, *blocks), dtype=np.float64).reshape(1)


def _chunk_part(ref, method, index, has_w, params, *blocks):
    out = _chunk(ref, method, "sum" if method == "grad" else "none", has_w, params, *blocks)
    return out[index] if index is not None else out


def _row_weight(ref, ignore_index, class_inputs, has_w, *blocks):
    """Per-row weight in a row loss's mean: sample weight x mean_weight at the class, 0 if ignored."""
    loss = ref.loss
    y = blocks[0]
    w = np.asarray(blocks[-1], dtype=np.float64) if has_w else np.ones(y.shape[0])
    if y.ndim == 1:  # class indices
        keep = y != ignore_index
        mw = loss.spec.row.mean_weight
        if mw is not None:
            cw = class_inputs.get(mw)
            if cw is not None:
                w = w * np.asarray(cw, dtype=np.float64)[np.where(keep, y, 0)]
        w = np.where(keep, w, 0.0)
    return w


# ---- the layer ----------------------------------------------------------------------
class _Plan:
    """Arrays aligned for blockwise calls, and the mean's denominator (lazy)."""

    def __init__(self, loss, arrays, sample_weight, params):
        import dask.array as da

        self.da = da
        self.loss = loss
        self.ref = LossRef(loss)
        self.row = _is_row(loss)
        self.params = params
        arrays = [da.asarray(a) for a in arrays]
        self.dtype = _dtype(arrays)
        if self.row:
            z = arrays[-1].rechunk({1: -1})
            rows = z.chunks[0]
            arrays = [a.rechunk({0: rows, **({1: -1} if a.ndim == 2 else {})}) for a in arrays[:-1]] + [z]
        else:
            arrays = list(da.broadcast_arrays(*arrays))
            arrays = list(da.core.unify_chunks(*sum(([a, tuple(range(a.ndim))] for a in arrays), []))[1])
        self.has_w = sample_weight is not None
        if self.has_w:
            w = da.asarray(sample_weight)
            if self.row:
                w = w.rechunk({0: arrays[-1].chunks[0]})
            else:
                w = da.broadcast_to(w, arrays[-1].shape).rechunk(arrays[-1].chunks)
            self.w = w
        self.arrays = arrays

    def blocks(self):
        return self.arrays + ([self.w] if self.has_w else [])

    def _indexed(self):
        """(array, index) pairs for da.blockwise: rows on "i", a class axis on "k"."""
        out = []
        for a in self.blocks():
            out += [a, "ik"[: a.ndim] if self.row else tuple(range(a.ndim))]
        return out

    def total(self):
        da = self.da
        if self.row:
            parts = da.blockwise(_chunk_sum, "i", self.ref, None, self.has_w, None, self.params, None,
                                 *self._indexed(), concatenate=True, dtype=np.float64,
                                 adjust_chunks={"i": 1})
        else:
            parts = da.map_blocks(_chunk_sum_nd, self.ref, self.has_w, self.params, *self.blocks(),
                                  dtype=np.float64, chunks=tuple((1,) * len(c) for c in self.arrays[-1].chunks))
        return parts.sum()

    def denominator(self, ignore_index, class_inputs):
        da = self.da
        if not self.row:
            return self.w.sum(dtype=np.float64) if self.has_w else da.asarray(float(self.arrays[-1].size))
        blocks = [self.arrays[0]] + ([self.w] if self.has_w else [])
        idx = sum(([b, "ik"[: b.ndim]] for b in blocks), [])
        w = da.blockwise(_row_weight, "i", self.ref, None, ignore_index, None, class_inputs, None,
                         self.has_w, None, *idx, concatenate=True, dtype=np.float64)
        return w.sum()

    def elementwise(self, method, index=None):
        """Per-element (or per-row-and-class) output of ``method``, chunked like the predictions."""
        if self.row:
            return self.da.blockwise(_chunk_part, "ik", self.ref, None, method, None, index, None, self.has_w, None,
                                     self.params, None, *self._indexed(), concatenate=True, dtype=self.dtype)
        return self.da.map_blocks(_chunk_part, self.ref, method, index, self.has_w, self.params, *self.blocks(),
                                  dtype=self.dtype, chunks=self.arrays[-1].chunks)


def _chunk_sum_nd(ref, has_w, params, *blocks):
    return _chunk_sum(ref, has_w, params, *blocks).reshape((1,) * blocks[0].ndim)


def _split(loss, params):
    """Row losses: class inputs and ignore_index are keywords beside the parameters."""
    params = dict(params)
    ignore = params.pop("ignore_index", -100)
    class_inputs = {k: params[k] for k in getattr(loss, "class_inputs", {}) if k in params}
    return params, ignore, class_inputs


def _scaled(x, reduction, denom):
    return x / denom if reduction == "mean" else x


def value(loss, *arrays, reduction="mean", sample_weight=None, **params):
    """The reduced loss (a lazy 0-d array), or per-element / per-row values (reduction="none")."""
    loss = load(loss) if isinstance(loss, str) else loss
    params, ignore, cls = _split(loss, params)
    kw = dict(params, **({"ignore_index": ignore} if _is_row(loss) else {}))
    plan = _Plan(loss, arrays, sample_weight, kw)
    if reduction == "none":
        if plan.row:
            return plan.da.blockwise(_chunk_part, "i", plan.ref, None, "value", None, None, None, plan.has_w, None,
                                     kw, None, *plan._indexed(), concatenate=True, dtype=plan.dtype)
        return plan.elementwise("value")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return _scaled(plan.total(), reduction, plan.denominator(ignore, cls)).astype(plan.dtype)


def grad(loss, *arrays, reduction="mean", sample_weight=None, **params):
    """d(reduced loss)/d(prediction), chunked like the prediction (a tuple for several)."""
    loss = load(loss) if isinstance(loss, str) else loss
    params, ignore, cls = _split(loss, params)
    kw = dict(params, **({"ignore_index": ignore} if _is_row(loss) else {}))
    plan = _Plan(loss, arrays, sample_weight, kw)
    denom = plan.denominator(ignore, cls) if reduction == "mean" else None
    P = len(loss.predictions)
    parts = [plan.elementwise("grad", None if P == 1 else i) for i in range(P)]
    parts = [_scaled(g, reduction, denom) for g in parts]
    return parts[0] if P == 1 else tuple(parts)


def value_and_grad(loss, *arrays, reduction="mean", sample_weight=None, **params):
    """(value, grad), both lazy: compute them together (dask.compute) to read the data once."""
    return (value(loss, *arrays, reduction=reduction, sample_weight=sample_weight, **params),
            grad(loss, *arrays, reduction=reduction, sample_weight=sample_weight, **params))


def hessian(loss, *arrays, reduction="none", sample_weight=None, **params):
    """Per-element second derivatives (elementwise losses with one prediction), lazy;
    reduction="mean" divides by the total weight, as the numpy API."""
    loss = load(loss) if isinstance(loss, str) else loss
    if _is_row(loss) or len(loss.predictions) != 1:
        raise ValueError("dask hessian: elementwise losses with one prediction (row losses: hessian_diag/hvp "
                         "per chunk with map_blocks)")
    plan = _Plan(loss, arrays, sample_weight, params)
    h = plan.elementwise("hessian")
    return h / plan.denominator(None, {}) if reduction == "mean" else h


def grad_hessian(loss, *arrays, reduction="none", sample_weight=None, **params):
    return (grad(loss, *arrays, reduction=reduction, sample_weight=sample_weight, **params),
            hessian(loss, *arrays, reduction=reduction, sample_weight=sample_weight, **params))
