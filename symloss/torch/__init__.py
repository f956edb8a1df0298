"""symloss losses as PyTorch losses: ``symloss.torch.loss("huber", delta=1.0)``.

Each loss runs a generated torch module (``generated/torch/<name>.py``, or one
rendered on demand for spec files and expressions): the forward evaluates the
stable formulas, the backward is the symbolic gradient in torch ops, and its
backward the symbolic Hessian (elementwise: diagonal; row losses: the
Hessian-vector product in O(K)).  It works on any device and dtype torch
supports and traces under ``torch.compile``.  Conventions are torch's; see
:mod:`symloss.torch.conventions`.  Importing this module imports torch;
``import symloss`` never does.
"""
from __future__ import annotations

from functools import partial

from ..spec import spec_from_table
from . import conventions as _F
from ._modules import module_for_spec, resolve
from .module import Loss

__all__ = ["Loss", "from_expr", "functional", "loss", "spec_loss"]


def _kernels(spec, name_or_path=None):
    """A lazy provider of the fused-kernel ops (Numba is imported only when they are used)."""
    found = []

    def get():
        if not found:
            from .kernels import kernel_ops

            found.append(kernel_ops(spec, name_or_path))
        return found[0]

    return get


def loss(name_or_spec_path, reduction: str = "mean", ignore_index: int = _F.IGNORE_INDEX, impl: str = "auto",
         **params) -> Loss:
    """An ``nn.Module`` for a catalog loss or a spec file: ``loss("focal_binary", gamma=2.0)``.

    ``impl``: "generated" (the generated torch code: any device, traced and fused by
    torch.compile), "kernel" (the Numba CPU kernels as custom ops; elementwise losses),
    or "auto": the kernels for an elementwise loss on CPU tensors of at least
    ``kernels.AUTO_KERNEL_MIN`` (32768) elements outside torch.compile, the generated
    code otherwise (row losses, GPUs, small batches, and under torch.compile, where it
    fuses with the rest of the graph); except that a one-prediction row loss's plain
    training call on CPU runs its Numba row kernel at any size (``symloss.torch.fast``).
    """
    spec, module = resolve(name_or_spec_path)
    return Loss(spec, module, reduction=reduction, ignore_index=ignore_index, impl=impl,
                kernels=_kernels(spec, name_or_spec_path), **params)


def _expr_spec(expr, name, inputs, params, let, kind):
    table = {
        "name": name,
        "kind": kind,
        "inputs": inputs or {"y": "target", "yhat": "prediction"},
        "params": params or {},
        "let": let or {},
        "loss": expr,
    }
    return spec_from_table(table, source="<expr>")


def from_expr(expr: str, name: str = "custom", inputs: dict | None = None, params: dict | None = None,
              let: dict | None = None, kind: str = "elementwise", reduction: str = "mean",
              ignore_index: int = _F.IGNORE_INDEX, impl: str = "auto", **values) -> Loss:
    """An ``nn.Module`` from one expression (symbols ``y`` target, ``yhat`` prediction by default).

    ``params`` declares parameters as in a spec (``{"delta": {"default": 1.0}}``);
    ``values`` sets them for this module.
    """
    spec = _expr_spec(expr, name, inputs, params, let, kind)
    return Loss(spec, module_for_spec(spec), reduction=reduction, ignore_index=ignore_index, impl=impl,
                kernels=_kernels(spec), **values)


def functional(name_or_spec_path):
    """The functional form, as in ``torch.nn.functional``:
    ``functional("huber")(input, target, delta=1.0, reduction="mean", sample_weight=None)``."""
    spec, module = resolve(name_or_spec_path)
    return partial(_call, spec, module, _kernels(spec, name_or_spec_path))


def _call(spec, module, kernels, *args, reduction="mean", sample_weight=None, ignore_index=_F.IGNORE_INDEX,
          impl="auto", **kwargs):
    param_names = {p.name for p in spec.params}
    params = {k: kwargs.pop(k) for k in list(kwargs) if k in param_names}
    return _F.call(spec, module, args, kwargs, params, reduction, sample_weight, ignore_index, impl, kernels)


def spec_loss(spec, reduction: str = "mean", **params) -> Loss:
    """An ``nn.Module`` for a ``LossSpec`` object."""
    return Loss(spec, module_for_spec(spec), reduction=reduction, kernels=_kernels(spec), **params)
