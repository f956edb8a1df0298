"""The user-facing Loss: validated arrays in, generated Numba kernels underneath."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from types import ModuleType

import numpy as np

from .. import catalog
from ..errors import InputError
from ..spec.model import LossSpec
from .. import arrays as A
from .. import dask_arrays as _dask
from ..backends.numba_cuda import runtime as _cuda
from ..backends.numba_cpu.runtime import cached_module
from ..modules import import_path

# Below this many elements the serial kernels win (no thread start-up).
PARALLEL_THRESHOLD = 1 << 16


class Loss:
    """One loss: ``value``, ``grad``, ``value_and_grad``, ``hessian``, ``grad_hessian``.

    Arrays are positional in the spec's declared order; parameters are
    keywords.  ``reduction`` is "mean" (default), "sum" or "none";
    ``sample_weight`` weighs elements (weighted mean = sum(w*l) / sum(w)).
    Gradients are derivatives of the reduced loss, as autograd gives them.

    Arrays: anything ``numpy.asarray`` makes real numbers of (lists, scalars,
    0-d arrays, any strides, read-only); complex, object and string dtypes are
    an ``InputError``.  Targets and ``sample_weight`` broadcast to the
    predictions' shape, never the reverse, so results (and every gradient)
    have the predictions' shape: a (n, 1) target against (n,) predictions is
    an error, not an (n, n) loss.  Several predictions share one shape.  The
    predictions' dtype decides the arithmetic: float32/float64 as given,
    integers and booleans in float64, float16 in float32 with float16
    results.  Empty arrays: the mean is NaN (no warning), the sum 0, the
    gradient empty.  ``out`` must be a writeable C-contiguous array of the
    result's shape and dtype; it may be an input itself (``out=yhat``) but
    must not otherwise overlap the inputs.
    """

    def __init__(self, spec: LossSpec, module: ModuleType):
        self.spec = spec
        self.module = module
        self.name = spec.name
        self.inputs = tuple(i.name for i in spec.inputs)
        self.predictions = tuple(i.name for i in spec.predictions)
        self.params = {p.name: p.default for p in spec.params}

    def __reduce__(self):  # pickles as its catalog name or spec (Dask workers, estimators)
        return _dask.restore, (_dask.LossRef(self),)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"<Loss {self.name}({', '.join(self.inputs)}{'; ' + params if params else ''})>"

    # construction ---------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: LossSpec) -> "Loss":
        if spec.kind == "row":  # one loss per row of (..., K) arrays: runtime/row_loss.py
            from .row_loss import RowLoss

            return RowLoss.from_spec(spec)
        from ..derive import Derivation

        return cls(spec, import_path(cached_module(Derivation(spec))))

    @classmethod
    def from_expr(
        cls,
        expr: str,
        name: str = "custom",
        params: dict | None = None,
        inputs: dict | None = None,
        let: dict | None = None,
        kind: str = "elementwise",
    ) -> "Loss":
        """A loss from one expression; symbols ``y`` (target) and ``yhat`` (prediction) by default.

        ``kind="row"``: one loss per row, written with ``Sum(..., k)`` over the
        class index (inputs are then vectors ``y[k]``, ``yhat[k]`` by default);
        returns a :class:`~symloss.runtime.row_loss.RowLoss`.
        """
        table = {
            "name": name,
            "kind": kind,
            "inputs": inputs or {"y": "target", "yhat": "prediction"},
            "params": params or {},
            "let": let or {},
            "loss": expr,
        }
        from ..spec import spec_from_table

        return cls.from_spec(spec_from_table(table, source="<expr>"))

    @cached_property
    def derivation(self):
        """The symbolic derivation (imports SymPy; kernels do not need it)."""
        from ..derive import Derivation
        from ..spec.header import full_spec

        return Derivation(full_spec(self.spec))

    @property
    def latex(self) -> dict[str, str]:
        """LaTeX of the loss, each gradient and each Hessian entry."""
        return dict(self.derivation.latex)

    # plumbing ---------------------------------------------------------------------
    def _setup(self, arrays, reduction, sample_weight, params) -> "_Call":
        A.check_reduction(reduction)
        flat, shape, dtype, rdtype = A.prepare_inputs(self.spec, arrays)
        w = A.prepare_weights(sample_weight, shape, dtype, self.name)
        pvals = A.prepare_params(self.spec, params, dtype)
        n = flat[0].size
        if reduction == "mean":
            denom = float(w.sum(dtype=np.float64)) if w is not None else float(n)
            scale = 1.0 / denom if denom != 0 else np.nan  # the mean of nothing is NaN, without a warning
        else:
            scale = 1.0
        return _Call(flat, shape, dtype, rdtype, w, pvals, scale, reduction)

    def _kernel(self, name: str, n: int):
        return getattr(self.module, name + ("_parallel" if n >= PARALLEL_THRESHOLD else ""))

    def _grad_buffers(self, c: "_Call", out, what: str) -> list[A.Output]:
        if len(self.predictions) == 1:
            outs = (out,)
        else:
            outs = (None,) * len(self.predictions) if out is None else tuple(out)
            if len(outs) != len(self.predictions):
                raise InputError(f"{self.name}: out must be a tuple of {len(self.predictions)} arrays")
        bufs = [A.Output(o, c.shape, c.dtype, c.rdtype, f"{self.name}.{what}", c.inputs) for o in outs]
        A.disjoint(bufs, f"{self.name}.{what}")
        return bufs

    @staticmethod
    def _results(bufs: list[A.Output]):
        results = tuple(b.finish() for b in bufs)
        return results[0] if len(results) == 1 else results

    def _hess_buffer(self, c: "_Call", out) -> tuple[A.Output, list[np.ndarray]]:
        k = len(self.predictions)
        full_shape = c.shape if k == 1 else (k, k) + c.shape
        buf = A.Output(out, full_shape, c.dtype, c.rdtype, f"{self.name}.hessian", c.inputs)
        if k == 1:
            return buf, [buf.flat]
        grid = buf.flat.reshape(k, k, -1)
        return buf, [grid[i, j] for i, j in self.module.HESSIAN_PAIRS]

    def _finish_hessian(self, buf: A.Output) -> np.ndarray:
        k = len(self.predictions)
        if k > 1:  # the kernels fill the upper triangle
            grid = buf.flat.reshape(k, k, -1)
            for i, j in self.module.HESSIAN_PAIRS:
                if i != j:
                    grid[j, i] = grid[i, j]
        return buf.finish()

    # the API ------------------------------------------------------------------------
    @_dask.dispatch  # Dask collections: lazy, chunk-wise (symloss/dask_arrays.py)
    @_cuda.dispatch  # device arrays (torch CUDA, CuPy, numba) run the CUDA kernels
    def value(self, *arrays, reduction="mean", sample_weight=None, out=None, **params):
        c = self._setup(arrays, reduction, sample_weight, params)
        T = c.dtype.type
        if reduction == "none":
            buf = A.Output(out, c.shape, c.dtype, c.rdtype, f"{self.name}.value", c.inputs)
            self._kernel("value", c.n)(*c.flat, *c.pvals, c.w, buf.flat, T)
            return buf.finish()
        return c.reduced(self._kernel("value", c.n)(*c.flat, *c.pvals, c.w, None, T))

    @_dask.dispatch
    @_cuda.dispatch
    def grad(self, *arrays, reduction="mean", sample_weight=None, out=None, **params):
        c = self._setup(arrays, reduction, sample_weight, params)
        bufs = self._grad_buffers(c, out, "grad")
        T = c.dtype.type
        self._kernel("grad", c.n)(*c.flat, *c.pvals, c.w, T(c.scale), *(b.flat for b in bufs), T)
        return self._results(bufs)

    @_dask.dispatch
    @_cuda.dispatch
    def value_and_grad(self, *arrays, reduction="mean", sample_weight=None, out=None, **params):
        """(value, gradient) in one fused pass; ``out`` is the gradient buffer."""
        c = self._setup(arrays, reduction, sample_weight, params)
        bufs = self._grad_buffers(c, out, "value_and_grad")
        T = c.dtype.type
        kernel = self._kernel("value_and_grad", c.n)
        if reduction == "none":
            values = np.empty(c.n, dtype=c.dtype)
            kernel(*c.flat, *c.pvals, c.w, T(c.scale), values, *(b.flat for b in bufs), T)
            return values.reshape(c.shape).astype(c.rdtype, copy=False), self._results(bufs)
        total = kernel(*c.flat, *c.pvals, c.w, T(c.scale), None, *(b.flat for b in bufs), T)
        return c.reduced(total), self._results(bufs)

    @_dask.dispatch
    @_cuda.dispatch
    def hessian(self, *arrays, reduction="none", sample_weight=None, out=None, **params):
        """Per-element second derivatives (the Hessian of an elementwise loss is diagonal).

        One prediction: the prediction's shape.  Several: shape (P, P, *shape),
        symmetric in the first two axes.
        """
        c = self._setup(arrays, reduction, sample_weight, params)
        buf, views = self._hess_buffer(c, out)
        T = c.dtype.type
        self._kernel("hessian", c.n)(*c.flat, *c.pvals, c.w, T(c.scale), *views, T)
        return self._finish_hessian(buf)

    @_dask.dispatch
    @_cuda.dispatch
    def grad_hessian(self, *arrays, reduction="none", sample_weight=None, out=None, **params):
        """(gradient, Hessian) in one fused pass, for Newton steps and gradient boosting.

        ``out=(g, h)``: the two buffers, as ``grad``'s and ``hessian``'s ``out`` (g a tuple for
        several predictions); they must not overlap each other.
        """
        c = self._setup(arrays, reduction, sample_weight, params)
        out_g, out_h = A.out_pair(out, f"{self.name}.grad_hessian")
        bufs = self._grad_buffers(c, out_g, "grad_hessian")
        hbuf, hviews = self._hess_buffer(c, out_h)
        A.disjoint(bufs + [hbuf], f"{self.name}.grad_hessian")
        T = c.dtype.type
        self._kernel("grad_hessian", c.n)(
            *c.flat, *c.pvals, c.w, T(c.scale), *(b.flat for b in bufs), *hviews, T
        )
        return self._results(bufs), self._finish_hessian(hbuf)

    @_cuda.dispatch
    def param_grad(self, *arrays, reduction="mean", sample_weight=None, **params) -> dict:
        """Derivatives of the reduced loss in each differentiable parameter
        (``differentiable = true`` in the spec), e.g. Barron's shape ``alpha``
        for adaptive fitting: ``{"alpha": d loss / d alpha}``.

        "mean" and "sum" give scalars; "none" gives per-element derivatives,
        weighted by ``sample_weight``.
        """
        names = getattr(self.module, "PARAM_GRADS", ())
        if not names:
            raise InputError(f"{self.name}: no parameter is declared differentiable (params.<name>.differentiable)")
        c = self._setup(arrays, reduction, sample_weight, params)
        outs = [np.empty(c.n, dtype=c.dtype) for _ in names]
        self._kernel("param_grad", c.n)(*c.flat, *c.pvals, c.w, *outs, c.dtype.type)
        if reduction == "none":
            return {n: o.reshape(c.shape).astype(c.rdtype, copy=False) for n, o in zip(names, outs)}
        # float64 accumulation, as the value kernels sum
        return {n: c.reduced(float(o.sum(dtype=np.float64))) for n, o in zip(names, outs)}


class _Call:
    """One call's checked arguments: flat kernel arrays, shapes, dtypes, weights, parameters, scale."""

    def __init__(self, flat, shape, dtype, rdtype, w, pvals, scale, reduction):
        self.flat, self.shape, self.dtype, self.rdtype = flat, shape, dtype, rdtype
        self.w, self.pvals, self.scale, self.reduction = w, pvals, scale, reduction
        self.n = flat[0].size
        self.inputs = (*flat, w)

    def reduced(self, total: float):
        """The reduced value as a scalar of the result dtype."""
        return self.rdtype.type(total * self.scale if self.reduction == "mean" else total)


_BUILTIN: dict[str, Loss] = {}


def load(name_or_path: str | Path) -> Loss:
    """A built-in loss by name, or a loss from a spec file's path."""
    text = str(name_or_path)
    if text.endswith(".toml") or Path(text).is_file():
        from ..spec import load_spec

        return Loss.from_spec(load_spec(text))
    if text not in _BUILTIN:
        _BUILTIN[text] = _builtin(text)
    return _BUILTIN[text]


def _builtin(name: str) -> Loss:
    """A catalog loss over its generated module: the spec's header suffices, so
    neither SymPy nor Jinja is imported (the module is checked against the header)."""
    from ..spec.header import SpecHeader

    header = SpecHeader(catalog.spec_path(name))
    module_path = catalog.module_path(name)
    if module_path.is_file():
        module = import_path(module_path)
        if _matches(header, module):
            if header.kind == "row":
                from .row_loss import RowLoss

                return RowLoss(header, module)
            return Loss(header, module)
    # generated/ not built or stale (a spec changed without `symloss generate`)
    return Loss.from_spec(header.full)


def _matches(header, module: ModuleType) -> bool:
    return (getattr(module, "NAME", None) == header.name
            and (*getattr(module, "INPUTS", ()), *getattr(module, "CLASS_INPUTS", {})) == tuple(i.name for i in header.inputs)
            and dict(getattr(module, "PARAMS", {})) == {p.name: p.default for p in header.params})
