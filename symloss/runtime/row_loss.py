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

Arrays follow the elementwise rules (symloss/arrays.py: lists, scalars, any
strides, read-only arrays; float16 computed in float32 with float16 results;
complex, object and string dtypes are an error), with row shapes: non-
prediction vector inputs broadcast over the rows but their class axis must be
K (a (n, 1) integer target is refused, it is almost always class indices with
an extra axis); scalar inputs and ``sample_weight`` broadcast to the rows'
shape; class indices have exactly the rows' shape and are range-checked
before any cast.  Predictions need at least one class.  ``out`` must not
share memory with any input, not even be one (a row's output is written
before its inputs are read again).
"""
from __future__ import annotations

import math
from functools import cached_property
from types import ModuleType

import numpy as np

from ..errors import InputError
from ..spec import LossSpec
from .. import arrays as A
from .. import dask_arrays as _dask
from ..backends.numba_cpu.runtime import cached_row_module
from ..backends.numba_cuda import runtime_row as _cuda_row
from ..modules import import_path

# Below this many entries (rows x classes) the serial kernels win.
PARALLEL_THRESHOLD = 1 << 16
# The full per-row Hessian is for small K: at most this many entries in all.
HESSIAN_MAX_ENTRIES = 1 << 26

IGNORE_INDEX = -100


class _Call:
    """Validated, flattened arguments of one call."""

    def __init__(self, loss: "RowLoss", arrays, reduction, sample_weight, params, ignore_index,
                 class_major: bool = False):
        spec = loss.spec
        name = spec.name
        A.check_reduction(reduction)
        self.reduction = reduction
        names = loss.inputs
        if len(arrays) != len(names):
            raise InputError(f"{name} takes {len(names)} arrays ({', '.join(names)}), got {len(arrays)}")
        arrs = {n: A.as_array(a, name, n) for n, a in zip(names, arrays)}
        preds = [arrs[p] for p in loss.predictions]
        self.dtype, self.rdtype = A.dtypes(name, preds)
        dtype = self.dtype
        shape = preds[0].shape
        if len(shape) == 0:
            raise InputError(f"{name}: predictions need a class axis (the last one), got a scalar")
        self.shape, self.batch, self.k = shape, shape[:-1], shape[-1]
        if self.k == 0:
            raise InputError(f"{name}: predictions of shape {shape} have no classes (the last axis is empty)")
        if class_major and len(shape) != 2:
            raise InputError(f"{name}: class-major arrays are (N, K), got predictions of shape {shape}")
        if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, (int, np.integer)):
            raise InputError(f"{name}: ignore_index must be an integer, got {ignore_index!r}")
        T = dtype.type
        self.n = math.prod(self.batch)
        self.indices = False
        flat = []
        for inp in loss.spec_inputs:
            a = arrs[inp.name]
            expected = self.batch if inp.shape == "scalar" else shape
            if inp.differentiable and a.shape != expected:  # gradients take the predictions' shape
                raise InputError(f"{name}: prediction '{inp.name}' has shape {a.shape}, expected {expected}")
            if inp.shape == "scalar":
                a = A.broadcast(a, self.batch, name, f"'{inp.name}'", "the rows' shape", "one per row")
                flat.append(A.for_kernel(a, dtype).reshape(self.n))
            elif inp.indices and a.shape == self.batch and a.shape != shape:
                flat.append(self._class_indices(name, inp.name, a, ignore_index))
            elif class_major:  # (K, N) C-contiguous: an F-contiguous (N, K) array's own memory
                flat.append(A.for_kernel(self._vector(name, inp, a).T, dtype))
            else:
                flat.append(A.for_kernel(self._vector(name, inp, a), dtype).reshape(self.n, self.k))
        self.arrays = flat
        self.ignore = int(ignore_index)

        given = dict(params)
        self.class_arrays = []
        for cname, default in loss.class_inputs.items():
            c = given.pop(cname, None)
            if c is not None:
                c = A.as_array(c, name, cname)
                if c.shape != (self.k,):
                    raise InputError(f"{name}: '{cname}' has shape {c.shape}, expected ({self.k},) (one per class)")
                c = A.for_kernel(c, dtype)
            self.class_arrays.append(c)
        self.params = A.prepare_params(spec, given, dtype)
        self.w = A.prepare_weights(sample_weight, self.batch, dtype, name, "the rows' shape", "one per row")

        if reduction == "mean":  # the mean of nothing is NaN, without a warning
            self.scale = 1.0 / d if (d := self._denominator(loss)) != 0 else np.nan
        else:
            self.scale = 1.0
        self.T = T
        self.extra: list[np.ndarray] = []  # kernel extras (hvp's tangents)

    def _vector(self, loss: str, inp, a: np.ndarray) -> np.ndarray:
        """A (..., K) input broadcast over the rows; its class axis must be K itself."""
        shape = self.shape
        if a.shape == shape:
            return a
        if inp.indices and a.dtype.kind in "iu" and a.shape == self.batch + (1,) and self.k > 1:
            raise InputError(f"{loss}: '{inp.name}' of shape {a.shape} looks like class indices with an extra "
                             f"axis; pass them with shape {self.batch}")
        if inp.indices and a.shape == self.batch:  # not integers, else they would be indices
            raise InputError(f"{loss}: '{inp.name}' of shape {a.shape} is read as class indices, "
                             f"which must be integers (got {a.dtype})")
        if a.ndim == 0 or a.shape[-1] != self.k:
            extra = f" or {self.batch} (class indices)" if inp.indices else ""
            raise InputError(f"{loss}: '{inp.name}' has shape {a.shape}, expected {shape}{extra} "
                             f"(the class axis does not broadcast)")
        return A.broadcast(a, shape, loss, f"'{inp.name}'", "the predictions' shape")

    def _class_indices(self, loss: str, name: str, a: np.ndarray, ignore_index) -> np.ndarray:
        """Integer class indices as int64, checked before the cast (a uint64 index could wrap)."""
        if a.dtype.kind not in "iu":
            raise InputError(f"{loss}: '{name}' of shape {a.shape} is read as class indices, "
                             f"which must be integers (got {a.dtype})")
        if a.dtype.kind == "u":
            bad = a >= self.k
        else:
            t = a.astype(np.int64, copy=False)
            bad = ((t < 0) | (t >= self.k)) & (t != ignore_index)
        if bad.any():
            raise InputError(f"{loss}: class index {a[bad].flat[0]} out of range for {self.k} classes "
                             f"(ignore_index={ignore_index})")
        t = A.for_kernel(a, np.dtype(np.int64)).reshape(self.n)
        self.indices = True
        self.targets = t
        return t

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
    """One row loss: ``value``, ``grad``, ``value_and_grad``, ``hessian_diag``, ``grad_hessian_diag``, ``hvp``,
    ``hessian``."""

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

    def __reduce__(self):  # pickles as its catalog name or spec (Dask workers, estimators)
        return _dask.restore, (_dask.LossRef(self),)

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
        from ..spec.header import full_spec

        return RowDerivation(full_spec(self.spec))

    @property
    def latex(self) -> dict[str, str]:
        return dict(self.derivation.latex)

    # plumbing -----------------------------------------------------------------------
    def _call(self, arrays, reduction, sample_weight, params, ignore_index) -> _Call:
        return _Call(self, arrays, reduction, sample_weight, params, ignore_index)

    def _kernel(self, name: str, c: _Call):
        suffix = ("_idx" if c.indices else "") + ("_parallel" if c.n * c.k >= PARALLEL_THRESHOLD else "")
        return getattr(self.module, name + suffix)

    def _buffers(self, c: _Call, out, what: str) -> list[A.Output]:
        """Per-prediction output buffers; the kernels write ``b.flat.reshape(c.n, c.k)``."""
        preds = self.predictions
        if len(preds) == 1:
            outs = (out,)
        else:
            outs = (None,) * len(preds) if out is None else tuple(out)
            if len(outs) != len(preds):
                raise InputError(f"{self.name}: out must be a tuple of {len(preds)} arrays")
        # kernels read a row's inputs after writing its output (the softmax's exp is kept there),
        # so out may not even be an input itself
        inputs = (*c.arrays, *c.class_arrays, c.w, *c.extra)
        bufs = [A.Output(o, c.shape, c.dtype, c.rdtype, f"{self.name}.{what}", inputs, alias_ok=False)
                for o in outs]
        A.disjoint(bufs, f"{self.name}.{what}")
        return bufs

    def _views(self, c: _Call, bufs: list[A.Output]) -> list[np.ndarray]:
        return [b.flat.reshape(c.n, c.k) for b in bufs]

    @staticmethod
    def _results(bufs: list[A.Output]):
        results = tuple(b.finish() for b in bufs)
        return results[0] if len(results) == 1 else results

    def _reduced(self, total: float, c: _Call):
        return c.rdtype.type(total * c.scale if c.reduction == "mean" else total)

    # the API ------------------------------------------------------------------------
    @_dask.dispatch  # Dask collections: lazy, chunk-wise (symloss/dask_arrays.py)
    @_cuda_row.dispatch  # device arrays run the CUDA row kernels
    def value(self, *arrays, reduction="mean", sample_weight=None, out=None, ignore_index=IGNORE_INDEX, **params):
        """The loss: one per row (reduction="none", shape of the rows), or their mean or sum."""
        c = self._call(arrays, reduction, sample_weight, params, ignore_index)
        kernel = self._kernel("value", c)
        if reduction == "none":
            inputs = (*c.arrays, *c.class_arrays, c.w)
            buf = A.Output(out, c.batch, c.dtype, c.rdtype, f"{self.name}.value", inputs, alias_ok=False)
            kernel(*c.args(), buf.flat, c.T)
            return buf.finish()
        return self._reduced(kernel(*c.args(), None, c.T), c)

    @_dask.dispatch
    @_cuda_row.dispatch
    def grad(self, *arrays, reduction="mean", sample_weight=None, out=None, ignore_index=IGNORE_INDEX, **params):
        """d(reduced loss)/d(prediction), the prediction's shape (a tuple for several)."""
        c = self._call(arrays, reduction, sample_weight, params, ignore_index)
        bufs = self._buffers(c, out, "grad")
        self._kernel("grad", c)(*c.args(), *self._views(c, bufs), c.T)
        return self._results(bufs)

    @_dask.dispatch
    @_cuda_row.dispatch
    def value_and_grad(self, *arrays, reduction="mean", sample_weight=None, out=None, ignore_index=IGNORE_INDEX,
                       **params):
        """(value, gradient) in one fused kernel; ``out`` is the gradient buffer."""
        c = self._call(arrays, reduction, sample_weight, params, ignore_index)
        bufs = self._buffers(c, out, "value_and_grad")
        kernel = self._kernel("value_and_grad", c)
        if reduction == "none":
            values = np.empty(c.n, dtype=c.dtype)
            kernel(*c.args(), values, *self._views(c, bufs), c.T)
            return values.reshape(c.batch).astype(c.rdtype, copy=False), self._results(bufs)
        total = kernel(*c.args(), None, *self._views(c, bufs), c.T)
        return self._reduced(total, c), self._results(bufs)

    @_cuda_row.dispatch
    def hessian_diag(self, *arrays, reduction="none", sample_weight=None, out=None, ignore_index=IGNORE_INDEX,
                     **params):
        """The diagonal of each row's Hessian (O(K) per row), the prediction's shape."""
        c = self._call(arrays, reduction, sample_weight, params, ignore_index)
        bufs = self._buffers(c, out, "hessian_diag")
        self._kernel("hessian_diag", c)(*c.args(), *self._views(c, bufs), c.T)
        return self._results(bufs)

    @_cuda_row.dispatch
    def grad_hessian_diag(self, *arrays, reduction="none", sample_weight=None, out=None,
                          ignore_index=IGNORE_INDEX, **params):
        """(gradient, Hessian diagonal) from one fused pass over each row: equal to ``grad`` and
        ``hessian_diag`` with the same arguments (one softmax per row instead of two), for Newton
        steps and gradient boosting.  ``out`` is None or a (gradient, diagonal) pair of buffers.
        Device arrays run the CUDA ``grad`` and ``hessian_diag`` kernels (no fused one there)."""
        c = self._call(arrays, reduction, sample_weight, params, ignore_index)
        if out is None:
            out = (None, None)
        elif not isinstance(out, (tuple, list)) or len(out) != 2:
            raise InputError(f"{self.name}.grad_hessian_diag: out must be a (gradient, diagonal) pair")
        gbufs = self._buffers(c, out[0], "grad_hessian_diag")
        hbufs = self._buffers(c, out[1], "grad_hessian_diag")
        A.disjoint(gbufs + hbufs, f"{self.name}.grad_hessian_diag")
        self._kernel("grad_hessian_diag", c)(*c.args(), *self._views(c, gbufs), *self._views(c, hbufs), c.T)
        return self._results(gbufs), self._results(hbufs)

    def grad_hessian_diag_class_major(self, *arrays, out, sample_weight=None, hessian_floor=-math.inf,
                                      ignore_index=IGNORE_INDEX, **params):
        """``grad_hessian_diag`` (reduction "none") of (N, K) arrays kept class-major, as LightGBM
        keeps multi-class scores: F-contiguous vector inputs are read where they lie, and ``out``, a
        (gradient, diagonal) pair of F-contiguous (N, K) float32 or float64 arrays, is written in
        place (cast as written).  The diagonal is floored at ``hessian_floor`` times the row
        weight in the same pass (NaN stays NaN).  One prediction, CPU arrays; returns ``out``."""
        what = f"{self.name}.grad_hessian_diag_class_major"
        if len(self.predictions) != 1:
            raise InputError(f"{what}: takes losses with one prediction")
        c = _Call(self, arrays, "none", sample_weight, params, ignore_index, class_major=True)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise InputError(f"{what}: out must be a (gradient, diagonal) pair")
        inputs = [a for a in (*c.arrays, *c.class_arrays, c.w) if a is not None]
        for o in out:
            if not (isinstance(o, np.ndarray) and o.shape == c.shape and o.dtype in (np.float32, np.float64)
                    and o.flags.f_contiguous and o.flags.writeable):
                raise InputError(f"{what}: out must be two writeable F-contiguous float32 or float64 "
                                 f"arrays of shape {c.shape}")
            if any(np.shares_memory(o, a) for a in inputs):
                raise InputError(f"{what}: out shares memory with an input")
        if np.shares_memory(out[0], out[1]):
            raise InputError(f"{what}: the two outputs share memory")
        if not hasattr(self.module, "grad_hessian_diag_cm"):
            raise InputError(f"{what}: {self.name}'s generated module has no class-major kernels; "
                             f"run `symloss generate` again")
        self._kernel("grad_hessian_diag_cm", c)(*c.args(), out[0].T, out[1].T, c.T(hessian_floor), c.T)
        return out

    @_cuda_row.dispatch
    def hvp(self, *arrays, v, reduction="none", sample_weight=None, out=None, ignore_index=IGNORE_INDEX, **params):
        """Hessian-vector product per row (O(K) per row): ``v`` has the prediction's shape (a tuple for several)."""
        c = self._call(arrays, reduction, sample_weight, params, ignore_index)
        vs = (v,) if len(self.predictions) == 1 else tuple(v)
        if len(vs) != len(self.predictions):
            raise InputError(f"{self.name}: v must be a tuple of {len(self.predictions)} arrays")
        for x in vs:
            x = A.as_array(x, self.name, "v")
            if x.shape != c.shape:
                raise InputError(f"{self.name}.hvp: v must be numeric of shape {c.shape}, got {x.shape} {x.dtype}")
            c.extra.append(A.for_kernel(x, c.dtype).reshape(c.n, c.k))
        bufs = self._buffers(c, out, "hvp")
        self._kernel("hvp", c)(*c.args(*c.extra), *self._views(c, bufs), c.T)
        return self._results(bufs)

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
            return H.reshape(*c.batch, c.k, c.k).astype(c.rdtype, copy=False)
        H = H.reshape(c.n, P, c.k, P, c.k).transpose(1, 3, 0, 2, 4)
        return np.ascontiguousarray(H, dtype=c.rdtype).reshape(P, P, *c.batch, c.k, c.k)
