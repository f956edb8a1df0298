"""RowLoss: the API of row losses (one loss per row of (..., K) arrays) over generated kernels.

Arrays are positional in the spec's declared order: vector inputs of shape
(..., K) (the last axis is the class axis; everything before it is rows) and
scalar inputs of shape (...).  Class inputs (shape (K,), e.g. a class weight)
and parameters are keywords; omitted class inputs take the spec's default.

A vector target declared ``indices = true`` may instead be given as integer
class indices of shape (...), as PyTorch's ``cross_entropy`` takes them:
class j's target is then 1 where j equals the index and 0 elsewhere, rows
whose index equals ``ignore_index`` (default -100) contribute nothing (loss 0,
gradient 0, and they are left out of the mean), and with a ``mean_weight``
class input (``[row] mean_weight``) the mean divides by the sum of that
input at each row's class, as PyTorch does with ``weight``.

Reductions: "none" gives one loss per row; "mean" averages the row losses
(weighted by ``sample_weight`` per row when given: sum(w l) / sum(w)); "sum"
adds them.  Gradients are derivatives of the reduced loss.  The Hessian
methods default to reduction="none" (each row's own Hessian).
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from types import ModuleType

import numpy as np

from ..errors import InputError
from ..spec import LossSpec
from . import arrays as A
from . import cuda_row as _cuda_row
from .modules import cache_source, import_path

# Below this many entries (rows x classes) the serial kernels win.
PARALLEL_THRESHOLD = 1 << 16
# The full per-row Hessian is for small K: at most this many entries in all.
HESSIAN_MAX_ENTRIES = 1 << 26

IGNORE_INDEX = -100


def render(spec: LossSpec) -> str:
    from ..derive.row import RowDerivation
    from ..render.cpu_row import render_row_module

    return render_row_module(RowDerivation(spec))


def cached_row_module(spec: LossSpec) -> Path:
    """Render ``spec`` into the cache folder, keyed by the code's hash (reused across processes)."""
    return cache_source(spec.name, render(spec))


class _Call:
    """Validated, flattened arguments of one call."""

    def __init__(self, loss: "RowLoss", arrays, reduction, sample_weight, params, ignore_index):
        spec = loss.spec
        A.check_reduction(reduction)
        self.reduction = reduction
        names = loss.inputs
        if len(arrays) != len(names):
            raise InputError(f"{spec.name} takes {len(names)} arrays ({', '.join(names)}), got {len(arrays)}")
        arrs = {n: np.asarray(a) for n, a in zip(names, arrays)}
        for n, a in arrs.items():
            if a.dtype.kind not in "biuf":
                raise InputError(f"{spec.name}: '{n}' must be numeric, got dtype {a.dtype}")
        preds = [arrs[p] for p in loss.predictions]
        dtype = np.result_type(*preds)
        if dtype.kind in "biu":
            dtype = np.dtype(np.float64)
        if dtype not in (np.float32, np.float64):
            raise InputError(f"{spec.name}: predictions must be float32 or float64 arrays, got {dtype}")
        shape = preds[0].shape
        if len(shape) == 0:
            raise InputError(f"{spec.name}: predictions need a class axis (the last one), got a scalar")
        self.shape, self.batch, self.k = shape, shape[:-1], shape[-1]
        self.dtype = dtype
        T = dtype.type
        self.n = int(np.prod(self.batch, dtype=np.int64))
        self.indices = False
        flat = []
        for inp in loss.spec_inputs:
            a = arrs[inp.name]
            if inp.shape == "scalar":
                if a.shape != self.batch:
                    raise InputError(f"{spec.name}: '{inp.name}' has shape {a.shape}, expected {self.batch} (one per row)")
                flat.append(np.ascontiguousarray(a, dtype=dtype).reshape(self.n))
            elif inp.indices and a.shape == self.batch and a.shape != shape:
                if a.dtype.kind not in "iu":
                    raise InputError(f"{spec.name}: '{inp.name}' of shape {a.shape} is read as class indices, "
                                     f"which must be integers (got {a.dtype})")
                t = np.ascontiguousarray(a, dtype=np.int64).reshape(self.n)
                bad = ((t < 0) | (t >= self.k)) & (t != ignore_index)
                if bad.any():
                    raise InputError(f"{spec.name}: class index {int(t[bad][0])} out of range for {self.k} classes "
                                     f"(ignore_index={ignore_index})")
                self.indices = True
                self.targets = t
                flat.append(t)
            else:
                if a.shape != shape:
                    extra = f" or {self.batch} (class indices)" if inp.indices else ""
                    raise InputError(f"{spec.name}: '{inp.name}' has shape {a.shape}, expected {shape}{extra}")
                flat.append(np.ascontiguousarray(a, dtype=dtype).reshape(self.n, self.k))
        self.arrays = flat
        self.ignore = int(ignore_index)

        given = dict(params)
        self.class_arrays = []
        for name, default in loss.class_inputs.items():
            c = given.pop(name, None)
            if c is not None:
                c = np.asarray(c)
                if c.dtype.kind not in "biuf":
                    raise InputError(f"{spec.name}: '{name}' must be numeric, got dtype {c.dtype}")
                if c.shape != (self.k,):
                    raise InputError(f"{spec.name}: '{name}' has shape {c.shape}, expected ({self.k},) (one per class)")
                c = np.ascontiguousarray(c, dtype=dtype)
            self.class_arrays.append(c)
        self.params = A.prepare_params(spec, given, dtype)

        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight)
            if w.dtype.kind not in "biuf":
                raise InputError(f"sample_weight must be numeric, got dtype {w.dtype}")
            if w.shape != self.batch:
                raise InputError(f"sample_weight has shape {w.shape}, expected {self.batch} (one per row)")
            w = np.ascontiguousarray(w, dtype=dtype).reshape(self.n)
        self.w = w

        if reduction == "mean":
            self.scale = 1.0 / d if (d := self._denominator(loss)) != 0 else np.nan
        else:
            self.scale = 1.0
        self.T = T

    def _denominator(self, loss: "RowLoss") -> float:
        base = self.w.astype(np.float64) if self.w is not None else np.ones(self.n)
        if not self.indices:
            return float(base.sum())
        live = self.targets != self.ignore
        mw = loss.spec.row.mean_weight
        if mw is not None:
            c = self.class_arrays[list(loss.class_inputs).index(mw)]
            if c is not None:
                base = base * c.astype(np.float64)[np.where(live, self.targets, 0)]
            else:
                base = base * loss.class_inputs[mw]
        return float(base[live].sum())

    def args(self, *extra):
        """Kernel arguments up to and including the scale (and ignore index)."""
        out = [*self.arrays, *self.class_arrays, *self.params, *extra, self.w, self.T(self.scale)]
        if self.indices:
            out.append(self.ignore)
        return out


class RowLoss:
    """One row loss: ``value``, ``grad``, ``value_and_grad``, ``hessian_diag``, ``hvp``, ``hessian``."""

    kind = "row"

    def __init__(self, spec: LossSpec, module: ModuleType):
        if spec.kind != "row":
            raise InputError(f"{spec.name} is a {spec.kind} loss, not a row loss")
        self.spec = spec
        self.module = module
        self.name = spec.name
        self.spec_inputs = tuple(i for i in spec.inputs if i.shape in ("vector", "scalar"))
        self.inputs = tuple(i.name for i in self.spec_inputs)
        self.class_inputs = {i.name: i.default for i in spec.inputs if i.shape == "class"}
        self.predictions = tuple(i.name for i in spec.predictions)
        self.params = {p.name: p.default for p in spec.params}

    def __repr__(self) -> str:
        kw = [f"{k}={v}" for k, v in self.params.items()] + [f"{k}=None" for k in self.class_inputs]
        return f"<RowLoss {self.name}({', '.join(self.inputs)}{'; ' + ', '.join(kw) if kw else ''})>"

    # construction -------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: LossSpec) -> "RowLoss":
        return cls(spec, import_path(cached_row_module(spec)))

    @cached_property
    def derivation(self):
        from ..derive.row import RowDerivation

        return RowDerivation(self.spec)

    @property
    def latex(self) -> dict[str, str]:
        return dict(self.derivation.latex)

    # plumbing -----------------------------------------------------------------------
    def _call(self, arrays, reduction, sample_weight, params, ignore_index) -> _Call:
        return _Call(self, arrays, reduction, sample_weight, params, ignore_index)

    def _kernel(self, name: str, c: _Call):
        suffix = ("_idx" if c.indices else "") + ("_parallel" if c.n * c.k >= PARALLEL_THRESHOLD else "")
        return getattr(self.module, name + suffix)

    def _buffers(self, c: _Call, out, what: str):
        """Per-prediction (N, K) output buffers: (what to return, flat views for the kernel)."""
        preds = self.predictions
        if len(preds) == 1:
            outs = (out,)
        else:
            outs = (None,) * len(preds) if out is None else tuple(out)
            if len(outs) != len(preds):
                raise InputError(f"{self.name}: out must be a tuple of {len(preds)} arrays")
        pairs = [A.output_buffer(o, c.shape, c.dtype, f"{self.name}.{what}") for o in outs]
        if out is not None:
            # kernels read a row's inputs after writing its output (the softmax's exp is kept there)
            for arr, _ in pairs:
                if any(np.may_share_memory(arr, x) for x in c.arrays):
                    raise InputError(f"{self.name}.{what}: out must not share memory with the inputs")
        views = [p[1].reshape(c.n, c.k) for p in pairs]
        result = pairs[0][0] if len(pairs) == 1 else tuple(p[0] for p in pairs)
        return result, views

    def _reduced(self, total: float, c: _Call):
        return c.dtype.type(total * c.scale if c.reduction == "mean" else total)

    # the API ------------------------------------------------------------------------
    @_cuda_row.dispatch  # device arrays run the CUDA row kernels
    def value(self, *arrays, reduction="mean", sample_weight=None, out=None, ignore_index=IGNORE_INDEX, **params):
        """The loss: one per row (reduction="none", shape of the rows), or their mean or sum."""
        c = self._call(arrays, reduction, sample_weight, params, ignore_index)
        kernel = self._kernel("value", c)
        if reduction == "none":
            arr, view = A.output_buffer(out, c.batch, c.dtype, f"{self.name}.value")
            kernel(*c.args(), view, c.T)
            return arr
        return self._reduced(kernel(*c.args(), None, c.T), c)

    @_cuda_row.dispatch
    def grad(self, *arrays, reduction="mean", sample_weight=None, out=None, ignore_index=IGNORE_INDEX, **params):
        """d(reduced loss)/d(prediction), the prediction's shape (a tuple for several)."""
        c = self._call(arrays, reduction, sample_weight, params, ignore_index)
        result, views = self._buffers(c, out, "grad")
        self._kernel("grad", c)(*c.args(), *views, c.T)
        return result

    @_cuda_row.dispatch
    def value_and_grad(self, *arrays, reduction="mean", sample_weight=None, out=None, ignore_index=IGNORE_INDEX,
                       **params):
        """(value, gradient) in one fused kernel; ``out`` is the gradient buffer."""
        c = self._call(arrays, reduction, sample_weight, params, ignore_index)
        result, views = self._buffers(c, out, "value_and_grad")
        kernel = self._kernel("value_and_grad", c)
        if reduction == "none":
            values = np.empty(c.batch, dtype=c.dtype)
            kernel(*c.args(), values.reshape(c.n), *views, c.T)
            return values, result
        return self._reduced(kernel(*c.args(), None, *views, c.T), c), result

    @_cuda_row.dispatch
    def hessian_diag(self, *arrays, reduction="none", sample_weight=None, out=None, ignore_index=IGNORE_INDEX,
                     **params):
        """The diagonal of each row's Hessian (O(K) per row), the prediction's shape."""
        c = self._call(arrays, reduction, sample_weight, params, ignore_index)
        result, views = self._buffers(c, out, "hessian_diag")
        self._kernel("hessian_diag", c)(*c.args(), *views, c.T)
        return result

    @_cuda_row.dispatch
    def hvp(self, *arrays, v, reduction="none", sample_weight=None, out=None, ignore_index=IGNORE_INDEX, **params):
        """Hessian-vector product per row (O(K) per row): ``v`` has the prediction's shape (a tuple for several)."""
        c = self._call(arrays, reduction, sample_weight, params, ignore_index)
        vs = (v,) if len(self.predictions) == 1 else tuple(v)
        if len(vs) != len(self.predictions):
            raise InputError(f"{self.name}: v must be a tuple of {len(self.predictions)} arrays")
        flat_v = []
        for x in vs:
            x = np.asarray(x)
            if x.shape != c.shape or x.dtype.kind not in "biuf":
                raise InputError(f"{self.name}.hvp: v must be numeric of shape {c.shape}, got {x.shape} {x.dtype}")
            flat_v.append(np.ascontiguousarray(x, dtype=c.dtype).reshape(c.n, c.k))
        result, views = self._buffers(c, out, "hvp")
        self._kernel("hvp", c)(*c.args(*flat_v), *views, c.T)
        return result

    @_cuda_row.dispatch
    def hessian(self, *arrays, reduction="none", sample_weight=None, ignore_index=IGNORE_INDEX, **params):
        """Each row's full Hessian, for small K: (..., K, K); with P predictions (P, P, ..., K, K)."""
        c = self._call(arrays, reduction, sample_weight, params, ignore_index)
        P = len(self.predictions)
        if c.n * (P * c.k) ** 2 > HESSIAN_MAX_ENTRIES:
            raise InputError(f"{self.name}.hessian: {c.n} rows of {P * c.k}x{P * c.k} Hessians is too large; "
                             f"use hessian_diag or hvp (O(K) per row)")
        H = np.empty((c.n, P * c.k, P * c.k), dtype=c.dtype)
        self._kernel("hessian", c)(*c.args(), H, c.T)
        if P == 1:
            return H.reshape(*c.batch, c.k, c.k)
        H = H.reshape(c.n, P, c.k, P, c.k).transpose(1, 3, 0, 2, 4)
        return np.ascontiguousarray(H).reshape(P, P, *c.batch, c.k, c.k)
