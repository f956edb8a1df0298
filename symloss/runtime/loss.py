"""The user-facing Loss: validated arrays in, generated Numba kernels underneath."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from types import ModuleType

import numpy as np

from .. import catalog
from ..derive import Derivation
from ..errors import InputError
from ..spec import LossSpec, load_spec, spec_from_table
from . import arrays as A
from . import cuda as _cuda
from .modules import cached_module, import_path

# Below this many elements the serial kernels win (no thread start-up).
PARALLEL_THRESHOLD = 1 << 16


class Loss:
    """One loss: ``value``, ``grad``, ``value_and_grad``, ``hessian``, ``grad_hessian``.

    Arrays are positional in the spec's declared order; parameters are
    keywords.  ``reduction`` is "mean" (default), "sum" or "none";
    ``sample_weight`` weighs elements (weighted mean = sum(w*l) / sum(w)).
    Gradients are derivatives of the reduced loss, as autograd gives them.
    """

    def __init__(self, spec: LossSpec, module: ModuleType):
        self.spec = spec
        self.module = module
        self.name = spec.name
        self.inputs = tuple(i.name for i in spec.inputs)
        self.predictions = tuple(i.name for i in spec.predictions)
        self.params = {p.name: p.default for p in spec.params}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"<Loss {self.name}({', '.join(self.inputs)}{'; ' + params if params else ''})>"

    # construction ---------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: LossSpec) -> "Loss":
        if spec.kind == "row":  # one loss per row of (..., K) arrays: runtime/row_loss.py
            from .row_loss import RowLoss

            return RowLoss.from_spec(spec)
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
        return cls.from_spec(spec_from_table(table, source="<expr>"))

    @cached_property
    def derivation(self) -> Derivation:
        return Derivation(self.spec)

    @property
    def latex(self) -> dict[str, str]:
        """LaTeX of the loss, each gradient and each Hessian entry."""
        return dict(self.derivation.latex)

    # plumbing ---------------------------------------------------------------------
    def _setup(self, arrays, reduction, sample_weight, params):
        A.check_reduction(reduction)
        flat, shape, dtype = A.prepare_inputs(self.spec, arrays)
        w = A.prepare_weights(sample_weight, shape, dtype)
        pvals = A.prepare_params(self.spec, params, dtype)
        n = flat[0].size
        if reduction == "mean":
            denom = float(w.sum(dtype=np.float64)) if w is not None else float(n)
            scale = 1.0 / denom if denom != 0 else np.nan
        else:
            scale = 1.0
        return flat, shape, dtype, w, pvals, scale

    def _kernel(self, name: str, n: int):
        return getattr(self.module, name + ("_parallel" if n >= PARALLEL_THRESHOLD else ""))

    def _grad_buffers(self, out, shape, dtype):
        if len(self.predictions) == 1:
            outs = (out,)
        else:
            outs = (None,) * len(self.predictions) if out is None else tuple(out)
            if len(outs) != len(self.predictions):
                raise InputError(f"{self.name}: out must be a tuple of {len(self.predictions)} arrays")
        pairs = [A.output_buffer(o, shape, dtype, f"{self.name}.grad") for o in outs]
        result = pairs[0][0] if len(pairs) == 1 else tuple(p[0] for p in pairs)
        return result, [p[1] for p in pairs]

    def _hess_buffers(self, out, shape, dtype):
        k = len(self.predictions)
        full_shape = shape if k == 1 else (k, k) + shape
        arr, _ = A.output_buffer(out, full_shape, dtype, f"{self.name}.hessian")
        if k == 1:
            return arr, [arr.reshape(-1)]
        views = [arr[i, j].reshape(-1) for i, j in self.module.HESSIAN_PAIRS]
        return arr, views

    @staticmethod
    def _symmetrize(arr: np.ndarray, pairs) -> None:
        for i, j in pairs:
            if i != j:
                arr[j, i] = arr[i, j]

    @staticmethod
    def _reduced(total: float, dtype, reduction: str, scale: float):
        return dtype.type(total * scale if reduction == "mean" else total)

    # the API ------------------------------------------------------------------------
    @_cuda.dispatch  # device arrays (torch CUDA, CuPy, numba) run the CUDA kernels
    def value(self, *arrays, reduction="mean", sample_weight=None, out=None, **params):
        flat, shape, dtype, w, pvals, scale = self._setup(arrays, reduction, sample_weight, params)
        T = dtype.type
        if reduction == "none":
            arr, view = A.output_buffer(out, shape, dtype, f"{self.name}.value")
            self._kernel("value", view.size)(*flat, *pvals, w, view, T)
            return arr
        total = self._kernel("value", flat[0].size)(*flat, *pvals, w, None, T)
        return self._reduced(total, dtype, reduction, scale)

    @_cuda.dispatch
    def grad(self, *arrays, reduction="mean", sample_weight=None, out=None, **params):
        flat, shape, dtype, w, pvals, scale = self._setup(arrays, reduction, sample_weight, params)
        result, views = self._grad_buffers(out, shape, dtype)
        self._kernel("grad", flat[0].size)(*flat, *pvals, w, dtype.type(scale), *views, dtype.type)
        return result

    @_cuda.dispatch
    def value_and_grad(self, *arrays, reduction="mean", sample_weight=None, out=None, **params):
        """(value, gradient) in one fused pass; ``out`` is the gradient buffer."""
        flat, shape, dtype, w, pvals, scale = self._setup(arrays, reduction, sample_weight, params)
        result, views = self._grad_buffers(out, shape, dtype)
        kernel = self._kernel("value_and_grad", flat[0].size)
        if reduction == "none":
            values = np.empty(shape, dtype=dtype)
            kernel(*flat, *pvals, w, dtype.type(scale), values.reshape(-1), *views, dtype.type)
            return values, result
        total = kernel(*flat, *pvals, w, dtype.type(scale), None, *views, dtype.type)
        return self._reduced(total, dtype, reduction, scale), result

    @_cuda.dispatch
    def hessian(self, *arrays, reduction="none", sample_weight=None, out=None, **params):
        """Per-element second derivatives (the Hessian of an elementwise loss is diagonal).

        One prediction: the prediction's shape.  Several: shape (P, P, *shape),
        symmetric in the first two axes.
        """
        flat, shape, dtype, w, pvals, scale = self._setup(arrays, reduction, sample_weight, params)
        arr, views = self._hess_buffers(out, shape, dtype)
        self._kernel("hessian", flat[0].size)(*flat, *pvals, w, dtype.type(scale), *views, dtype.type)
        if len(self.predictions) > 1:
            self._symmetrize(arr, self.module.HESSIAN_PAIRS)
        return arr

    @_cuda.dispatch
    def grad_hessian(self, *arrays, reduction="none", sample_weight=None, **params):
        """(gradient, Hessian) in one fused pass, for Newton steps and gradient boosting."""
        flat, shape, dtype, w, pvals, scale = self._setup(arrays, reduction, sample_weight, params)
        g, gviews = self._grad_buffers(None, shape, dtype)
        h, hviews = self._hess_buffers(None, shape, dtype)
        self._kernel("grad_hessian", flat[0].size)(
            *flat, *pvals, w, dtype.type(scale), *gviews, *hviews, dtype.type
        )
        if len(self.predictions) > 1:
            self._symmetrize(h, self.module.HESSIAN_PAIRS)
        return g, h

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
        flat, shape, dtype, w, pvals, scale = self._setup(arrays, reduction, sample_weight, params)
        outs = [np.empty(shape, dtype=dtype) for _ in names]
        self._kernel("param_grad", flat[0].size)(*flat, *pvals, w, *(o.reshape(-1) for o in outs), dtype.type)
        if reduction == "none":
            return dict(zip(names, outs))
        # float64 accumulation, as the value kernels sum
        return {n: self._reduced(float(o.sum(dtype=np.float64)), dtype, reduction, scale) for n, o in zip(names, outs)}


_BUILTIN: dict[str, Loss] = {}


def load(name_or_path: str | Path) -> Loss:
    """A built-in loss by name, or a loss from a spec file's path."""
    text = str(name_or_path)
    if text.endswith(".toml") or Path(text).is_file():
        return Loss.from_spec(load_spec(text))
    if text not in _BUILTIN:
        spec = load_spec(catalog.spec_path(text))
        module_path = catalog.module_path(text)
        if module_path.is_file() and spec.kind == "row":
            from .row_loss import RowLoss

            _BUILTIN[text] = RowLoss(spec, import_path(module_path))
        elif module_path.is_file():
            _BUILTIN[text] = Loss(spec, import_path(module_path))
        else:  # generated/ not built (e.g. a spec added without `symloss generate`)
            _BUILTIN[text] = Loss.from_spec(spec)
    return _BUILTIN[text]
