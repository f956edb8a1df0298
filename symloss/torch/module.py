"""``nn.Module`` losses over generated torch modules."""
from __future__ import annotations

import torch

from . import conventions as F
from .fast import FastCall, FastRowCall


class Loss(torch.nn.Module):
    """A symloss loss as an ``nn.Module``: ``forward(*predictions, *targets, sample_weight=None)``.

    Parameters are constructor keywords; a tensor (an ``nn.Parameter`` for a
    differentiable parameter such as general_robust's ``alpha``) is kept as
    is, so its gradient flows.  Every parameter is an attribute, read on each call
    (``loss.delta = 0.5`` changes the next one).  Class inputs (cross_entropy's
    ``weight``) are buffers.
    """

    def __init__(self, spec, module, reduction="mean", ignore_index=F.IGNORE_INDEX, impl="auto", kernels=None,
                 **params):
        super().__init__()
        if impl not in ("auto", "generated", "kernel"):
            raise ValueError(f"{spec.name}: impl must be 'auto', 'generated' or 'kernel', got {impl!r}")
        if impl == "kernel" and spec.kind != "elementwise" and not (
                len(spec.predictions) == 1 and reduction in ("mean", "sum")):
            raise ValueError(f"{spec.name}: impl='kernel' takes elementwise losses, and row losses with one "
                             f"prediction for reduction='mean'/'sum'; use impl='generated'")
        self.impl, self._kernels = impl, kernels
        if impl == "kernel" and kernels is not None:
            kernels()  # load (and compile) the Numba module now, not inside a torch.compile trace
        if reduction not in F.REDUCTIONS:
            raise ValueError(f"{spec.name}: reduction must be one of {F.REDUCTIONS}, got {reduction!r}")
        self.spec, self.kernels = spec, module
        self.reduction, self.ignore_index = reduction, ignore_index
        class_names = [i.name for i in spec.inputs if i.shape == "class"]
        self._class_names = tuple(n for n in class_names)
        for n in class_names:
            value = params.pop(n, None)
            self.register_buffer(n, None if value is None else torch.as_tensor(value))
        F._params(spec, {k: v for k, v in params.items()}, torch.empty(0), tensor_values=True)  # validate now
        for p in spec.params:  # every parameter is an attribute (the default unless given), read per call
            if p.name not in params:
                setattr(self, p.name, p.default)
        self._all_params = tuple(p.name for p in spec.params)
        self._fast_key, self._fast = None, None
        for k, v in params.items():
            if isinstance(v, torch.nn.Parameter):
                self.register_parameter(k, v)
            else:
                setattr(self, k, v)

    @property
    def params(self) -> dict:
        return {k: getattr(self, k) for k in self._all_params}

    def _shortcut(self):
        """The training call's shortcut (symloss/torch/fast.py) for the current reduction and
        impl, attributes a user may change; None where neither applies."""
        key = (self.reduction, self.impl)
        if key != self._fast_key:
            spec, module, kernels = self.spec, self.kernels, self._kernels
            if FastCall.applies(spec, module, *key):
                self._fast = FastCall(spec, module, *key)
            elif FastRowCall.applies(spec, module, *key, kernels):
                self._fast = FastRowCall(spec, module, *key, kernels)
            else:
                self._fast = None
            self._fast_key = key
        return self._fast

    def forward(self, *args, sample_weight=None, **kwargs):
        fast = self._shortcut() if sample_weight is None and not kwargs else None
        if fast is not None:
            out = fast(args, tuple(getattr(self, k) for k in self._all_params),
                       tuple(getattr(self, n) for n in self._class_names), self.ignore_index)
            if out is not None:
                return out
        for n in self._class_names:
            if n not in kwargs and getattr(self, n) is not None:
                kwargs[n] = getattr(self, n)
        return F.call(self.spec, self.kernels, args, kwargs, self.params, self.reduction, sample_weight,
                      self.ignore_index, self.impl, self._kernels)

    def extra_repr(self) -> str:
        items = [f"reduction={self.reduction!r}", f"impl={self.impl!r}"] + [f"{k}={v!r}" for k, v in self.params.items()]
        return f"{self.spec.name}: " + ", ".join(items)
