"""``Loss.forward``'s shortcuts for the training call.

A training step calls its loss the same way every time: positional tensors,
mean or sum, no sample weight, parameters that are numbers.  For that call
the general path's binding, casting and broadcasting change nothing, yet on
a small batch they cost a good part of the loss itself (bench/README.md, "MLP
training step").  The shortcuts check just these conditions; any other call,
every erroneous one included, returns None and takes the general path
(``symloss.torch.conventions``), which also gives the errors.

* ``FastCall`` (elementwise): tensors of one shape, float dtype and device go
  straight to the generated module's ``Total`` node, where the general path
  ends for this call too (same numbers); calls the fused Numba kernels would
  serve are left to it.
* ``FastRowCall`` (one-prediction row losses on CPU, e.g. cross_entropy with
  class indices): the generated torch code is some 25 small ops per call, so
  the shortcut runs the Numba row kernel instead, from a plain
  ``autograd.Function`` (a custom op's dispatch would cost more than the
  kernel): one fused ``value_and_grad`` pass forward; the first-order
  backward hands over the kept gradient (scaled in place unless the upstream
  is 1); a double backward goes through the custom ops, whose own backward
  is the Hessian-vector product.  Rows equal to ``ignore_index``, class
  weights, probability targets of another dtype and calls under saved-tensor
  hooks take the general path.

The module rebuilds its shortcuts when its ``reduction`` or ``impl`` changes;
parameter values are read (and type-checked) on every call; torch.func
transforms, forward-mode AD and ``torch.compile`` always take the general path.
"""
from __future__ import annotations

import numpy as np
import torch

from ..runtime.loss import PARALLEL_THRESHOLD
from .conventions import _constant, _plain_indices, argument_names, summed
from .kernels import AUTO_KERNEL_MIN, empty_out, hand_over, saved_tensor_hooks, transformed

_FLOATS = (torch.float32, torch.float64)


class _Shortcut:
    """What both shortcuts share: the call's argument order and the parameter check.  A
    shortcut is called as ``shortcut(args, values, classes, ignore_index)``: the positional
    tensors, the parameter values and class inputs in the spec's order, the ignore index."""

    def __init__(self, spec, module):
        names = argument_names(spec)
        self.order = tuple(names.index(n) for n in module.INPUTS)  # declared order from call order
        self.n_args = len(names)
        self.params, self._valid = tuple(spec.params), None

    def numbers_ok(self, values: tuple) -> bool:
        """Parameter values that are plain numbers within their constraints; the last valid
        values are remembered, as a training loop passes the same ones every call."""
        if not all(type(v) in (float, int) for v in values):  # before comparing: tensor(1.5) == 1.5
            return False
        if values != self._valid:
            if any(p.violation(float(v)) for p, v in zip(self.params, values)):
                return False
            self._valid = values
        return True


class FastCall(_Shortcut):
    def __init__(self, spec, module, reduction: str, impl: str):
        super().__init__(spec, module)
        self.targets = tuple(i for i, n in enumerate(argument_names(spec)) if n not in module.PREDICTIONS)
        self.mean = reduction == "mean"
        self.module, self.impl = module, impl

    @staticmethod
    def applies(spec, module, reduction: str, impl: str) -> bool:
        return (spec.kind == "elementwise" and reduction in ("mean", "sum") and impl != "kernel"
                and hasattr(module, "Total"))

    def __call__(self, args: tuple, values: tuple, classes: tuple, ignore_index: int):
        # elementwise losses have no class inputs or ignore index
        if len(args) != self.n_args or torch.compiler.is_compiling() or transformed():
            return None  # under torch.compile the per-element Value fuses with the reduction instead
        first = args[0]
        if not isinstance(first, torch.Tensor) or first.dtype not in _FLOATS:
            return None
        shape, dtype, device = first.shape, first.dtype, first.device
        for t in args[1:]:
            if not isinstance(t, torch.Tensor) or t.shape != shape or t.dtype != dtype or t.device != device:
                return None
        if any(args[i].requires_grad for i in self.targets) or not first.numel():
            return None
        if not self.numbers_ok(values):
            return None
        if self.impl == "auto" and first.numel() >= AUTO_KERNEL_MIN and first.device.type == "cpu":
            return None  # what choose() says: the fused kernels, through the general path
        tensors = [args[i] for i in self.order]
        pvals = [_constant(float(v), (), dtype, device) for v in values]
        return summed(self.module, 1.0 / first.numel() if self.mean else 1.0, (*tensors, *pvals))


class FastRowCall(_Shortcut):
    def __init__(self, spec, module, reduction: str, impl: str, kernels):
        super().__init__(spec, module)
        self.pred = list(module.INPUTS).index(module.PREDICTIONS[0])
        self.index = list(module.INPUTS).index(module.INDEX_INPUT) if module.INDEX_INPUT else -1
        self.reduction, self.kernels = reduction, kernels
        self.classes = tuple(module.CLASS_INPUTS.items())

    @staticmethod
    def applies(spec, module, reduction: str, impl: str, kernels) -> bool:
        # class inputs at their default of 1 only: the custom ops a double backward runs take them
        # explicitly, and a mean's denominator weighs explicit class weights
        return (spec.kind == "row" and reduction in ("mean", "sum") and impl != "generated"
                and kernels is not None and len(module.PREDICTIONS) == 1 and not module.SCALAR_INPUTS
                and all(d == 1.0 for d in module.CLASS_INPUTS.values()))

    def __call__(self, args: tuple, values: tuple, classes: tuple, ignore_index: int):
        if (len(args) != self.n_args or torch.compiler.is_compiling() or any(c is not None for c in classes)
                or type(ignore_index) is not int or transformed()):
            return None
        xs = [args[i] for i in self.order]
        z = xs[self.pred]
        if (not isinstance(z, torch.Tensor) or z.dtype not in _FLOATS or not z.is_cpu or z.dim() != 2
                or not z.shape[0] or not z.is_contiguous()):
            return None
        for i, t in enumerate(xs):
            if i == self.pred:
                continue
            if not isinstance(t, torch.Tensor) or t.requires_grad or not t.is_cpu or not t.is_contiguous():
                return None
            if i == self.index and t.dtype == torch.int64 and t.shape == z.shape[:1]:
                if not _plain_indices(t, z.shape[1], ignore_index):
                    return None
            elif t.dtype != z.dtype or t.shape != z.shape:
                return None
        if not self.numbers_ok(values):
            return None
        scale = 1.0 / z.shape[0] if self.reduction == "mean" else 1.0
        if not torch.is_grad_enabled() or not z.requires_grad:
            return _run(self, xs, values, scale, ignore_index, None)
        if saved_tensor_hooks():
            return None  # the custom op saves its gradient where the hooks see it
        return _KernelRowTotal.apply(self, scale, values, ignore_index, *xs)

    def kernel(self, name: str, xs):
        z = xs[self.pred]
        module = self.kernels().loss.module
        indices = self.index >= 0 and not xs[self.index].dtype.is_floating_point
        suffix = ("_idx" if indices else "") + ("_parallel" if z.numel() >= PARALLEL_THRESHOLD else "")
        return getattr(module, name + suffix), indices


def _run(fast: FastRowCall, xs, values, scale: float, ignore_index: int, grad):
    """One kernel pass: the scaled total as a 0-dim tensor; the gradient, times ``scale``, into
    ``grad`` (a tensor like the prediction) unless it is None."""
    z = xs[fast.pred]
    T = np.float32 if z.dtype == torch.float32 else np.float64
    kernel, indices = fast.kernel("value" if grad is None else "value_and_grad", xs)
    args = [x.detach().numpy() for x in xs] + [None] * len(fast.classes) + [T(v) for v in values]
    args += [None, T(scale)] + ([ignore_index] if indices else []) + [None]
    if grad is not None:
        args.append(grad.numpy())
    return torch.scalar_tensor(kernel(*args, T) * scale, dtype=z.dtype)  # (torch.tensor: twice the time)


class _KernelRowTotal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fast, scale, values, ignore_index, *xs):
        kept = empty_out(xs[fast.pred].shape, xs[fast.pred].dtype)
        out = _run(fast, xs, values, scale, ignore_index, kept)
        ctx.fast, ctx.scale, ctx.values, ctx.ignore_index, ctx.kept = fast, scale, values, ignore_index, [kept]
        ctx.save_for_backward(*xs)
        return out

    @staticmethod
    def backward(ctx, g):
        fast, xs = ctx.fast, list(ctx.saved_tensors)
        z = xs[fast.pred]
        if torch.is_grad_enabled():  # create_graph: the custom op, whose backward is H v
            classes = [_constant(float(d), (z.shape[1],), z.dtype, z.device) for _, d in fast.classes]
            p = torch.tensor([float(v) for v in ctx.values], dtype=z.dtype)
            _, G = fast.kernels().value_and_grad_op(xs, classes, p, fast.reduction, ctx.ignore_index)
            d = G * g
        else:
            def recompute():
                d = empty_out(z.shape, z.dtype)
                _run(fast, xs, ctx.values, ctx.scale, ctx.ignore_index, d)
                return [d]

            (d,) = hand_over(ctx, g, recompute)
        out = [None] * len(xs)
        out[fast.pred] = d
        return (None, None, None, None, *out)
